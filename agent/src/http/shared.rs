//! One rendering for many requests: requests for the same answer that
//! arrive while it is being made wait for it and get the same bytes.
//!
//! Why: a fleet's scrapers and profilers, or anyone on the loopback, may ask
//! at once (a hundred concurrent scrapes). Each would otherwise scan the task
//! table, or take a dump, and hold a body of its own. Here they cost one scan
//! and one body (`Bytes` clones share it). Nothing is cached past the
//! rendering in flight: the next request after it gets fresh data.
//!
//! A rendering runs as a task of its own, to its end, even when every
//! client that wanted it hung up: a dump left half done would hold up the
//! next one (the safe capture serves one request at a time), and each is
//! bounded by its timeout anyway.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use futures::future::{BoxFuture, FutureExt, Shared};

/// Renderings in flight, by what they answer.
pub(crate) struct Coalesce<K, V: Clone> {
    flights: Mutex<HashMap<K, Shared<BoxFuture<'static, Option<V>>>>>,
}

impl<K: Eq + Hash + Clone, V: Clone + Send + Sync + 'static> Coalesce<K, V> {
    pub(crate) fn new() -> Self {
        Coalesce { flights: Mutex::new(HashMap::new()) }
    }

    /// The answer for `key`: the one in flight, or a new one from `make`,
    /// spawned on the current runtime (the agent's). `None` if the
    /// rendering panicked.
    pub(crate) async fn get(&self, key: K, make: impl FnOnce() -> BoxFuture<'static, V>) -> Option<V> {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match flights.get(&key) {
                // `peek` is `None` while it is still running.
                Some(flight) if flight.peek().is_none() => flight.clone(),
                _ => {
                    let task = tokio::spawn(make());
                    let flight = async move { task.await.ok() }.boxed().shared();
                    flights.insert(key, flight.clone());
                    flight
                }
            }
        };
        flight.await
    }
}
