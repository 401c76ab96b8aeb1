//! The UI modules of `src/attach/`, compiled into the test crate as
//! `crate::attach::*` (the same paths they have in the binary). The
//! connection and terminal modules are left out: they need a real agent and
//! a real terminal, and `tests/attach_e2e.rs` covers them.

#[path = "../../src/attach/app.rs"]
pub mod app;
#[path = "../../src/attach/event.rs"]
pub mod event;
#[path = "../../src/attach/keys.rs"]
pub mod keys;
#[path = "../../src/attach/state/mod.rs"]
pub mod state;
#[path = "../../src/attach/view/mod.rs"]
pub mod view;
