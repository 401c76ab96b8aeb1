//! The task model of taskscope's reports, shared by everything that shows
//! tasks: the CLI's `stack` (text and `--json`), `attach`'s words for where
//! a stack came from, and the agent's test guard, whose failure message is
//! the same grouped report `taskscope stack` prints.
//!
//! Why a crate of its own: a report is one concept. The CLI reads a dump
//! over gRPC and the guard builds one in the process under test; both hand
//! the same protocol values ([`dump::Dump`]) to the same pure functions, so
//! a leak reads the same in a failing test as in a terminal.
//!
//! - [`dump`]: a whole dump, and what every view derives from a task record;
//! - [`filter`]: which tasks a report keeps; [`group`]: pprof `debug=1`
//!   grouping; [`frames`]: which frames are the program's own;
//! - [`render`] (text), [`json`] (feature `json`) and [`pprof`] (feature
//!   `pprof`, a goroutine-style profile): the reports;
//! - [`provenance`]: where a stack came from, or why there is none, in words;
//! - [`text`]: the program's own text made safe for a terminal;
//! - [`wait`]: what a parked task waits on, and its class; [`suspect`]: which
//!   groups are leak suspects, and the order reports rank them in.

pub mod dump;
pub mod filter;
pub mod frames;
pub mod group;
#[cfg(feature = "json")]
pub mod json;
#[cfg(feature = "pprof")]
pub mod pprof;
pub mod provenance;
pub mod render;
pub mod suspect;
pub mod text;
pub mod wait;
