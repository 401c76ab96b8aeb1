//! The board: every wrapped future that has parked at least once, so that a
//! request can find it, wake it and collect its answer.
//!
//! Why only parked ones: a future that completes in its first poll (most
//! short tasks) never needs waking, so it never pays for a place here; one
//! that parks pays once, at its first `Pending`, with an allocation, an
//! uncontended lock and a clone of its waker, and once more when it ends.
//!
//! Sharded by task id so that workers registering and leaving at once rarely
//! meet on a lock; a request copies the entries out and lets go of each
//! shard before it wakes anyone.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use crate::slots::Key;

/// Shards of the board.
const SHARDS: usize = 16;

/// One wrapped future's place on the board.
pub(crate) struct Entry {
    /// tokio's task id, or the agent's own for a future it records itself.
    pub task_id: u64,
    /// Its slot's key in the task table (0: none), when the agent records it
    /// through tokio (spans or hooks): see [`Entry::key`].
    key: u64,
    /// The epoch of the latest request that waited for it until its timeout
    /// and got no answer (0: none).
    pub gave_up: AtomicU64,
    /// The latest epoch its future saw in a poll: below `gave_up`, it has not
    /// been polled since a request gave up on it (its runtime is blocked, or
    /// tokio's own dump lost it), so a new request does not wait for it.
    pub polled: AtomicU64,
    /// The request epoch its future has seen (see [`super::Traced`]); only
    /// the wrapper's polls write it.
    seen: AtomicU64,
    /// The identity (data and vtable pointers) of the waker it parked with,
    /// so that each `Pending` checks it without taking the lock; only the
    /// wrapper's polls write it.
    waker_id: [AtomicUsize; 2],
    /// Where it sits in its shard (the shard is its task id's, see
    /// [`shard_of`]).
    index: u32,
    /// Whether the request in [`Shared::wanted`] counts this future among
    /// those it waits for (it does not wait for stuck ones). Read and written
    /// only under `shared`'s lock (the accessors take its guard); here rather
    /// than in [`Shared`] so that an entry takes a 128-byte block, not 144.
    counted: AtomicBool,
    shared: Mutex<Shared>,
}

/// What the wrapper and the agent both touch, rarely.
#[derive(Default)]
pub(crate) struct Shared {
    /// The waker of the future's latest `Pending`, cloned once.
    pub waker: Option<Waker>,
    /// The request waiting for this future's stack, if any.
    pub wanted: Option<Arc<super::Request>>,
    /// Its latest answer: the request's epoch and one list of instruction
    /// pointers per tokio leaf it reached, leaf first. Boxed: entries live as
    /// long as their futures, answers only until the request reads them.
    pub answer: Option<Box<(u64, Vec<Vec<usize>>)>>,
}

impl Entry {
    /// Its slot in the task table: a request marks the slot so that the
    /// polls it causes are not counted as the program's (see
    /// `crate::recorder`). `None` for futures that record themselves, or when
    /// no slot was found.
    pub(crate) fn key(&self) -> Option<Key> {
        (self.key != 0).then_some(Key(self.key))
    }

    /// Whether a request gave up on it and it has not been polled since.
    pub(crate) fn stuck(&self) -> bool {
        self.polled.load(Relaxed) < self.gave_up.load(Relaxed)
    }

    /// Locks what the wrapper and the agent share. A panic while it was held
    /// (there is no code that can panic under it) would not make it unusable.
    pub(crate) fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets whether the request it is asked by waits for it. `_held`, the
    /// guard of [`Self::shared`], orders this with the request's other fields.
    pub(crate) fn set_counted(&self, _held: &MutexGuard<'_, Shared>, counted: bool) {
        self.counted.store(counted, Relaxed);
    }

    /// Whether the request waits for it, clearing it (see [`Self::set_counted`]).
    pub(crate) fn take_counted(&self, _held: &MutexGuard<'_, Shared>) -> bool {
        self.counted.swap(false, Relaxed)
    }
}

/// The shard of a future with tokio task id `task_id`.
fn shard_of(task_id: u64) -> usize {
    (task_id as usize) % SHARDS
}

struct Shard {
    entries: Vec<Option<Arc<Entry>>>,
    free: Vec<u32>,
}

/// The process's board.
pub(crate) struct Board {
    shards: [Mutex<Shard>; SHARDS],
    /// Entries on the board now.
    len: AtomicUsize,
}

pub(crate) static BOARD: Board = Board {
    shards: [const { Mutex::new(Shard { entries: Vec::new(), free: Vec::new() }) }; SHARDS],
    len: AtomicUsize::new(0),
};

/// A future's registration: its entry, which says where it sits on the
/// board. Leaves the board when dropped (when the wrapper is). One pointer,
/// so that the wrapper, which every wrapped task carries parked or not,
/// stays small: what a parked future needs is in its entry.
pub(crate) struct Registration {
    pub entry: Arc<Entry>,
}

fn waker_id(waker: &Waker) -> (usize, usize) {
    (waker.data() as usize, waker.vtable() as *const _ as usize)
}

impl Board {
    fn shard(&self, index: usize) -> MutexGuard<'_, Shard> {
        self.shards[index].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts a future that just returned `Pending` with `waker` on the board;
    /// `seen` is the request epoch it read at the start of that poll.
    pub(crate) fn register(&self, task_id: u64, key: Option<Key>, waker: &Waker, seen: u64) -> Registration {
        let mut guard = self.shard(shard_of(task_id));
        let index = match guard.free.pop() {
            Some(index) => index,
            None => {
                guard.entries.push(None);
                // More than 4 billion parked futures in one shard (terabytes
                // of tasks): then the last index is shared, and only the
                // latest to park there is on the board.
                u32::try_from(guard.entries.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let (data, vtable) = waker_id(waker);
        let entry = Arc::new(Entry {
            task_id,
            key: key.map_or(0, |k| k.0),
            gave_up: AtomicU64::new(0),
            polled: AtomicU64::new(0),
            seen: AtomicU64::new(seen),
            waker_id: [AtomicUsize::new(data), AtomicUsize::new(vtable)],
            index,
            counted: AtomicBool::new(false),
            shared: Mutex::new(Shared { waker: Some(waker.clone()), ..Shared::default() }),
        });
        if let Some(place) = guard.entries.get_mut(index as usize) {
            *place = Some(Arc::clone(&entry));
        }
        drop(guard);
        self.len.fetch_add(1, Relaxed);
        Registration { entry }
    }

    /// Every entry now on the board.
    pub(crate) fn entries(&self) -> Vec<Arc<Entry>> {
        let mut all = Vec::with_capacity(self.len());
        for shard in 0..SHARDS {
            all.extend(self.shard(shard).entries.iter().flatten().cloned());
        }
        all
    }

    /// How many futures are on the board.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Relaxed)
    }
}

impl Registration {
    /// Whether `waker` is the one registered (cheap: two comparisons).
    #[inline]
    pub(crate) fn holds(&self, waker: &Waker) -> bool {
        let (data, vtable) = waker_id(waker);
        let [held_data, held_vtable] = &self.entry.waker_id;
        held_data.load(Relaxed) == data && held_vtable.load(Relaxed) == vtable
    }

    /// Replaces the registered waker (the future is polled with another one
    /// than before) and returns the old one, for the caller to drop.
    pub(crate) fn replace_waker(&mut self, waker: &Waker) -> Option<Waker> {
        let (data, vtable) = waker_id(waker);
        self.entry.waker_id[0].store(data, Relaxed);
        self.entry.waker_id[1].store(vtable, Relaxed);
        self.entry.shared().waker.replace(waker.clone())
    }

    /// The request epoch its future has seen.
    #[inline]
    pub(crate) fn seen(&self) -> u64 {
        self.entry.seen.load(Relaxed)
    }

    /// Its future saw request epoch `epoch`.
    pub(crate) fn see(&self, epoch: u64) {
        self.entry.seen.store(epoch, Relaxed);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The agent's clone of the waker goes now, while its task's slot is
        // still the task's (see `crate::recorder::agent_waker`), rather than
        // with the last reference to the entry, which a request may hold.
        let (waker, wanted) = {
            let mut shared = self.entry.shared();
            (shared.waker.take(), shared.wanted.clone())
        };
        if let (Some(key), Some(_)) = (self.entry.key(), &waker) {
            crate::recorder::agent_waker(key, false);
        }
        drop(waker);
        // A future that ends while asked answers with nothing, so that the
        // request does not wait for it until its timeout.
        if let Some(request) = wanted {
            request.answer(&self.entry, Vec::new());
        }
        let mut guard = BOARD.shard(shard_of(self.entry.task_id));
        let index = self.entry.index as usize;
        if guard.entries.get(index).is_some_and(|e| e.as_ref().is_some_and(|e| Arc::ptr_eq(e, &self.entry))) {
            guard.entries[index] = None;
            guard.free.push(self.entry.index);
            drop(guard);
            BOARD.len.fetch_sub(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every parked wrapped future holds one entry and one registration:
    /// their size is the safe capture's memory per task (with the board's
    /// pointer and the allocator's rounding).
    #[test]
    fn entries_and_registrations_stay_small() {
        // With `Arc`'s two counts, at most 120 bytes: a 128-byte block of
        // glibc's (its 8-byte header, rounded to 16).
        assert!(std::mem::size_of::<Entry>() <= 104, "{}", std::mem::size_of::<Entry>());
        assert_eq!(std::mem::size_of::<Option<Registration>>(), 8);
    }
}
