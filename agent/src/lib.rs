//! taskscope agent: embed it in a tokio program to make its tasks inspectable.
//!
//! ```no_run
//! #[tokio::main]
//! async fn main() {
//!     taskscope_agent::init();
//!     // ... the program ...
//! }
//! ```
//!
//! `init()` installs a tracing subscriber that records each task's lifecycle
//! (tokio's `runtime.spawn` spans and `tokio::task::waker` events, nothing else),
//! registers the current runtime for task dumps, and serves the `taskscope.v1`
//! protocol on a per-process Unix socket from a thread of its own.
//!
//! Architecture, from the hot path outwards:
//! - [`subscriber`] / [`layer`]: called by tokio on spawn, poll and wake. They
//!   only touch the task's own slot in [`slots`] (atomics; no lock, no
//!   allocation) and push spawn/complete notices into a bounded queue.
//! - [`state`]: the one owner of the task table. It drains the queue, keeps
//!   completed tasks for a bounded time and count, and answers snapshots and
//!   watches.
//! - [`dump`] and [`symbols`]: tokio task dumps, taken without ever cancelling
//!   one midway, symbolised on the agent's thread with a cache.
//! - [`server`] and [`endpoint`]: the gRPC service and the socket it listens on.

pub mod config;
mod clock;
mod dump;
mod endpoint;
mod fields;
pub mod layer;
mod server;
mod slots;
mod state;
pub mod subscriber;
mod symbols;

pub use config::Config;
pub use dump::register_runtime;

/// Starts the agent with settings from the environment (see [`Config`]).
///
/// Call it once, early, from inside the tokio runtime (e.g. first line of an
/// `#[tokio::main]` function). It never panics and never fails the program:
/// problems are reported on stderr and the program runs on uninspected.
pub fn init() {
    // Body in progress.
}
