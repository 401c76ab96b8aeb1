//! The model behind `taskscope attach`: everything the screens show, fed by
//! the agent's `Watch` stream and `GetInfo`, with no terminal types in it.
//!
//! [`State::apply`] takes each `WatchUpdate` as it arrives. Tasks are stored
//! as they come; the derived views (the sorted task list, the groups, the
//! totals) are brought up to date once per complete batch, so a snapshot sent
//! in many chunks costs one refresh, and a batch of changes costs work in
//! proportion to the changes plus one linear pass.

mod connection;
mod groups;
mod history;
mod order;
mod stack;
mod survey;
mod task;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use taskscope_proto as proto;

use taskscope_report::provenance::{self, Harm};

pub use connection::Connection;
use connection::Followed;
pub use groups::{Group, Groups};
pub use history::HISTORY_LEN;
pub use order::{Filter, SortColumn};
pub use stack::{first_own_frame, Capture, DumpOutcome, TaskStack, DUMP_TIMEOUT};
pub use task::{location_string, Severity, TaskRow, TaskState, Thresholds};

use order::TaskOrder;
use survey::Survey;
use task::{IdMap, IdSet, Interner};

/// At most this many finished tasks are kept after the agent has dropped
/// them ("keep done"); the oldest go first.
pub const KEEP_DONE_MAX: usize = 10_000;

/// Lifetime spawn and completion totals of one spawn location.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub spawned: u64,
    pub completed: u64,
}

/// Everything known about the inspected process.
#[derive(Debug)]
pub struct State {
    /// From `GetInfo`, once connected.
    pub process: Option<proto::ProcessInfo>,
    /// Agent clock at the latest update.
    pub now_ns: u64,
    /// Counts by state, as the agent reported them with the latest batch.
    pub counts: proto::TaskCounts,
    /// Lifecycle events the agent lost so far.
    pub dropped_events: u64,
    /// When parked time becomes a warning, and a likely leak.
    pub thresholds: Thresholds,
    /// The link to the agent.
    pub connection: Connection,
    /// The program followed from process to process, when following one
    /// (`attach <pid>` unless `--no-follow`, `attach --follow NAME`).
    pub follow: Option<String>,
    /// The switch to the process followed now, for the header to say.
    followed: Option<Followed>,
    /// Runtimes tokio's dump harmed, from `GetInfo` and from the dumps
    /// taken since.
    harms: Vec<Harm>,
    keep_done: bool,
    tasks: IdMap<TaskRow>,
    interner: Interner,
    groups: Groups,
    order: TaskOrder,
    totals: HashMap<Arc<str>, Totals>,
    /// Ids touched since the last refresh.
    changed: IdSet,
    /// Ids kept here after the agent dropped them, oldest first.
    retained: VecDeque<u64>,
    /// Parked-since of the longest-parked task.
    oldest_parked_since: Option<u64>,
    /// Complete batches received (0: no consistent view yet).
    batches: u64,
    /// The latest survey of every task's await point.
    survey: Option<Survey>,
}

impl State {
    /// Whether the agent observes wakers: not in its lean mode (runtime
    /// hooks), where wake counts and live wakers are unknown, not zero.
    pub fn wakers_observed(&self) -> bool {
        self.process.as_ref().is_none_or(|p| p.mode != "hooks")
    }

    /// Why the agent gives no leak verdicts, when it gives none: only its
    /// full mode sees wakers, and so only it can prove a task leaked. In the
    /// lean mode ("hooks") and without lifecycle records ("none") no task is
    /// ever marked leaked, so a count of 0 would read as "no leak".
    pub fn no_leak_verdict(&self) -> Option<&'static str> {
        match self.process.as_ref()?.mode.as_str() {
            "hooks" => Some("lean mode"),
            "none" => Some("no lifecycle records"),
            _ => None,
        }
    }

    /// An empty model, connecting.
    pub fn new(thresholds: Thresholds, keep_done: bool) -> Self {
        Self {
            process: None,
            now_ns: 0,
            counts: proto::TaskCounts::default(),
            dropped_events: 0,
            thresholds,
            connection: Connection::Connecting { attempt: 1 },
            follow: None,
            followed: None,
            harms: Vec::new(),
            keep_done,
            tasks: IdMap::default(),
            interner: Interner::default(),
            groups: Groups::default(),
            order: TaskOrder::default(),
            totals: HashMap::new(),
            changed: IdSet::default(),
            retained: VecDeque::new(),
            oldest_parked_since: None,
            batches: 0,
            survey: None,
        }
    }

    /// Records the answer to `GetInfo` (after each connect: a restarted
    /// program behind the same socket starts unharmed).
    pub fn set_info(&mut self, info: proto::ProcessInfo) {
        self.dropped_events = self.dropped_events.max(info.dropped_events);
        self.harms = provenance::harmed(&info);
        self.process = Some(info);
    }

    /// Orders the groups suspects first (the default) or by count only.
    pub fn set_group_sort(&mut self, sort: taskscope_report::suspect::Sort) {
        self.groups.sort = sort;
        self.regroup();
    }

    /// Learns from a dump's answer whether tokio's dump harmed a runtime
    /// (`GetInfo` is asked only at connect, and a dump can be the harm).
    pub fn note_dump(&mut self, outcome: &DumpOutcome) {
        for harm in provenance::harms(&[], &outcome.runtimes) {
            if !self.harms.iter().any(|h| h.runtime == harm.runtime) {
                self.harms.push(harm);
            }
        }
    }

    /// Runtimes tokio's dump harmed: the program should be restarted.
    pub fn harms(&self) -> &[Harm] {
        &self.harms
    }

    /// Applies one message of the `Watch` stream.
    pub fn apply(&mut self, update: proto::WatchUpdate) {
        if update.reset {
            self.tasks.clear();
            self.retained.clear();
            self.totals.clear();
            self.changed.clear();
            self.interner.clear();
            self.order.invalidate();
        }
        if update.now_ns > 0 {
            self.now_ns = update.now_ns;
        }
        // tokio's own worker threads (blocking tasks of the runtime) are not
        // the program's tasks; the agent leaves them out of the counts too.
        for task in update.tasks.iter().filter(|t| !t.runtime_internal) {
            let mut row = TaskRow::from_proto(task, &mut self.interner);
            match self.tasks.get(&task.id) {
                Some(old) => {
                    row.group = old.group;
                    row.wait = old.wait.clone();
                    row.wait_class = old.wait_class;
                }
                None => self.place(&mut row),
            }
            self.changed.insert(row.id);
            self.tasks.insert(row.id, row);
        }
        for id in update.removed {
            self.forget(id);
        }
        for lt in update.location_totals {
            let loc = self.interner.get(&location_string(lt.location.as_ref()));
            self.totals.insert(loc, Totals { spawned: lt.spawned, completed: lt.completed });
        }
        self.dropped_events = self.dropped_events.max(update.dropped_events);
        if update.complete {
            if let Some(counts) = update.counts {
                self.counts = counts;
            }
            self.batches += 1;
            self.refresh();
        }
    }

    /// Puts `row` in its group: the survey's, else its location's.
    fn place(&mut self, row: &mut TaskRow) {
        let key = self.survey.as_ref().and_then(|s| s.key_of(row.id, &row.location));
        let survey = self.survey.as_ref();
        let known = key.as_ref().and_then(|k| survey?.wait(k)).cloned();
        row.wait = known.as_ref().map(|w| self.interner.get(&w.phrase));
        row.wait_class = known.as_ref().map(|w| w.class);
        let key = key.unwrap_or_else(|| row.location.clone());
        row.group = self.groups.group_of(&row.location, &key, || known);
    }

    /// Takes in a survey (a dump of every task): every task moves to the
    /// group of its await point, and learns what it waits on.
    pub fn set_survey(&mut self, outcome: DumpOutcome) {
        self.note_dump(&outcome);
        self.survey = Some(Survey::new(outcome, &mut self.interner));
        let ids: Vec<u64> = self.tasks.keys().copied().collect();
        for id in ids {
            let Some(mut row) = self.tasks.remove(&id) else { continue };
            let before = (row.group, row.wait.clone());
            self.place(&mut row);
            if (row.group, row.wait.clone()) != before {
                self.changed.insert(id);
            }
            self.tasks.insert(id, row);
        }
        self.refresh();
    }

    /// The latest survey's dump, if one came.
    pub fn survey(&self) -> Option<&DumpOutcome> {
        self.survey.as_ref().map(|s| &s.outcome)
    }

    /// The agent no longer keeps task `id`: drop it, or keep it as done.
    fn forget(&mut self, id: u64) {
        if self.keep_done {
            if let Some(t) = self.tasks.get_mut(&id) {
                if !t.retained_here {
                    t.retained_here = true;
                    t.state = TaskState::Done;
                    self.retained.push_back(id);
                    self.changed.insert(id);
                }
                while self.retained.len() > KEEP_DONE_MAX {
                    if let Some(old) = self.retained.pop_front() {
                        self.tasks.remove(&old);
                        self.changed.insert(old);
                    }
                }
                return;
            }
        }
        if self.tasks.remove(&id).is_some() {
            self.changed.insert(id);
        }
    }

    /// Brings the sorted list, the groups and the totals up to date.
    fn refresh(&mut self) {
        let tasks = &self.tasks;
        self.order.refresh(tasks.values(), &self.changed, |id| tasks.get(&id));
        self.changed.clear();
        self.regroup();
    }

    fn regroup(&mut self) {
        let needle = self.order.filter().text.to_lowercase();
        self.groups.recount(self.tasks.values(), self.now_ns, &self.thresholds, &needle);
        self.oldest_parked_since =
            self.groups.ordered().iter().filter_map(|i| self.groups.get(*i)?.oldest_parked_since).min();
    }

    /// Records a change of the connection.
    pub fn set_connection(&mut self, connection: Connection) {
        if matches!(connection, Connection::Exited { .. }) {
            // The process followed is the one gone now.
            self.followed = None;
        }
        self.connection = connection;
    }

    /// Whether a complete view has arrived since the UI started.
    pub fn has_data(&self) -> bool {
        self.batches > 0
    }

    // ---- options ------------------------------------------------------

    pub fn sort_column(&self) -> SortColumn {
        self.order.column()
    }

    /// ↓: the task list shows the largest value of its column first.
    pub fn sort_descending(&self) -> bool {
        self.order.descending()
    }

    /// Sorts the task list by `column`, in the direction it starts in
    /// ([`SortColumn::starts_descending`]).
    pub fn set_sort_column(&mut self, column: SortColumn) {
        self.order.set_column(column);
        self.refresh();
    }

    /// Flips the task list's direction (↓ and ↑).
    pub fn reverse_order(&mut self) {
        self.order.reverse();
    }

    pub fn filter(&self) -> &Filter {
        self.order.filter()
    }

    /// Shows only tasks and groups whose name or location contain `text`
    /// (any case), or whose id is `text`.
    pub fn set_filter_text(&mut self, text: &str) {
        let filter = Filter { text: text.to_string(), ..self.order.filter().clone() };
        self.order.set_filter(filter);
        self.refresh();
    }

    /// Shows or hides tasks in `state`.
    pub fn toggle_state(&mut self, state: TaskState) {
        let mut filter = self.order.filter().clone();
        filter.shown[state.index()] = !filter.shown[state.index()];
        self.order.set_filter(filter);
        self.refresh();
    }

    pub fn keep_done(&self) -> bool {
        self.keep_done
    }

    /// Keeps (or stops keeping) finished tasks after the agent drops them.
    pub fn toggle_keep_done(&mut self) {
        self.keep_done = !self.keep_done;
        if !self.keep_done {
            for id in std::mem::take(&mut self.retained) {
                self.tasks.remove(&id);
                self.changed.insert(id);
            }
            self.refresh();
        }
    }

    // ---- reading ------------------------------------------------------

    /// Task `id`, if in the table.
    pub fn task(&self, id: u64) -> Option<&TaskRow> {
        self.tasks.get(&id)
    }

    /// Tasks in the table (shown or not).
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Tasks the list shows.
    pub fn shown_count(&self) -> usize {
        self.order.len()
    }

    /// The task at display position `i` of the list.
    pub fn shown_task(&self, i: usize) -> Option<&TaskRow> {
        self.tasks.get(&self.order.id_at(i)?)
    }

    /// Display position of task `id` in the list.
    pub fn position_of(&self, id: u64) -> Option<usize> {
        self.order.position_of(self.tasks.get(&id)?)
    }

    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// Groups the groups view shows, in rank order.
    pub fn shown_groups(&self) -> impl ExactSizeIterator<Item = (u32, &Group)> + '_ {
        self.groups.ordered().iter().map(|i| (*i, self.groups.get(*i).expect("ordered group exists")))
    }

    /// Lifetime totals of a spawn location.
    pub fn totals(&self, location: &str) -> Totals {
        self.totals.get(location).copied().unwrap_or_default()
    }

    /// Ids of the live tasks of group `group`, longest parked first, at most `limit`.
    pub fn group_task_ids(&self, group: u32, limit: usize) -> Vec<u64> {
        let mut ids: Vec<(u64, u64)> = self
            .tasks
            .values()
            .filter(|t| t.group == group && t.state != TaskState::Done)
            .map(|t| (t.parked_since_ns().unwrap_or(u64::MAX), t.id))
            .collect();
        ids.sort_unstable();
        ids.into_iter().take(limit).map(|(_, id)| id).collect()
    }

    /// The longest time any task has been parked.
    pub fn longest_parked_ns(&self) -> Option<u64> {
        self.oldest_parked_since.map(|s| self.now_ns.saturating_sub(s))
    }

    /// How long the process has run, on the agent's clock.
    pub fn uptime_ns(&self) -> Option<u64> {
        let p = self.process.as_ref()?;
        Some(p.uptime_ns + self.now_ns.saturating_sub(p.now_ns))
    }
}
