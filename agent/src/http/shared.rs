//! One rendering for many requests: requests for the same answer that
//! arrive while it is being made, or shortly after, get the same bytes.
//!
//! Why: a fleet's scrapers and profilers, or anyone on the loopback, may ask
//! at once (a hundred concurrent scrapes), or ask again and again on one
//! connection (pipelined requests nobody reads). Each would otherwise scan
//! the task table or take a dump, which costs the program, and hold a body
//! of its own. Here a burst costs one scan and one body (`Bytes` clones share
//! it), and an answer is made at most once per `fresh_for`, however fast
//! the requests come. Scrapers ask every few seconds, so what they get is
//! never older than that.
//!
//! A rendering runs as a task of its own, to its end, even when every
//! client that wanted it hung up: a dump left half done would hold up the
//! next one (the safe capture serves one request at a time), and each is
//! bounded by its timeout anyway.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::time::Instant;

/// A rendering, and when it was done: `None` if it panicked.
type Flight<V> = Shared<BoxFuture<'static, (Option<V>, Instant)>>;

/// Renderings in flight or fresh, by what they answer.
pub(crate) struct Coalesce<K, V: Clone> {
    flights: Mutex<HashMap<K, Flight<V>>>,
    fresh_for: Duration,
}

impl<K: Eq + Hash + Clone, V: Clone + Send + Sync + 'static> Coalesce<K, V> {
    /// Answers are reused for `fresh_for` after they are made.
    pub(crate) fn new(fresh_for: Duration) -> Self {
        Coalesce { flights: Mutex::new(HashMap::new()), fresh_for }
    }

    /// The answer for `key`: the one in flight or fresh, or a new one from
    /// `make`, spawned on the current runtime (the agent's). `None` if the
    /// rendering panicked.
    pub(crate) async fn get(&self, key: K, make: impl FnOnce() -> BoxFuture<'static, V>) -> Option<V> {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let reusable = flights.get(&key).filter(|flight| match flight.peek() {
                // Still running.
                None => true,
                Some((_, done)) => done.elapsed() < self.fresh_for,
            });
            match reusable {
                Some(flight) => flight.clone(),
                None => {
                    let task = tokio::spawn(make());
                    let flight = async move { (task.await.ok(), Instant::now()) }.boxed().shared();
                    flights.insert(key, flight.clone());
                    flight
                }
            }
        };
        flight.await.0
    }
}
