//! Which tasks the task list shows, and in what order.
//!
//! With 100k tasks the list must not be re-sorted on every frame, nor even on
//! every update. Every sort key is chosen so that it does not depend on the
//! clock: "parked for" sorts by *parked since*, "age" by *spawned at*, so a
//! task's position only changes when its record changes. An update batch then
//! costs a sort of the changed tasks and one linear merge; only a change of
//! sort column or filter re-sorts everything. Reversing the order re-sorts
//! nothing: the list is read from the other end.

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
    Location,
}

impl SortColumn {
    /// The columns in display order (also the order `s` cycles through).
    pub const ALL: [SortColumn; 9] = [
        Self::Id,
        Self::State,
        Self::Name,
        Self::Age,
        Self::Parked,
        Self::Polls,
        Self::Busy,
        Self::Wakers,
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
            Self::Location => "LOCATION",
        }
    }

    /// What the natural (not reversed) order puts first.
    pub fn natural_order(self) -> &'static str {
        match self {
            Self::Id => "lowest first",
            Self::State => "leaked, idle, scheduled, running, done",
            Self::Name | Self::Location => "A to Z",
            Self::Age => "oldest first",
            Self::Parked => "longest first",
            Self::Polls | Self::Busy => "most first",
            Self::Wakers => "fewest first",
        }
    }

    /// The next column, wrapping around.
    pub fn next(self) -> Self {
        let i = Self::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }

    /// The task's key for this column; ascending key order is the natural order.
    fn key(self, t: &TaskRow) -> SortKey {
        let num = |tier: u8, num: u64| SortKey { tier, num, text: None };
        match self {
            Self::Id => num(0, t.id),
            Self::State => num(
                match (t.state, t.leaked) {
                    (TaskState::Idle, true) => 0,
                    (TaskState::Idle, false) => 1,
                    (TaskState::Scheduled, _) => 2,
                    (TaskState::Running, _) => 3,
                    (TaskState::Done, _) => 4,
                },
                0,
            ),
            Self::Name => SortKey {
                tier: u8::from(t.name.is_empty()),
                num: 0,
                text: Some(t.name.clone()),
            },
            Self::Location => SortKey {
                tier: 0,
                num: 0,
                text: Some(t.location.clone()),
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
            Self::Wakers => num(0, (t.live_wakers as u64) ^ (1 << 63)),
        }
    }
}

/// A clock-independent sort key: tier, then number, then text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SortKey {
    tier: u8,
    num: u64,
    text: Option<Arc<str>>,
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
        Self {
            text: String::new(),
            shown: [true; 4],
        }
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
    reversed: bool,
    filter: Filter,
    needle: String,
    /// Ascending by key; ids break ties.
    entries: Vec<(SortKey, u64)>,
    /// The next refresh must rebuild from scratch.
    stale: bool,
}

impl Default for TaskOrder {
    fn default() -> Self {
        Self {
            column: SortColumn::Parked,
            reversed: false,
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

    pub fn reversed(&self) -> bool {
        self.reversed
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// Sorts by `column` (natural order) from the next refresh on.
    pub fn set_column(&mut self, column: SortColumn) {
        if column != self.column {
            self.column = column;
            self.stale = true;
        }
    }

    /// Flips the order; costs nothing.
    pub fn reverse(&mut self) {
        self.reversed = !self.reversed;
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
            self.entries.extend(
                all.filter(|t| self.filter.admits(t, &self.needle))
                    .map(|t| (column.key(t), t.id)),
            );
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
        let idx = if self.reversed {
            self.entries.len().checked_sub(i + 1)?
        } else {
            i
        };
        self.entries.get(idx).map(|(_, id)| *id)
    }

    /// Display position of task `task`, found by its key in O(log n).
    pub fn position_of(&self, task: &TaskRow) -> Option<usize> {
        let probe = (self.column.key(task), task.id);
        let idx = self.entries.binary_search(&probe).ok()?;
        Some(if self.reversed {
            self.entries.len() - 1 - idx
        } else {
            idx
        })
    }
}
