//! Tests of the `attach` UI without a terminal or an agent: the model fed
//! with real protocol messages, every screen rendered on ratatui's
//! `TestBackend` and compared with snapshots, and the key table.
//!
//! The binary crate has no library target, so the UI modules are compiled
//! into this test from their source files. They depend on nothing else of the
//! crate but `duration` (the shared formatting) and `output` (escaping the
//! program's text), included the same way; the words for where a stack came
//! from are `taskscope_report::provenance`.

#![allow(dead_code, unused_imports)]

#[path = "../src/duration.rs"]
mod duration;
#[path = "../src/output.rs"]
mod output;

#[path = "attach_ui/sources.rs"]
mod attach;

#[path = "attach_ui/app.rs"]
mod app;
#[path = "attach_ui/fixtures.rs"]
mod fixtures;
#[path = "attach_ui/keys.rs"]
mod keys;
#[path = "attach_ui/model.rs"]
mod model;
#[path = "attach_ui/stack_sources.rs"]
mod stack_sources;
#[path = "attach_ui/views.rs"]
mod views;
