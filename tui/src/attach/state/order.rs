//! Which tasks the task list shows, and in what order.
//!
//! With 100k tasks the list must not be re-sorted on every frame, nor even on
//! every update. Every sort key is chosen so that it does not depend on the
//! clock: "parked for" sorts by *parked since*, "age" by *spawned at*, so a
//! task's position only changes when its record changes. An update batch then
//! costs a sort of the changed tasks and one linear merge; only a change of
//! sort column or filter re-sorts everything. Reversing the order re-sorts
//! nothing: the list is read from the other end.
//!
//! The arrow means the same in every column: ↓ puts the largest value first
//! (the highest id, the oldest, the longest parked, the most polls, the most
//! wakers, Z before A, leaked before done), ↑ the smallest. Each column
//! starts in the direction that is the more useful to look at (polls ↓,
//! names ↑ from A), and says which. Tasks without a value in the column
//! (unnamed, not parked, finished for the age) stay after the others in
//! both directions, as blanks do in a spreadsheet.

use std::cmp::Reverse;
use std::sync::Arc;

use super::task::{IdSet, TaskRow, TaskState};

/// A column of the task list the user can sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    Id,
    State,
    Name,
    Age,
    Parked,
    Polls,
    Busy,
    Wakers,
    Wait,
    Location,
}

impl SortColumn {
    /// The columns in display order (also the order `s` cycles through).
    pub const ALL: [SortColumn; 10] = [
        Self::Id,
        Self::State,
        Self::Name,
        Self::Age,
        Self::Parked,
        Self::Polls,
        Self::Busy,
        Self::Wakers,
        Self::Wait,
        Self::Location,
    ];

    /// Column title.
    pub fn title(self) -> &'static str {
        match self {
            Self::Id => "ID",
            Self::State => "STATE",
            Self::Name => "NAME",
            Self::Age => "AGE",
            Self::Parked => "PARKED",
            Self::Polls => "POLLS",
            Self::Busy => "BUSY",
            Self::Wakers => "WAKERS",
            Self::Wait => "WAIT",
            Self::Location => "LOCATION",
        }
    }

    /// What ↓ puts first (↑ is the reverse).
    pub fn descending(self) -> &'static str {
        match self {
            Self::Id => "highest first",
            Self::State => "leaked, idle, scheduled, running, done",
            Self::Name => "Z to A, unnamed tasks last",
            Self::Location => "Z to A",
            Self::Age => "oldest first, finished tasks after (longest-lived first)",
            Self::Parked => "longest first, tasks not parked after",
            Self::Polls | Self::Busy => "most first",
            Self::Wakers => "most live wakers first",
            Self::Wait => "Z to A, tasks with no known wait last",
        }
    }

    /// The direction the column starts in when chosen: ↓ (largest first) for
    /// the measures a leak hunt looks at the top of, ↑ for ids and text (A
    /// to Z) and for wakers (a parked task with none is the suspect).
    pub fn starts_descending(self) -> bool {
        !matches!(self, Self::Id | Self::Name | Self::Wait | Self::Location | Self::Wakers)
    }

    /// The next column, wrapping around.
    pub fn next(self) -> Self {
        let i = Self::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }

    /// The task's key for this column: ascending key order is ↓, largest
    /// first. Tier 1 holds the tasks without a value, kept last both ways.
    fn key(self, t: &TaskRow) -> SortKey {
        let num = |tier: u8, num: u64| SortKey { tier, num, text: None };
        let text = |tier: u8, text: &Arc<str>| SortKey { tier, num: 0, text: Some(Reverse(text.clone())) };
        match self {
            Self::Id => num(0, u64::MAX - t.id),
            Self::State => num(
                0,
                match (t.state, t.leaked) {
                    (TaskState::Idle, true) => 0,
                    (TaskState::Idle, false) => 1,
                    (TaskState::Scheduled, _) => 2,
                    (TaskState::Running, _) => 3,
                    (TaskState::Done, _) => 4,
                },
            ),
            Self::Name => text(u8::from(t.name.is_empty()), &t.name),
            Self::Location => text(0, &t.location),
            Self::Wait => match &t.wait {
                Some(wait) => text(0, wait),
                None => SortKey { tier: 1, num: 0, text: None },
            },
            // Oldest first: live tasks by spawn time; finished ones (whose age
            // is frozen) after them, longest-lived first.
            Self::Age if t.completed_at_ns > 0 => num(1, u64::MAX - t.age_ns(0)),
            Self::Age => num(0, t.spawned_at_ns),
            Self::Parked => match t.parked_since_ns() {
                Some(since) => num(0, since),
                None => num(1, 0),
            },
            Self::Polls => num(0, u64::MAX - t.polls),
            Self::Busy => num(0, u64::MAX - t.busy_ns),
            // The sign bit flipped: i64 order as u64 order, then descending.
            Self::Wakers => num(0, u64::MAX - ((t.live_wakers as u64) ^ (1 << 63))),
        }
    }
}

/// A clock-independent sort key: tier (0, or 1 for no value), then number,
/// then text (Z first).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SortKey {
    tier: u8,
    num: u64,
    text: Option<Reverse<Arc<str>>>,
}

/// Which tasks are shown: text filter, states, and whether finished tasks the
/// agent has dropped are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Case-insensitive text matched against name, location and id.
    pub text: String,
    /// Shown states, indexed by [`TaskState::index`].
    pub shown: [bool; 4],
}

impl Default for Filter {
    fn default() -> Self {
        Self { text: String::new(), shown: [true; 4] }
    }
}

impl Filter {
    /// Whether the task passes; `needle` is `text` in lower case.
    fn admits(&self, t: &TaskRow, needle: &str) -> bool {
        self.shown[t.state.index()] && t.matches(needle)
    }
}

/// The filtered, sorted list of task ids.
#[derive(Debug)]
pub(super) struct TaskOrder {
    column: SortColumn,
    /// ↑: each tier is read from its end.
    ascending: bool,
    filter: Filter,
    needle: String,
    /// Ascending by key (↓ order); ids break ties.
    entries: Vec<(SortKey, u64)>,
    /// The next refresh must rebuild from scratch.
    stale: bool,
}

impl Default for TaskOrder {
    fn default() -> Self {
        Self {
            column: SortColumn::Parked,
            ascending: !SortColumn::Parked.starts_descending(),
            filter: Filter::default(),
            needle: String::new(),
            entries: Vec::new(),
            stale: true,
        }
    }
}

impl TaskOrder {
    pub fn column(&self) -> SortColumn {
        self.column
    }

    /// ↓: the largest value first.
    pub fn descending(&self) -> bool {
        !self.ascending
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// Sorts by `column`, in the direction it starts in, from the next
    /// refresh on.
    pub fn set_column(&mut self, column: SortColumn) {
        if column != self.column {
            self.column = column;
            self.ascending = !column.starts_descending();
            self.stale = true;
        }
    }

    /// Flips the direction; costs nothing.
    pub fn reverse(&mut self) {
        self.ascending = !self.ascending;
    }

    /// Applies a new filter from the next refresh on.
    pub fn set_filter(&mut self, filter: Filter) {
        if filter != self.filter {
            self.needle = filter.text.to_lowercase();
            self.filter = filter;
            self.stale = true;
        }
    }

    /// Forces a full rebuild on the next refresh (after a reset).
    pub fn invalidate(&mut self) {
        self.stale = true;
    }

    /// Brings the list up to date: a full rebuild when stale, else only the
    /// tasks in `changed` (new, updated or removed ids) move.
    pub fn refresh<'a>(
        &mut self,
        all: impl Iterator<Item = &'a TaskRow>,
        changed: &IdSet,
        lookup: impl Fn(u64) -> Option<&'a TaskRow>,
    ) {
        let column = self.column;
        if self.stale {
            self.stale = false;
            self.entries.clear();
            self.entries.extend(all.filter(|t| self.filter.admits(t, &self.needle)).map(|t| (column.key(t), t.id)));
            self.entries.sort_unstable();
            return;
        }
        if changed.is_empty() {
            return;
        }
        let mut fresh: Vec<(SortKey, u64)> = changed
            .iter()
            .filter_map(|id| lookup(*id))
            .filter(|t| self.filter.admits(t, &self.needle))
            .map(|t| (column.key(t), t.id))
            .collect();
        fresh.sort_unstable();
        let old = std::mem::take(&mut self.entries);
        let mut merged = Vec::with_capacity(old.len() + fresh.len());
        let mut fresh = fresh.into_iter().peekable();
        for entry in old.into_iter().filter(|(_, id)| !changed.contains(id)) {
            while fresh.peek().is_some_and(|f| *f < entry) {
                merged.extend(fresh.next());
            }
            merged.push(entry);
        }
        merged.extend(fresh);
        self.entries = merged;
    }

    /// Number of tasks shown.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The id shown at display position `i`.
    pub fn id_at(&self, i: usize) -> Option<u64> {
        if i >= self.entries.len() {
            return None;
        }
        self.entries.get(self.flip(i)).map(|(_, id)| *id)
    }

    /// Display position of task `task`, found by its key in O(log n).
    pub fn position_of(&self, task: &TaskRow) -> Option<usize> {
        let probe = (self.column.key(task), task.id);
        let idx = self.entries.binary_search(&probe).ok()?;
        Some(self.flip(idx))
    }

    /// Between display position and index into `entries` (the same map
    /// both ways): ↓ reads them in order; ↑ reads each tier backwards, the
    /// tasks without a value still last. `i` is below `entries.len()`.
    fn flip(&self, i: usize) -> usize {
        if !self.ascending {
            return i;
        }
        let valued = self.entries.partition_point(|(key, _)| key.tier == 0);
        if i < valued {
            valued - 1 - i
        } else {
            self.entries.len() - 1 - (i - valued)
        }
    }
}
