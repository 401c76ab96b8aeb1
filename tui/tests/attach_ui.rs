//! Tests of the `attach` UI without a terminal or an agent: the model fed
//! with real protocol messages, every screen rendered on ratatui's
//! `TestBackend` and compared with snapshots, and the key table.
//!
//! The UI modules come from the `taskscope` library; the connection and
//! terminal modules are left out of these tests (they need a real agent and
//! a real terminal, and `tests/attach_e2e.rs` covers them). `attach` is
//! imported at the root so that the test modules name it `crate::attach`.

pub use taskscope::attach;

#[path = "attach_ui/app.rs"]
mod app;
#[path = "attach_ui/fixtures.rs"]
mod fixtures;
#[path = "attach_ui/keys.rs"]
mod keys;
#[path = "attach_ui/lean.rs"]
mod lean;
#[path = "attach_ui/model.rs"]
mod model;
#[path = "attach_ui/stack_sources.rs"]
mod stack_sources;
#[path = "attach_ui/views.rs"]
mod views;
#[path = "attach_ui/warnings.rs"]
mod warnings;
