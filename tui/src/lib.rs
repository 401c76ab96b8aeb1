//! The `taskscope` CLI as a library: every subcommand and the pieces they
//! share, so that the binary (`src/main.rs`, which only calls [`cli::main`]),
//! the integration tests and the benchmarks all compile the same modules
//! instead of including source files by path.
//!
//! This is not a stable API for other programs: the modules are public so
//! that the tests can drive the `attach` model and views on ratatui's
//! `TestBackend`, feed `check` conditions, and so on. The inspected program's
//! side is `taskscope-agent`; the dump model and its reports are
//! `taskscope-report`.

pub mod attach;
pub mod check;
pub mod cli;
pub mod client;
pub mod console;
pub mod diff;
pub mod duration;
pub mod output;
pub mod process;
pub mod ps;
pub mod stack;
pub mod target;
