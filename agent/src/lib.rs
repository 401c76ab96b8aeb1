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
//! Two modes:
//! - **full** (cargo feature `tracing`, on by default; turns on tokio's
//!   `tracing` feature): [`init`] or [`layer()`]. Wakes, live wakers and the
//!   leak verdict ("idle and nothing can wake it").
//! - **lean** ([`main`], [`build_runtime`] or [`hooks()`]): tokio's runtime hooks, no
//!   tokio `tracing` feature needed, cheap enough to leave on in a service.
//!   States, parked times, polls, spawn locations and stacks; no wakes or
//!   leak verdict, and names only for tasks spawned with [`task::Builder`].
//!   See [`hooks`](mod@hooks).
//!
//! Stacks: tasks spawned with [`spawn`] or [`task::Builder`], and the future
//! [`main`] runs, are [`Traced`]: their stacks are captured inside their own
//! polls, on any runtime, with nothing that can harm the program. tokio's
//! own task dump, which covers every task, is taken only where it is safe:
//! by default only with a tokio carrying the taskdump fixes of
//! `patches/tokio` (see the README).
//!
//! ```no_run
//! # #[tokio::main] async fn main() {
//! taskscope_agent::init();
//! let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
//! taskscope_agent::spawn(async move {
//!     let _ = rx.await; // `taskscope stack` names this line
//! });
//! # }
//! ```
//!
//! ```no_run
//! // Lean mode, one line: `#[tokio::main]` with the runtime built through
//! // the agent (works with or without the `tracing` feature).
//! #[taskscope_agent::main]
//! async fn main() {
//!     // ... the program ...
//! }
//! ```
//!
//! ```no_run
//! // The same for a program that builds its runtime itself.
//! fn main() -> std::io::Result<()> {
//!     let runtime = taskscope_agent::build_runtime(
//!         tokio::runtime::Builder::new_multi_thread().enable_all(),
//!     )?;
//!     runtime.block_on(async {
//!         // ... the program ...
//!     });
//!     Ok(())
//! }
//! ```
//!
//! Architecture, from the hot path outwards:
//! - [`subscriber`] / [`layer`](mod@layer) / [`hooks`](mod@hooks): called by tokio on
//!   spawn, poll and wake. They only touch the task's own slot in `slots`
//!   (atomics; no lock, no allocation; the hooks find the slot by task id
//!   through a lock-free table written at spawn and termination). The thread
//!   a task finishes on counts it and keeps it for a bounded time and count,
//!   in memory of its own, then recycles its slot.
//! - `state`: the one reader of the task table. It sums the threads'
//!   counts, picks the completed tasks to show, and answers snapshots and
//!   watches.
//! - `capture`: the safe capture of the wrapped futures; `dump`: tokio's
//!   own task dump where its policy allows it; `symbols`: both symbolised on
//!   the agent's thread with a cache.
//! - `server` and `endpoint`: the gRPC service and the socket it listens on;
//!   `http`: the opt-in `/metrics` and `/debug/pprof/tasks` for fleets.

#[cfg(not(tokio_unstable))]
compile_error!(
    "taskscope-agent needs tokio's unstable APIs: build with `--cfg tokio_unstable`, e.g. in \
     .cargo/config.toml: [build] rustflags = [\"--cfg\", \"tokio_unstable\"]"
);

mod capture;
mod clock;
pub mod config;
mod dump;
mod endpoint;
#[cfg(feature = "tracing")]
mod fields;
mod files;
pub mod guard;
pub mod hooks;
mod http;
#[cfg(feature = "tracing")]
pub mod layer;
mod pages;
mod prefetch;
mod recorder;
mod server;
mod slots;
mod state;
#[cfg(feature = "tracing")]
pub mod subscriber;
mod symbols;
mod tags;
pub mod task;

use std::sync::{Arc, OnceLock};

pub use capture::Traced;
pub use task::spawn;

pub use config::Config;
pub use dump::register_runtime;
/// `#[tokio::test]` under a [`guard`]: the test fails when it leaves tasks
/// behind, with their grouped report. Same `flavor`, `worker_threads` and
/// `start_paused` arguments, plus the guard's options: `leaked_only`,
/// `include_existing`, `ignore_location = "..."`, `ignore_function = "..."`,
/// `ignore_top_function = "..."` (each repeatable) and `retry = "1s"`. Works
/// in both modes, with no `init()`. See [`guard`]. `start_paused` needs
/// tokio's `test-util` feature, as with `#[tokio::test]`.
pub use taskscope_agent_macros::guarded_test as test;
/// `#[tokio::main]` for the lean mode: put `#[taskscope_agent::main]` in its
/// place (same `flavor` and `worker_threads` arguments) and the runtime is
/// built through [`build_runtime`]. One line, like [`init`], for the mode
/// that can be left on.
pub use taskscope_agent_macros::main;

/// What [`main`]'s expansion names: the tokio the agent was built with, and
/// the wrapper of the future it blocks on.
#[doc(hidden)]
pub mod __private {
    pub use crate::guard::test::run as test;
    pub use tokio;

    /// The future `#[taskscope_agent::main]` runs: recorded by the agent as
    /// a `block_on` task spawned at the attribute, its stack captured
    /// safely. Call it after the runtime is built (the agent is started then).
    #[track_caller]
    pub fn main_future<F: std::future::Future>(future: F) -> crate::Traced<F> {
        crate::Traced::block_on(future, std::panic::Location::caller())
    }
}

use recorder::{Mode, Recorder};

/// The recorder, created once by the first `init`/`layer`/`hooks` call.
static RECORDER: OnceLock<&'static Recorder> = OnceLock::new();
/// Set once the agent's thread has been started.
static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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
/// When the runtime was built with [`build_runtime`] or [`hooks()`] (lean mode),
/// or without the `tracing` feature, no subscriber is installed: `init` then
/// only registers the runtime and starts serving.
pub fn init() {
    Builder::from_env().init();
}

/// Lean mode: builds a runtime whose tasks the agent records through tokio's
/// runtime hooks, registers it for task dumps and starts the agent, with
/// settings from the environment. One call replaces `builder.build()`; no
/// `init()` is needed. See [`hooks`](mod@hooks) for what the mode records.
///
/// The error is the one `builder.build()` returns. A disabled agent
/// (`TASKSCOPE_DISABLE`) builds the runtime untouched.
pub fn build_runtime(builder: &mut tokio::runtime::Builder) -> std::io::Result<tokio::runtime::Runtime> {
    Builder::from_env().build_runtime(builder)
}

/// Lean mode for programs that build the runtime themselves: installs the
/// recording hooks on `builder`. Call [`init`] (or [`register_runtime`] and
/// [`init`]) inside the built runtime to serve what they record.
pub fn hooks(builder: &mut tokio::runtime::Builder) -> &mut tokio::runtime::Builder {
    Builder::from_env().hooks(builder)
}

/// A [`tracing_subscriber::Layer`] that records tasks, for programs that
/// install their own subscriber; starts the agent like [`init`] does, except
/// for installing a subscriber. See [the module](mod@layer) for an example.
#[cfg(feature = "tracing")]
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
    /// Register the runtime `init` is called in as `main` (not for the
    /// test guard, whose runtime is one test's).
    register_current: bool,
}

impl Builder {
    /// Defaults overridden by `TASKSCOPE_*` variables.
    pub fn from_env() -> Builder {
        Builder { config: Config::from_env(), register_current: true }
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

    /// Also serve `/metrics` (Prometheus) and `/debug/pprof/tasks` (pprof)
    /// over HTTP on this address (`TASKSCOPE_HTTP`). Optional.
    pub fn http(mut self, addr: std::net::SocketAddr) -> Self {
        self.config.http = Some(addr);
        self
    }

    /// How many spawn locations `/metrics` gives series of their own
    /// (`TASKSCOPE_METRICS_LOCATIONS`): those with the most live tasks; the
    /// rest are summed under `location="other"`. Optional.
    pub fn metrics_locations(mut self, count: usize) -> Self {
        self.config.metrics_locations = count;
        self
    }

    /// Whether to take tokio's own task dump too (`TASKSCOPE_TOKIO_DUMPS`):
    /// `true` on a tokio without taskscope's taskdump fixes is at the risk
    /// described there; `false` turns it off on a fixed tokio. Optional:
    /// by default it is on exactly with a fixed tokio.
    pub fn tokio_dumps(mut self, enabled: bool) -> Self {
        self.config.tokio_dumps = Some(enabled);
        self
    }

    /// Whether to read the CPU's counter at every poll's start and end
    /// (`TASKSCOPE_EXACT_TIMES`), for exact busy, running and parked times at
    /// the cost of two counter reads per poll. Optional: by default times
    /// come from a clock thread's 10 ms tick. The first agent started in a
    /// process decides.
    pub fn exact_times(mut self, exact: bool) -> Self {
        self.config.exact_times = exact;
        self
    }

    /// Registers no runtime for tokio's dump (neither the one `init` is
    /// called in nor the one `build_runtime` builds): the test guard's
    /// runtimes are each one test's, not the program's.
    pub(crate) fn registering_no_runtime(mut self) -> Self {
        self.register_current = false;
        self
    }

    /// Installs the subscriber and starts the agent (see [`init`]).
    pub fn init(self) {
        if self.config.disabled {
            return;
        }
        let recorder = self.start();
        if recorder::hooked() {
            return;
        }
        #[cfg(feature = "tracing")]
        {
            let subscriber = subscriber::TaskSubscriber::new(recorder);
            if tracing_core::dispatcher::set_global_default(tracing_core::Dispatch::new(subscriber)).is_ok() {
                recorder::set_mode(Mode::Subscriber);
            } else {
                eprintln!(
                    "taskscope-agent: a tracing subscriber is already installed, so task lifecycles \
                     are not recorded (stacks still are); add `taskscope_agent::layer()` to it instead"
                );
            }
        }
        #[cfg(not(feature = "tracing"))]
        {
            let _ = recorder;
            eprintln!(
                "taskscope-agent: built without the `tracing` feature and the runtime has no \
                 taskscope hooks, so task lifecycles are not recorded (stacks still are); build \
                 the runtime with `taskscope_agent::build_runtime`"
            );
        }
    }

    /// Lean mode: installs the hooks on `builder`, builds it, registers the
    /// runtime and starts the agent (see [`build_runtime`]).
    pub fn build_runtime(self, builder: &mut tokio::runtime::Builder) -> std::io::Result<tokio::runtime::Runtime> {
        if self.config.disabled {
            return builder.build();
        }
        let recorder = self.recorder();
        let tag = hooks::install(builder, recorder);
        recorder::set_mode(Mode::Hooks);
        let runtime = builder.build()?;
        tags::bind(tag, runtime.handle());
        if self.register_current {
            let name = match dump::registered_count() {
                0 => "main".to_string(),
                n => format!("runtime-{}", n + 1),
            };
            register_runtime(name, runtime.handle());
        }
        self.start();
        Ok(runtime)
    }

    /// Lean mode: installs the hooks on `builder` (see [`hooks()`]).
    pub fn hooks(self, builder: &mut tokio::runtime::Builder) -> &mut tokio::runtime::Builder {
        if self.config.disabled {
            return builder;
        }
        let _tag = hooks::install(builder, self.recorder());
        recorder::set_mode(Mode::Hooks);
        builder
    }

    /// Starts the agent and returns the layer that records into it (see [`layer()`]).
    #[cfg(feature = "tracing")]
    pub fn layer<S>(self) -> layer::TaskscopeLayer<S>
    where
        S: tracing_core::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let recorder = if self.config.disabled { None } else { Some(self.start()) };
        if recorder.is_some() && !recorder::hooked() {
            recorder::set_mode(Mode::Layer);
        }
        // A disabled agent still hands out a layer: it records into a recorder
        // nobody reads, which costs only the hot path.
        layer::build(recorder.unwrap_or_else(|| leak_recorder(slots::Retention { done: 0, for_ns: 0 })))
    }

    /// The process's recorder, created by the first caller.
    fn recorder(&self) -> &'static Recorder {
        RECORDER.get_or_init(|| {
            clock::coarse::start(self.config.exact_times);
            // Every mode takes slots through the same free lists, which ask
            // for the next slot's lines early: find out how, once.
            prefetch::init();
            let _ = files::FILES.set(files::Files::new());
            let recorder = leak_recorder(self.config.retention());
            // The state owner will read names: from now on freed ones wait
            // for it, so none is dropped while it reads (see `Table::release`).
            recorder.table.expect_reader();
            recorder
        })
    }

    /// Creates the recorder and the agent thread, once per process.
    fn start(self) -> &'static Recorder {
        let recorder = self.recorder();
        if STARTED.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return recorder;
        }
        match tokio::runtime::Handle::try_current() {
            _ if !self.register_current => {}
            Ok(handle) => register_runtime("main", &handle),
            Err(_) if dump::registered_count() > 0 => {}
            Err(_) => eprintln!(
                "taskscope-agent: init() was called outside a tokio runtime; stacks need \
                 `taskscope_agent::register_runtime(name, &handle)`"
            ),
        }
        dump::policy::configure(self.config.tokio_dumps);
        let config = Arc::new(self.config);
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("taskscope-agent: cannot start the agent's runtime: {e}");
                return recorder;
            }
        };
        let (owner, state) = state::StateOwner::new(recorder);
        let _ = AGENT.set(Agent { state: state.clone(), runtime: runtime.handle().clone() });
        let spawned =
            std::thread::Builder::new().name(taskscope_proto::discovery::AGENT_THREAD.into()).spawn(move || {
                recorder::mark_agent_thread();
                runtime.spawn(owner.run());
                if let Some(addr) = config.http {
                    runtime.spawn(http::serve(addr, Arc::clone(&config), state.clone()));
                }
                runtime.block_on(endpoint::serve(config, state));
            });
        if let Err(e) = spawned {
            eprintln!("taskscope-agent: cannot start the agent's thread: {e}");
        }
        recorder
    }
}

/// The agent's thread, once started: its runtime and the state owner's
/// handle, for what asks from the program's side (the test guard).
struct Agent {
    state: state::StateHandle,
    runtime: tokio::runtime::Handle,
}

static AGENT: OnceLock<Agent> = OnceLock::new();

/// The recorder, once something created it.
pub(crate) fn recorder_if_started() -> Option<&'static Recorder> {
    RECORDER.get().copied()
}

fn leak_recorder(retention: slots::Retention) -> &'static Recorder {
    Box::leak(Box::new(Recorder::new(retention)))
}
