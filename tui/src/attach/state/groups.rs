//! Tasks grouped by where they were spawned (and their name): the leak finder.
//!
//! A leak shows up as a group whose live count keeps growing while its tasks
//! stay parked, so each group keeps a history of its live count (one sample
//! per second of agent time) and the groups are ordered to put exactly that
//! kind of group first.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

use super::history::History;
use super::task::{contains_lower, Severity, TaskRow, TaskState, Thresholds};

/// Seconds over which a group's growth is measured.
pub const GROWTH_WINDOW_SECS: usize = 60;

/// Tasks spawned at one location with one name.
#[derive(Debug, Clone)]
pub struct Group {
    /// Spawn location, `file:line:column`.
    pub location: Arc<str>,
    /// Task name; empty for unnamed tasks.
    pub name: Arc<str>,
    /// Tasks not yet done.
    pub live: u64,
    /// Finished tasks still in the table.
    pub done: u64,
    /// Live tasks that are parked.
    pub idle: u64,
    /// Parked tasks the agent reports leaked.
    pub leaked: u64,
    /// Parked past the warning threshold (leaked ones included).
    pub stuck: u64,
    /// Parked past the leak threshold (leaked ones included).
    pub long: u64,
    /// Parked-since of its longest-parked task.
    pub oldest_parked_since: Option<u64>,
    /// Live count, one sample per second.
    pub history: History,
    /// Live count now minus a minute ago (`GROWTH_WINDOW_SECS`).
    pub growth: i64,
}

impl Group {
    fn new(location: Arc<str>, name: Arc<str>) -> Self {
        Self {
            location,
            name,
            live: 0,
            done: 0,
            idle: 0,
            leaked: 0,
            stuck: 0,
            long: 0,
            oldest_parked_since: None,
            history: History::default(),
            growth: 0,
        }
    }

    /// Longest parked time among its tasks at `now_ns`.
    pub fn longest_parked_ns(&self, now_ns: u64) -> Option<u64> {
        self.oldest_parked_since.map(|s| now_ns.saturating_sub(s))
    }

    /// How alarming the group is: its worst task, leaked counting most.
    pub fn severity(&self) -> Severity {
        if self.leaked > 0 {
            Severity::Leaked
        } else if self.long > 0 {
            Severity::Long
        } else if self.stuck > 0 {
            Severity::Warn
        } else {
            Severity::Normal
        }
    }

    /// The ordering key: growing groups of long-parked (or leaked) tasks
    /// first, then any group with stuck tasks, most stuck first; ties by
    /// growth, size and longest parked time.
    fn rank(&self) -> impl Ord + '_ {
        let suspicious = self.long > 0 || self.leaked > 0;
        let tier = if suspicious && self.growth > 0 {
            2
        } else if self.stuck > 0 {
            1
        } else {
            0
        };
        (
            Reverse(tier),
            Reverse(self.stuck),
            Reverse(self.growth),
            Reverse(self.live),
            self.oldest_parked_since.unwrap_or(u64::MAX),
            &self.location,
            &self.name,
        )
    }

    fn matches(&self, needle_lower: &str) -> bool {
        needle_lower.is_empty()
            || contains_lower(&self.location, needle_lower)
            || contains_lower(&self.name, needle_lower)
    }
}

/// Every group seen, and the order in which the groups view shows them.
#[derive(Debug, Default)]
pub struct Groups {
    index: HashMap<(Arc<str>, Arc<str>), u32>,
    groups: Vec<Group>,
    order: Vec<u32>,
    last_sample_sec: Option<u64>,
}

impl Groups {
    /// The index of the group of tasks spawned at `location` named `name`.
    pub fn group_of(&mut self, location: &Arc<str>, name: &Arc<str>) -> u32 {
        if let Some(i) = self.index.get(&(location.clone(), name.clone())) {
            return *i;
        }
        let i = self.groups.len() as u32;
        self.groups.push(Group::new(location.clone(), name.clone()));
        self.index.insert((location.clone(), name.clone()), i);
        i
    }

    /// Group `i`.
    pub fn get(&self, i: u32) -> Option<&Group> {
        self.groups.get(i as usize)
    }

    /// Shown groups (those with tasks, matching the filter), in rank order.
    pub fn ordered(&self) -> &[u32] {
        &self.order
    }

    /// Recounts every group from the whole table (one linear pass, no
    /// hashing), samples the live counts once per second of agent time, and
    /// re-ranks the groups (a sort of the groups, not of the tasks).
    pub fn recount<'a>(
        &mut self,
        tasks: impl Iterator<Item = &'a TaskRow>,
        now_ns: u64,
        thresholds: &Thresholds,
        needle_lower: &str,
    ) {
        for g in &mut self.groups {
            g.live = 0;
            g.done = 0;
            g.idle = 0;
            g.leaked = 0;
            g.stuck = 0;
            g.long = 0;
            g.oldest_parked_since = None;
        }
        for t in tasks {
            let Some(g) = self.groups.get_mut(t.group as usize) else {
                continue;
            };
            if t.state == TaskState::Done {
                g.done += 1;
                continue;
            }
            g.live += 1;
            if let Some(since) = t.parked_since_ns() {
                g.idle += 1;
                g.oldest_parked_since = Some(g.oldest_parked_since.map_or(since, |s| s.min(since)));
                match t.severity(now_ns, thresholds) {
                    Severity::Leaked => {
                        g.leaked += 1;
                        g.stuck += 1;
                        g.long += u64::from(t.parked_ns(now_ns) >= Some(thresholds.leak_after.as_nanos() as u64));
                    }
                    Severity::Long => {
                        g.stuck += 1;
                        g.long += 1;
                    }
                    Severity::Warn => g.stuck += 1,
                    Severity::Normal => {}
                }
            }
        }
        self.sample(now_ns);
        self.order = (0..self.groups.len() as u32)
            .filter(|&i| {
                let g = &self.groups[i as usize];
                g.live + g.done > 0 && g.matches(needle_lower)
            })
            .collect();
        let groups = &self.groups;
        self.order
            .sort_by(|a, b| groups[*a as usize].rank().cmp(&groups[*b as usize].rank()));
    }

    /// Pushes one live-count sample per group for each agent second elapsed
    /// since the last sample (a gap while disconnected is filled with the
    /// current value, at most a full history's worth).
    fn sample(&mut self, now_ns: u64) {
        let sec = now_ns / 1_000_000_000;
        let pushes = match self.last_sample_sec {
            // A new agent (the target restarted) starts its clock at zero.
            Some(last) if sec < last => 1,
            Some(last) => (sec - last).min(super::history::HISTORY_LEN as u64) as usize,
            None => 1,
        };
        if pushes == 0 {
            // Same second: refresh the latest sample instead.
            for g in &mut self.groups {
                g.history.set_last(g.live);
            }
        }
        for g in &mut self.groups {
            for _ in 0..pushes {
                g.history.push(g.live);
            }
            g.growth = g.history.growth(GROWTH_WINDOW_SECS);
        }
        self.last_sample_sec = Some(sec);
    }
}
