//! Tasks grouped as `taskscope stack` groups them: by await point (spawn
//! location, what they wait on, and their stack, learnt from the latest
//! [`super::survey`]), the leak finder.
//!
//! A leak shows up as a group whose tasks are leaked, or whose live count
//! keeps growing while they wait on another task, so each group keeps a
//! history of its live count (one sample per second of agent time) and the
//! groups are judged and ordered by the rules `stack` uses
//! ([`taskscope_report::suspect`]): suspects first (leaked, growing, long
//! waits on another task), then by count. Timer and I/O waits are never
//! suspects by age, so an idle connection handler or an accept loop is never
//! counted STUCK.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

use taskscope_report::suspect::{self, Rules, Sort, Suspicion};
use taskscope_report::wait::Wait;

use super::history::History;
use super::task::{contains_lower, Severity, TaskRow, TaskState, Thresholds};

/// Seconds over which a group's growth is measured.
pub const GROWTH_WINDOW_SECS: usize = 60;

/// Tasks at one await point: one group of `taskscope stack`.
#[derive(Debug, Clone)]
pub struct Group {
    /// Spawn location, `file:line:column`.
    pub location: Arc<str>,
    /// The group's key: its identity in every survey, or its location alone
    /// for tasks no survey has placed yet.
    pub key: Arc<str>,
    /// The name its tasks share; empty when unnamed, `*` when they differ.
    pub name: Arc<str>,
    /// What its tasks wait on, when a survey told.
    pub wait: Option<Wait>,
    /// Why it is a leak suspect, if it is one.
    pub suspect: Option<Suspicion>,
    /// Tasks not yet done.
    pub live: u64,
    /// Finished tasks still in the table.
    pub done: u64,
    /// Live tasks that are parked.
    pub idle: u64,
    /// Parked tasks the agent reports leaked.
    pub leaked: u64,
    /// Parked tasks of a suspect group (0 for any other group).
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
    fn new(location: Arc<str>, key: Arc<str>, wait: Option<Wait>) -> Self {
        Self {
            location,
            key,
            name: Arc::from(""),
            wait,
            suspect: None,
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

    /// How alarming the group is: leaked, else a suspect parked past the
    /// leak threshold, else any suspect.
    pub fn severity(&self) -> Severity {
        match self.suspect {
            _ if self.leaked > 0 => Severity::Leaked,
            Some(_) if self.long > 0 => Severity::Long,
            Some(_) => Severity::Warn,
            None => Severity::Normal,
        }
    }

    /// The ordering key, the order of `taskscope stack`: suspects first
    /// (leaked, growing, long sync waits), then the most tasks, then the
    /// longest parked.
    fn rank(&self, sort: Sort) -> impl Ord + '_ {
        (
            match sort {
                Sort::Suspects => suspect::rank(self.suspect),
                Sort::Count => 0,
            },
            Reverse(self.live),
            self.oldest_parked_since.unwrap_or(u64::MAX),
            &self.location,
            &self.key,
        )
    }

    fn matches(&self, needle_lower: &str) -> bool {
        needle_lower.is_empty()
            || contains_lower(&self.location, needle_lower)
            || contains_lower(&self.name, needle_lower)
            || self.wait.as_ref().is_some_and(|w| contains_lower(&w.phrase, needle_lower))
    }
}

/// Every group seen, and the order in which the groups view shows them.
#[derive(Debug, Default)]
pub struct Groups {
    /// Groups by (location, key).
    index: HashMap<(Arc<str>, Arc<str>), u32>,
    groups: Vec<Group>,
    order: Vec<u32>,
    last_sample_sec: Option<u64>,
    /// Suspects first (the default), or by count only.
    pub sort: Sort,
}

impl Groups {
    /// The index of the group keyed `key` of tasks spawned at `location`,
    /// created (waiting on `wait`) if it is new.
    pub fn group_of(&mut self, location: &Arc<str>, key: &Arc<str>, wait: impl FnOnce() -> Option<Wait>) -> u32 {
        if let Some(i) = self.index.get(&(location.clone(), key.clone())) {
            return *i;
        }
        let i = self.groups.len() as u32;
        self.groups.push(Group::new(location.clone(), key.clone(), wait()));
        self.index.insert((location.clone(), key.clone()), i);
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
        let mut first_name: Vec<Option<Arc<str>>> = vec![None; self.groups.len()];
        let mut mixed = vec![false; self.groups.len()];
        for g in &mut self.groups {
            g.live = 0;
            g.done = 0;
            g.idle = 0;
            g.leaked = 0;
            g.stuck = 0;
            g.long = 0;
            g.oldest_parked_since = None;
        }
        let leak_ns = thresholds.leak_after.as_nanos() as u64;
        for t in tasks {
            let Some(g) = self.groups.get_mut(t.group as usize) else {
                continue;
            };
            let i = t.group as usize;
            match &first_name[i] {
                None => first_name[i] = Some(t.name.clone()),
                Some(name) if *name != t.name => mixed[i] = true,
                Some(_) => {}
            }
            if t.state == TaskState::Done {
                g.done += 1;
                continue;
            }
            g.live += 1;
            if let Some(since) = t.parked_since_ns() {
                g.idle += 1;
                g.oldest_parked_since = Some(g.oldest_parked_since.map_or(since, |s| s.min(since)));
                g.leaked += u64::from(t.leaked);
                g.long += u64::from(t.parked_ns(now_ns) >= Some(leak_ns));
            }
        }
        self.sample(now_ns);
        let rules = Rules { long_after: thresholds.warn_after };
        for (i, g) in self.groups.iter_mut().enumerate() {
            g.name = match (&first_name[i], mixed[i]) {
                (_, true) => Arc::from("*"),
                (Some(name), false) => name.clone(),
                (None, false) => Arc::from(""),
            };
            let longest = g.longest_parked_ns(now_ns);
            g.suspect = rules.judge(g.leaked as usize, g.wait.as_ref(), longest, Some(g.growth));
            g.stuck = if g.suspect.is_some() { g.idle } else { 0 };
        }
        self.order = (0..self.groups.len() as u32)
            .filter(|&i| {
                let g = &self.groups[i as usize];
                g.live + g.done > 0 && g.matches(needle_lower)
            })
            .collect();
        let groups = &self.groups;
        let sort = self.sort;
        self.order.sort_by(|a, b| groups[*a as usize].rank(sort).cmp(&groups[*b as usize].rank(sort)));
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
