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

#[cfg(not(tokio_unstable))]
compile_error!(
    "taskscope-agent needs tokio's unstable APIs: build with `--cfg tokio_unstable`, e.g. in \
     .cargo/config.toml: [build] rustflags = [\"--cfg\", \"tokio_unstable\"]"
);

mod clock;
pub mod config;
mod dump;
mod endpoint;
mod fields;
pub mod layer;
mod recorder;
mod server;
mod slots;
mod state;
pub mod subscriber;
mod symbols;

use std::sync::{Arc, OnceLock};

pub use config::Config;
pub use dump::register_runtime;

use recorder::Recorder;

/// The recorder, created once by the first `init`/`layer` call.
static RECORDER: OnceLock<&'static Recorder> = OnceLock::new();

/// Starts the agent with settings from the environment (see [`Config`]).
///
/// Call it once, early, from inside the tokio runtime (e.g. first line of an
/// `#[tokio::main]` function, either flavour). It installs the agent's tracing
/// subscriber as the global default, registers the current runtime for task
/// dumps as `main`, and starts serving on the per-process socket. It never
/// panics and never fails the program: problems are reported on stderr and the
/// program runs on, uninspected. Calling it again does nothing.
///
/// If the program already installs a tracing subscriber, use [`layer()`] instead.
pub fn init() {
    Builder::from_env().init();
}

/// A [`tracing_subscriber::Layer`] that records tasks, for programs that
/// install their own subscriber; starts the agent like [`init`] does, except
/// for installing a subscriber. See [`layer`](crate::layer) for an example.
pub fn layer<S>() -> layer::TaskscopeLayer<S>
where
    S: tracing_core::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    Builder::from_env().layer()
}

/// Settings for the agent, starting from the environment's.
///
/// ```no_run
/// # #[tokio::main] async fn main() {
/// taskscope_agent::Builder::from_env()
///     .retain_done(10_000)
///     .retain_for(std::time::Duration::from_secs(60))
///     .init();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    config: Config,
}

impl Builder {
    /// Defaults overridden by `TASKSCOPE_*` variables.
    pub fn from_env() -> Builder {
        Builder { config: Config::from_env() }
    }

    /// How many completed tasks to keep for display. Optional.
    pub fn retain_done(mut self, count: usize) -> Self {
        self.config.retain_done = count;
        self
    }

    /// How long to keep a completed task for display. Optional.
    pub fn retain_for(mut self, age: std::time::Duration) -> Self {
        self.config.retain_for = age;
        self
    }

    /// Directory of the Unix socket. Optional.
    pub fn socket_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config.socket_dir = dir.into();
        self
    }

    /// Also serve on this TCP address. Optional.
    pub fn tcp(mut self, addr: std::net::SocketAddr) -> Self {
        self.config.tcp = Some(addr);
        self
    }

    /// Capacity of the lifecycle event queue. Optional.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.config.queue_capacity = capacity.max(64);
        self
    }

    /// Also dump multi-thread runtimes with several workers, at the risk
    /// described under `TASKSCOPE_MT_DUMPS`. Optional.
    pub fn multi_thread_dumps(mut self, enabled: bool) -> Self {
        self.config.mt_dumps = enabled;
        self
    }

    /// Installs the subscriber and starts the agent (see [`init`]).
    pub fn init(self) {
        if self.config.disabled {
            return;
        }
        let Some(recorder) = self.start() else { return };
        let subscriber = subscriber::TaskSubscriber::new(recorder);
        if tracing_core::dispatcher::set_global_default(tracing_core::Dispatch::new(subscriber)).is_ok() {
            recorder::set_mode(false);
        } else {
            eprintln!(
                "taskscope-agent: a tracing subscriber is already installed, so task lifecycles \
                 are not recorded (stacks still are); add `taskscope_agent::layer()` to it instead"
            );
        }
    }

    /// Starts the agent and returns the layer that records into it (see [`layer()`]).
    pub fn layer<S>(self) -> layer::TaskscopeLayer<S>
    where
        S: tracing_core::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let recorder = if self.config.disabled { None } else { self.start() };
        if recorder.is_some() {
            recorder::set_mode(true);
        }
        // A disabled agent still hands out a layer: it records into a recorder
        // nobody reads, which costs only the hot path.
        layer::build(recorder.unwrap_or_else(|| leak_recorder(64)))
    }

    /// Creates the recorder and the agent thread, once per process.
    fn start(self) -> Option<&'static Recorder> {
        let mut first = false;
        let recorder = *RECORDER.get_or_init(|| {
            first = true;
            leak_recorder(self.config.queue_capacity)
        });
        if !first {
            return Some(recorder);
        }
        clock::start();
        let _ = fields::FILES.set(fields::Files::new());
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => register_runtime("main", &handle),
            Err(_) => eprintln!(
                "taskscope-agent: init() was called outside a tokio runtime; stacks need \
                 `taskscope_agent::register_runtime(name, &handle)`"
            ),
        }
        dump::MT_DUMPS.store(self.config.mt_dumps, std::sync::atomic::Ordering::Relaxed);
        let config = Arc::new(self.config);
        let spawned = std::thread::Builder::new().name("taskscope-agent".into()).spawn(move || {
            recorder::mark_agent_thread();
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("taskscope-agent: cannot start the agent's runtime: {e}");
                    return;
                }
            };
            let (owner, state) = state::StateOwner::new(recorder, config.clone());
            runtime.spawn(owner.run());
            runtime.block_on(endpoint::serve(config, state));
        });
        if let Err(e) = spawned {
            eprintln!("taskscope-agent: cannot start the agent's thread: {e}");
        }
        Some(recorder)
    }
}

fn leak_recorder(queue_capacity: usize) -> &'static Recorder {
    Box::leak(Box::new(Recorder::new(queue_capacity)))
}
