//! The test guard: fail a test that leaves tasks behind, in the spirit of
//! Go's goleak.
//!
//! ```
//! #[taskscope_agent::test]
//! async fn leaves_a_task_behind() {
//!     let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
//!     // `_tx` lives to the end of the test, so this task never finishes.
//!     tokio::spawn(async move {
//!         let _ = rx.await;
//!     });
//! }
//! ```
//!
//! The same catch, spelt out with a [`Guard`]:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let guard = taskscope_agent::guard::Guard::new();
//! let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
//! tokio::spawn(async move {
//!     let _ = rx.await;
//! });
//! let leaks = guard.check().await.expect_err("the task is left");
//! let report = leaks.to_string();
//! assert!(report.starts_with("taskscope: 1 task spawned since the guard taken at"));
//! assert!(report.contains("1 task [idle] parked"));
//! # }
//! ```
//!
//! The test fails with the grouped report `taskscope stack` prints, for
//! the tasks it left: count, state, parked time, whether they are leaked,
//! where they were spawned, their names and, where one can be taken safely,
//! their async stacks.
//!
//! Three shapes, from the one to reach for first:
//! - **`#[taskscope_agent::test]`** in place of `#[tokio::test]` (same
//!   `flavor`, `worker_threads` and `start_paused` arguments): the whole
//!   test is guarded, and the mode is set up for it (no `init()`, no hand-made
//!   runtime, the lean mode included). Options go in the attribute:
//!   `#[taskscope_agent::test(leaked_only, ignore_location = "src/accept.rs",
//!   ignore_function = "my_crate::ticker", retry = "1s")]`.
//! - **[`Guard`]**: taken at any point of an async test, checked where the
//!   test says, with the same options as methods; for a test that must run
//!   clean-up before the check, or check twice.
//! - **[`verify_none`]**: one call at the end of a test: every task of the
//!   test's runtime must be gone (goleak's `VerifyNone`).
//!
//! Why an attribute rather than a guard that checks when dropped: the check
//! has to wait (tasks that are finishing get about half a second, as in
//! goleak) and a `Drop` cannot await; a panic from a drop while the test is
//! already failing would abort the test binary. The attribute is the one
//! place that runs after the test's body with the runtime still up.
//!
//! **Tests in parallel.** libtest runs the tests of one binary on threads
//! of one process, and each `#[tokio::test]` builds its own runtime. The
//! guard counts only the tasks of the runtime it was taken on, so a leaking
//! test and a clean one running side by side fail and pass on their own.
//! goleak cannot tell goroutines of parallel tests apart and refuses
//! `t.Parallel()`. In the full mode a task is counted on the runtime it was
//! spawned from (`tokio::spawn` inside a runtime: its own runtime).
//!
//! What is seen: in the full mode (feature `tracing`, the default) the tasks
//! spawned on the runtime after the first guard (or guarded test) of the
//! process; in the lean mode every task of a runtime built by
//! `#[taskscope_agent::test]` or [`crate::build_runtime`]. The lean mode
//! sees no wakers, so [`Guard::leaked_only`] needs the full mode. Stacks
//! come from the safe capture of [`crate::spawn`]ed and
//! [`crate::task::Builder`] tasks; tasks from a plain `tokio::spawn` are
//! listed with their spawn location and no stack (tokio's own dump is not
//! taken: it would pause the runtimes of the tests running beside).

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::Ordering::Acquire;
use std::time::{Duration, Instant};

use taskscope_proto as proto;
use taskscope_report::dump::Dump;
use taskscope_report::render;

use crate::slots::LIVE;
use crate::state::Summary;

mod options;
#[doc(hidden)]
pub mod test;

pub use options::Options;

/// How long a failing check re-checks before it fails, by default (goleak's
/// default is about half a second).
pub const DEFAULT_RETRY: Duration = Duration::from_millis(500);

/// How long the safe capture may take to bring the stacks of a report.
const STACK_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest pause between two checks of a failing guard.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// A guard over the tasks of one runtime: taken at the start of a test,
/// checked at its end. See [the module](self).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let guard = taskscope_agent::guard::Guard::new();
/// let task = tokio::spawn(async { 1 + 1 });
/// assert_eq!(task.await.unwrap(), 2);
/// guard.check().await.expect("no task left");
/// # }
/// ```
pub struct Guard {
    /// The runtime it watches (as `tags::runtime_u64`).
    runtime: u64,
    /// Tasks of that runtime alive when it was taken (ignored unless
    /// [`Options::include_existing`]).
    existing: HashSet<u64>,
    /// The task that took it, if it was taken inside one.
    caller: Option<u64>,
    /// Where it was taken.
    taken_at: &'static std::panic::Location<'static>,
    options: Options,
    /// What its report calls the tasks it counts.
    scope: Scope,
}

#[derive(Debug, Clone, Copy)]
enum Scope {
    SinceGuard,
    Runtime,
}

impl Guard {
    /// Takes a guard over the current runtime's tasks, with the default
    /// [`Options`]: tasks alive now are ignored.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does.
    #[track_caller]
    pub fn new() -> Guard {
        Guard::with(Options::default())
    }

    /// [`Guard::new`] with `options`.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    #[track_caller]
    pub fn with(options: Options) -> Guard {
        Guard::taken_at(options, std::panic::Location::caller())
    }

    fn taken_at(options: Options, taken_at: &'static std::panic::Location<'static>) -> Guard {
        let runtime = crate::tags::current_runtime()
            .unwrap_or_else(|| panic!("taskscope_agent::guard::Guard taken outside a tokio runtime (at {taken_at})"));
        start_recording();
        let caller = tokio::task::try_id().map(crate::hooks::id_u64);
        Guard { runtime, existing: tasks_on(runtime), caller, taken_at, options, scope: Scope::SinceGuard }
    }

    /// Ignores tasks spawned at a location containing `pattern`
    /// (`file:line:column`, e.g. `"src/accept.rs"` or `"src/lib.rs:40"`).
    pub fn ignore_location(mut self, pattern: impl Into<String>) -> Guard {
        self.options = self.options.ignore_location(pattern);
        self
    }

    /// Ignores tasks whose innermost frame is in `function` (see
    /// [`Options::ignore_top_function`]).
    pub fn ignore_top_function(mut self, function: impl Into<String>) -> Guard {
        self.options = self.options.ignore_top_function(function);
        self
    }

    /// Ignores tasks with `function` anywhere in their stack (see
    /// [`Options::ignore_function`]).
    pub fn ignore_function(mut self, function: impl Into<String>) -> Guard {
        self.options = self.options.ignore_function(function);
        self
    }

    /// Fails only on tasks the agent calls leaked (idle with no live waker:
    /// nothing can ever wake them), not on any task left running or parked.
    pub fn leaked_only(mut self) -> Guard {
        self.options = self.options.leaked_only();
        self
    }

    /// Counts the tasks that were alive when the guard was taken too.
    pub fn include_existing(mut self) -> Guard {
        self.options = self.options.include_existing();
        self
    }

    /// How long a failing check keeps re-checking (default
    /// [`DEFAULT_RETRY`]); zero checks once.
    pub fn retry_for(mut self, retry: Duration) -> Guard {
        self.options = self.options.retry_for(retry);
        self
    }

    /// Checks that no task the guard counts is alive, re-checking with a
    /// short backoff for up to the retry time before failing. The error's
    /// `Display` is the report.
    pub async fn check(&self) -> Result<(), Leaks> {
        let agent = crate::AGENT.get().ok_or_else(|| {
            Leaks::cannot("the taskscope agent could not start (see the message it printed), so no task is seen")
        })?;
        self.usable()?;
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let round = self.round(agent, self.options.needs_stacks()).await?;
            let waited = started.elapsed();
            if round.offenders.is_empty() && (round.undecided == 0 || waited >= self.options.retry) {
                return Ok(());
            }
            if round.offenders.is_empty() {
                // Not polled yet, so not leaked yet: wait for their first poll.
            } else if waited >= self.options.retry {
                let round = if round.stacks { round } else { self.round(agent, true).await? };
                return Err(self.report(&round, waited));
            }
            sleep_on(agent, pause.min(self.options.retry.saturating_sub(waited))).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// [`Guard::check`], panicking with the report on failure.
    pub async fn assert_clean(&self) {
        if let Err(leaks) = self.check().await {
            panic!("{leaks}");
        }
    }

    /// Whether this guard can see what it is asked to.
    fn usable(&self) -> Result<(), Leaks> {
        match crate::recorder::mode() {
            "none" => Err(Leaks::cannot(
                "another tracing subscriber owns this process, so the agent records no task: add \
                 `taskscope_agent::layer()` to it",
            )),
            "hooks" if self.options.leaked_only => Err(Leaks::cannot(
                "`leaked_only` needs the full mode (the agent's `tracing` feature): the lean mode \
                 sees no wakers, so it calls no task leaked",
            )),
            "hooks" if crate::tags::tags_of(self.runtime).is_empty() => Err(Leaks::cannot(
                "this runtime has no taskscope hooks, so its tasks are not seen: use \
                 `#[taskscope_agent::test]` (or build it with `taskscope_agent::build_runtime`)",
            )),
            _ => Ok(()),
        }
    }

    /// One look at the tasks: the ones the guard counts, with their stacks
    /// when `stacks`.
    async fn round(&self, agent: &crate::Agent, stacks: bool) -> Result<Round, Leaks> {
        let state = agent.state.clone();
        let snapshot = on_agent(agent, async move { state.snapshot().await })
            .await
            .and_then(|s| s.map_err(|e| e.to_string()))
            .map_err(Leaks::cannot)?;
        let on_runtime = tasks_on(self.runtime);
        // `leaked_only`: a task not polled yet cannot have parked, so its
        // verdict is still to come.
        let undecided = snapshot
            .tasks
            .iter()
            .filter(|task| self.options.leaked_only && task.polls == 0 && on_runtime.contains(&task.id))
            .filter(|task| task.state != proto::TaskState::Done as i32 && !self.existing.contains(&task.id))
            .count();
        let candidates: HashSet<u64> = snapshot
            .tasks
            .iter()
            .filter(|task| on_runtime.contains(&task.id) && self.counts(task))
            .map(|task| task.id)
            .collect();
        let capture = if stacks && !candidates.is_empty() {
            let wanted = candidates.clone();
            on_agent(agent, async move { crate::dump::capture_wrapped(STACK_TIMEOUT, |id| wanted.contains(&id)).await })
                .await
                .map_err(Leaks::cannot)?
        } else {
            crate::dump::Capture::default()
        };
        let ids: Vec<u64> = candidates.iter().copied().collect();
        let chunks: Vec<proto::DumpChunk> = if ids.is_empty() {
            Vec::new()
        } else {
            crate::server::chunks::DumpChunks::new(snapshot, capture, &ids).collect()
        };
        let dump =
            if chunks.is_empty() { Dump::default() } else { Dump::from_chunks(chunks).map_err(Leaks::cannot)? };
        let offenders: HashSet<u64> = dump
            .tasks
            .iter()
            .filter(|dumped| !self.options.ignores_stack(dump.stack_of(dumped)))
            .filter_map(|dumped| dumped.task.as_ref().map(|task| task.id))
            .collect();
        Ok(Round { dump, offenders, undecided, stacks })
    }

    /// Whether the guard counts `task` (alive, the program's, not ignored),
    /// before looking at its stack.
    fn counts(&self, task: &proto::Task) -> bool {
        task.state != proto::TaskState::Done as i32
            && !task.runtime_internal
            && Some(task.id) != self.caller
            && (self.options.include_existing || !self.existing.contains(&task.id))
            && (!self.options.leaked_only || task.leaked)
            && !self.options.ignores_location(task)
    }

    /// The failure: the grouped report of the tasks left.
    fn report(&self, round: &Round, waited: Duration) -> Leaks {
        let mut dump = round.dump.clone();
        dump.tasks.retain(|dumped| dumped.task.as_ref().is_some_and(|task| round.offenders.contains(&task.id)));
        let count = dump.tasks.len();
        let leaked = dump.tasks.iter().filter(|d| d.task.as_ref().is_some_and(|t| t.leaked)).count();
        let tasks = if count == 1 { "task" } else { "tasks" };
        let what = match self.scope {
            Scope::SinceGuard => format!("{count} {tasks} spawned since the guard taken at {}", self.taken_at),
            Scope::Runtime => format!("{count} {tasks} of the runtime checked at {}", self.taken_at),
        };
        let after = if self.options.retry.is_zero() {
            String::new()
        } else {
            format!(" after {}", proto::duration::format(waited))
        };
        let verb = if count == 1 { "is" } else { "are" };
        let leaked = match leaked {
            0 => String::new(),
            n => format!(" ({n} leaked: nothing can wake {})", if n == 1 { "it" } else { "them" }),
        };
        let mut out = format!("taskscope: {what} {verb} still alive{after}{leaked}\n");
        // What `GetInfo` would say now; the counts are the dump's.
        let header = &round.dump.header;
        let info = crate::server::process_info(&Summary {
            now_ns: header.now_ns,
            counts: header.counts.unwrap_or_default(),
            dropped_events: header.dropped_events,
        });
        if info.mode == "hooks" {
            out.push_str("note: lean mode (runtime hooks): no wakers are seen, so no task is called leaked\n");
        }
        out.push_str(&render::chosen(&info, &dump, STACK_TIMEOUT));
        Leaks { report: out, count }
    }
}

impl Default for Guard {
    #[track_caller]
    fn default() -> Guard {
        Guard::new()
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("taken_at", &format_args!("{}", self.taken_at))
            .field("existing", &self.existing.len())
            .field("options", &self.options)
            .finish()
    }
}

/// One call at the end of a test: fails (panics with the report) when a
/// task of the current runtime other than the caller is still alive after
/// [`DEFAULT_RETRY`] of re-checks; goleak's `VerifyNone`. Sees the tasks
/// described in [the module](self) (in the full mode, those spawned after
/// the process's first guard: use `#[taskscope_agent::test]`).
///
/// # Panics
/// With the report, when tasks are left; outside a tokio runtime.
#[track_caller]
pub fn verify_none() -> impl std::future::Future<Output = ()> {
    verify_none_with(Options::default().include_existing())
}

/// [`verify_none`] with `options`.
///
/// # Panics
/// As [`verify_none`].
#[track_caller]
pub fn verify_none_with(options: Options) -> impl std::future::Future<Output = ()> {
    let mut guard = Guard::with(options);
    guard.scope = Scope::Runtime;
    async move { guard.assert_clean().await }
}

/// A guard's failure: the tasks left, or why it could not look.
pub struct Leaks {
    report: String,
    count: usize,
}

impl Leaks {
    fn cannot(why: impl fmt::Display) -> Leaks {
        Leaks { report: format!("taskscope: the guard cannot check the tasks: {why}"), count: 0 }
    }

    /// How many tasks were left (0 when the guard could not look).
    pub fn count(&self) -> usize {
        self.count
    }

    /// The report, as `taskscope stack` would print these tasks.
    pub fn report(&self) -> &str {
        &self.report
    }
}

impl fmt::Display for Leaks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.report.trim_end())
    }
}

/// The report as is, so that a test returning `Result<(), Leaks>` prints it
/// readably.
impl fmt::Debug for Leaks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\n{}", self.report.trim_end())
    }
}

impl std::error::Error for Leaks {}

/// What one look found.
struct Round {
    /// The tasks counted, with stacks when asked.
    dump: Dump,
    /// The ones not ignored by their stack.
    offenders: HashSet<u64>,
    /// Tasks whose leak verdict is still to come (never polled).
    undecided: usize,
    /// Whether stacks were taken.
    stacks: bool,
}

/// Makes sure task lifecycles are recorded from now on: starts the agent
/// (the full mode's subscriber, when this build has it and none is set)
/// and has full-mode spawns record their runtime.
pub(crate) fn start_recording() {
    // Once, and every caller waits for it: a test that went on while
    // another installed the subscriber would spawn tasks nobody records.
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        crate::tags::attribute_spawns();
        if crate::AGENT.get().is_none() {
            crate::Builder::from_env().registering_no_runtime().init();
        }
    });
}

/// The live tasks the agent attributes to `runtime`, by tokio id.
fn tasks_on(runtime: u64) -> HashSet<u64> {
    let Some(recorder) = crate::recorder_if_started() else { return HashSet::new() };
    let table = &recorder.table;
    let mut ids = HashSet::new();
    for index in 0..table.len() {
        let Some(slot) = table.slot(index) else { continue };
        let generation = slot.generation.load(Acquire);
        let kind = slot.kind.load(Acquire);
        // The future the runtime blocks on is the test itself, never a task
        // it left behind (its first poll tags it with the runtime).
        let block_on = kind & crate::slots::HOOKED == 0 && crate::slots::kind_name(kind) == "block_on";
        if slot.phase.load(Acquire) != LIVE || block_on || crate::tags::runtime_of(kind) != Some(runtime) {
            continue;
        }
        let id = slot.task_id.load(Acquire);
        // Freed and reused while read: not this task's.
        if slot.generation.load(Acquire) == generation && id != 0 {
            ids.insert(id);
        }
    }
    ids
}

/// Runs `future` on the agent's runtime, whatever the caller's runtime is
/// (paused clock, no timer, blocked elsewhere).
async fn on_agent<T: Send + 'static>(
    agent: &crate::Agent,
    future: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    agent.runtime.spawn(future).await.map_err(|e| format!("the agent's thread failed: {e}"))
}

/// Sleeps on the agent's clock (a test may have paused its own).
async fn sleep_on(agent: &crate::Agent, pause: Duration) {
    let _ = on_agent(agent, tokio::time::sleep(pause)).await;
}
