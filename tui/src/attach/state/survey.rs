//! The survey: a dump of every task, taken every few seconds, from which
//! `attach` learns what each task waits on and which group of `taskscope
//! stack` it belongs to.
//!
//! The `Watch` stream says when tasks were spawned, polled and woken, but
//! not where they wait; the groups of `stack` are keyed by await point
//! (stack, spawn location, and what the task waits on). So `attach` groups
//! its live tasks by the key [`taskscope_report::group::Group::identity`]
//! gives the same group in every dump: the same groups, waits and order as
//! `stack`, with the live counts and growth only a live view has. A task
//! spawned since the latest survey joins its location's one group when the
//! location has one (the common case), and waits under its location alone
//! until the next survey otherwise.
//!
//! The dump is the agent's safe capture (tokio's own dump only where the
//! agent allows it): it wakes each wrapped task once, traces it inside its
//! own next poll, and harms nothing, so taking one every few seconds is
//! cheap; the interval also grows with the time the dump took.

use std::collections::HashMap;
use std::sync::Arc;

use taskscope_report::filter::Filter;
use taskscope_report::group;
use taskscope_report::suspect::{Rules, Sort};
use taskscope_report::wait::Wait;

use super::stack::DumpOutcome;
use super::task::{location_string, Interner};

/// The latest survey.
#[derive(Debug, Default)]
pub struct Survey {
    /// The dump it was made from (the detail view reads stacks from it).
    pub outcome: DumpOutcome,
    /// Each surveyed task's group key.
    placed: HashMap<u64, Arc<str>>,
    /// The group keys at each spawn location.
    at: HashMap<Arc<str>, Vec<Arc<str>>>,
    /// What each group key's tasks wait on, when known.
    waits: HashMap<Arc<str>, Option<Wait>>,
}

impl Survey {
    /// Groups the dump the way `stack` does and keys each group.
    pub fn new(outcome: DumpOutcome, interner: &mut Interner) -> Survey {
        let mut survey = Survey::default();
        for g in group::ranked(&outcome.dump, &Filter::default(), Sort::Suspects, &Rules::default()) {
            let key = interner.get(&g.identity(&outcome.dump));
            let location = interner.get(&location_string(g.tasks.first().and_then(|t| t.location.as_ref())));
            for task in &g.tasks {
                survey.placed.insert(task.id, key.clone());
            }
            let keys = survey.at.entry(location).or_default();
            if !keys.contains(&key) {
                keys.push(key.clone());
            }
            survey.waits.insert(key, g.wait.clone());
        }
        survey.outcome = outcome;
        survey
    }

    /// The group key of task `id`, spawned at `location`: its own from the
    /// survey, else its location's only group, else none (it waits under
    /// its location until the next survey).
    pub fn key_of(&self, id: u64, location: &Arc<str>) -> Option<Arc<str>> {
        if let Some(key) = self.placed.get(&id) {
            return Some(key.clone());
        }
        match self.at.get(location).map(Vec::as_slice) {
            Some([only]) => Some(only.clone()),
            _ => None,
        }
    }

    /// What the tasks of group `key` wait on, when known.
    pub fn wait(&self, key: &str) -> Option<&Wait> {
        self.waits.get(key)?.as_ref()
    }
}
