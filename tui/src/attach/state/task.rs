//! One task as the UI keeps it: the agent's record, with strings interned so
//! that 100k tasks spawned at a handful of places share a handful of strings.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use taskscope_report::wait::Class;

use taskscope_proto as proto;

/// Lifecycle state, as the agent derives it (see `TaskState` in the protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Inside a poll right now.
    Running,
    /// Woken (or never polled) and waiting for a worker.
    Scheduled,
    /// Parked: nothing has woken it since its last poll.
    Idle,
    /// Completed, cancelled or panicked.
    Done,
}

impl TaskState {
    /// Every state, in the order the header and the toggles list them.
    pub const ALL: [TaskState; 4] = [Self::Running, Self::Scheduled, Self::Idle, Self::Done];

    /// Position in [`Self::ALL`], for per-state arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Short lower-case name.
    pub fn label(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Scheduled => "scheduled",
            Self::Idle => "idle",
            Self::Done => "done",
        }
    }

    fn from_proto(state: proto::TaskState) -> Self {
        match state {
            proto::TaskState::Running => Self::Running,
            proto::TaskState::Idle => Self::Idle,
            proto::TaskState::Done => Self::Done,
            // An unset state is only possible from a broken agent; "waiting
            // for a worker" is the least alarming reading of it.
            proto::TaskState::Scheduled | proto::TaskState::Unspecified => Self::Scheduled,
        }
    }
}

/// How alarming a task's parked time is, against the user's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Nothing to see.
    Normal,
    /// Parked longer than the warning threshold.
    Warn,
    /// Parked longer than the leak threshold.
    Long,
    /// The agent reports it leaked: idle with no live waker.
    Leaked,
}

/// When parked time turns from normal to suspicious (`--warn-after`) and to
/// probably leaked (`--leak-after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Parked at least this long: warning colour.
    pub warn_after: Duration,
    /// Parked at least this long: leak colour.
    pub leak_after: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { warn_after: Duration::from_secs(10), leak_after: Duration::from_secs(60) }
    }
}

impl Thresholds {
    /// The severity of a task parked for `parked_ns` (None: not parked).
    pub fn classify(&self, parked_ns: Option<u64>, leaked: bool) -> Severity {
        if leaked {
            return Severity::Leaked;
        }
        match parked_ns {
            Some(p) if p >= self.leak_after.as_nanos() as u64 => Severity::Long,
            Some(p) if p >= self.warn_after.as_nanos() as u64 => Severity::Warn,
            _ => Severity::Normal,
        }
    }
}

/// The UI's copy of one task record.
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub id: u64,
    /// Name given at spawn; empty when unnamed.
    pub name: Arc<str>,
    /// "task", "local", "blocking", "block_on".
    pub kind: Arc<str>,
    /// Spawn location as `file:line:column`.
    pub location: Arc<str>,
    pub state: TaskState,
    /// Idle with no live waker, as the agent judged it.
    pub leaked: bool,
    pub spawned_at_ns: u64,
    pub last_poll_started_ns: u64,
    pub last_poll_ended_ns: u64,
    pub completed_at_ns: u64,
    pub polls: u64,
    pub busy_ns: u64,
    pub wakes: u64,
    pub waker_clones: u64,
    pub waker_drops: u64,
    pub live_wakers: i64,
    pub self_wakes: u64,
    /// What it waits on, from the latest survey (`None` until one placed it).
    pub wait: Option<Arc<str>>,
    /// The class of that wait.
    pub wait_class: Option<Class>,
    /// Index of its group in [`super::groups::Groups`].
    pub group: u32,
    /// The agent has dropped it; the UI keeps it because "keep done" is on.
    pub retained_here: bool,
}

impl TaskRow {
    /// Since when the task has been parked, for idle tasks only: the end of
    /// its last poll, or its spawn if it was never polled.
    pub fn parked_since_ns(&self) -> Option<u64> {
        let since = if self.last_poll_ended_ns > 0 { self.last_poll_ended_ns } else { self.spawned_at_ns };
        (self.state == TaskState::Idle).then_some(since)
    }

    /// How long it has been parked at agent time `now_ns`.
    pub fn parked_ns(&self, now_ns: u64) -> Option<u64> {
        self.parked_since_ns().map(|since| now_ns.saturating_sub(since))
    }

    /// Time since spawn; for a finished task, how long it lived.
    pub fn age_ns(&self, now_ns: u64) -> u64 {
        let end = if self.completed_at_ns > 0 { self.completed_at_ns } else { now_ns };
        end.saturating_sub(self.spawned_at_ns)
    }

    /// Its severity at `now_ns`.
    /// A task waiting on a timer or the outside world is never stuck by
    /// age: only its leaked verdict colours it.
    pub fn severity(&self, now_ns: u64, thresholds: &Thresholds) -> Severity {
        let leaked = self.leaked && self.state == TaskState::Idle;
        match self.wait_class {
            Some(Class::Timer | Class::Io) if !leaked => Severity::Normal,
            _ => thresholds.classify(self.parked_ns(now_ns), leaked),
        }
    }

    /// Whether the (lower-case) filter text matches its name, location or id.
    pub fn matches(&self, needle_lower: &str) -> bool {
        needle_lower.is_empty()
            || contains_lower(&self.name, needle_lower)
            || contains_lower(&self.location, needle_lower)
            || self.wait.as_deref().is_some_and(|w| contains_lower(w, needle_lower))
            || self.id.to_string() == needle_lower
    }
}

/// Case-insensitive `haystack.contains(needle)` where `needle` is already lower case.
pub fn contains_lower(haystack: &str, needle_lower: &str) -> bool {
    // The filter of `stack --match`, so `/` in attach matches the same tasks.
    taskscope_report::filter::contains_ignoring_case(haystack, needle_lower)
}

/// `file:line:column` of a protocol location (`<unknown>` when absent, as
/// `taskscope stack` says).
pub fn location_string(location: Option<&proto::Location>) -> String {
    match location {
        Some(l) if !l.file.is_empty() => format!("{}:{}:{}", l.file, l.line, l.column),
        _ => "<unknown>".to_string(),
    }
}

/// Hashing for task ids. Ids are unique integers chosen by tokio, not by an
/// attacker, so a multiplicative hash serves; SipHash was a tenth of the time
/// spent applying an update to 100k tasks.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// See [`IdHash`].
#[derive(Debug, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        // Odd multiplier: a bijection, good high bits for hashbrown's tags.
        self.0 = (self.0 ^ id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A map keyed by task id.
pub type IdMap<V> = std::collections::HashMap<u64, V, IdHash>;
/// A set of task ids.
pub type IdSet = std::collections::HashSet<u64, IdHash>;

/// Shares equal strings between tasks.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Arc<str>>,
}

impl Interner {
    /// The shared copy of `s`.
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(found) = self.strings.get(s) {
            return found.clone();
        }
        let shared: Arc<str> = Arc::from(s);
        self.strings.insert(shared.clone());
        shared
    }

    /// Forgets strings no task uses any more (called on a full reset).
    pub fn clear(&mut self) {
        self.strings.clear();
    }
}

impl TaskRow {
    /// Converts a protocol record; `group` is filled in by the caller.
    pub fn from_proto(task: &proto::Task, interner: &mut Interner) -> Self {
        Self {
            id: task.id,
            name: interner.get(&task.name),
            kind: interner.get(&task.kind),
            location: interner.get(&location_string(task.location.as_ref())),
            state: TaskState::from_proto(task.state()),
            leaked: task.leaked,
            spawned_at_ns: task.spawned_at_ns,
            last_poll_started_ns: task.last_poll_started_ns,
            last_poll_ended_ns: task.last_poll_ended_ns,
            completed_at_ns: task.completed_at_ns,
            polls: task.polls,
            busy_ns: task.busy_ns,
            wakes: task.wakes,
            waker_clones: task.waker_clones,
            waker_drops: task.waker_drops,
            live_wakers: task.live_wakers,
            self_wakes: task.self_wakes,
            wait: None,
            wait_class: None,
            group: 0,
            retained_here: false,
        }
    }
}
