//! What the integration tests share. Each test file that needs it says
//! `mod common;`; cargo does not build this directory as a test of its own.
//!
//! The harm harness ([`harm`]) runs the harm corpus against the real
//! `taskscope stack`, for `tests/harm.rs` and `tests/harm_patched_tokio.rs`.

pub mod harm;
pub mod process;
mod program;
mod report;
mod tokio_dump;
