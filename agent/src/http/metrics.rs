//! `/metrics`: the task table as Prometheus series, encoded by
//! prometheus-client (OpenMetrics text, or Prometheus text 0.0.4 for a
//! scraper that does not ask for OpenMetrics).
//!
//! Per spawn location (label `location`, `file:line:col`; `name` when its
//! tasks are named):
//!
//! - `taskscope_tasks{state}`: live tasks, by `running`, `scheduled`, `idle`;
//! - `taskscope_tasks_leaked`: idle with no live waker (full mode only: the
//!   lean mode gives no verdict, and a 0 would read as "no leak");
//! - `taskscope_tasks_spawned_total`, `taskscope_tasks_completed_total`;
//! - `taskscope_task_longest_parked_seconds`: the longest parked of its idle tasks.
//!
//! Process-wide: `taskscope_dropped_events_total`,
//! `taskscope_agent_memory_bytes` (the task table),
//! `taskscope_dump_duration_seconds` (a histogram: its `_count` is the dumps
//! taken), `taskscope_spawn_locations` and `taskscope_agent_info`.
//!
//! **Cardinality is bounded.** Only the `top` locations with the most live
//! tasks (then the most spawned, then by name, so the choice is stable
//! between scrapes) get series of their own; the rest are summed under
//! `location="other"`, and `taskscope_spawn_locations` says how many there
//! were. The price: `other`'s counters step back when a location moves out of
//! it (Prometheus reads that as a counter reset). Spawn locations are places
//! in the code, so their number is bounded by the program; names are not
//! (`conn 17`), so `name` is one label value per location: the name of its
//! tasks when they all have the same one, remembered so that a counter keeps
//! its series when the tasks are gone, and empty once two names were seen.

use std::collections::HashMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use taskscope_proto as proto;
use taskscope_report::dump as report;

use crate::state::Snapshot;

/// The label value of the locations summed together.
pub(crate) const OTHER: &str = "other";

/// Most locations whose name is remembered (see [`Names`]).
const MAX_NAMED: usize = 10_000;

/// The series of one spawn location (or of [`OTHER`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Location {
    pub location: String,
    pub name: String,
    pub running: u64,
    pub scheduled: u64,
    pub idle: u64,
    pub leaked: u64,
    pub spawned: u64,
    pub completed: u64,
    pub longest_parked_ns: u64,
}

impl Location {
    fn live(&self) -> u64 {
        self.running + self.scheduled + self.idle
    }

    /// Adds `other`'s tasks to these.
    fn absorb(&mut self, other: &Location) {
        self.running += other.running;
        self.scheduled += other.scheduled;
        self.idle += other.idle;
        self.leaked += other.leaked;
        self.spawned += other.spawned;
        self.completed += other.completed;
        self.longest_parked_ns = self.longest_parked_ns.max(other.longest_parked_ns);
    }
}

/// Everything one scrape shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Exposition {
    /// The top locations, most live tasks first, then [`OTHER`] if any was cut.
    pub locations: Vec<Location>,
    /// Spawn locations known, before the cut.
    pub known_locations: usize,
    /// The recording mode (`tracing`, `hooks`, `none`): only `tracing` gives
    /// the leak verdict.
    pub mode: String,
    pub dropped_events: u64,
    pub table_bytes: u64,
    pub agent_version: String,
    pub tokio_version: String,
}

/// The name label each location keeps (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Names {
    /// `None`: its tasks had several names.
    seen: HashMap<String, Option<String>>,
}

impl Names {
    fn see(&mut self, location: &str, name: &str) {
        if name.is_empty() {
            return;
        }
        let full = self.seen.len() >= MAX_NAMED;
        match self.seen.get_mut(location) {
            Some(kept) if kept.as_deref().is_some_and(|kept| kept != name) => *kept = None,
            Some(_) => {}
            None if !full => {
                self.seen.insert(location.to_owned(), Some(name.to_owned()));
            }
            None => {}
        }
    }

    fn label(&self, location: &str) -> String {
        self.seen.get(location).cloned().flatten().unwrap_or_default()
    }
}

/// The exposition of `snapshot` and its location `totals`, with at most
/// `top` locations named. tokio's own runtime tasks are left out, as
/// `taskscope stack` leaves them out.
pub(crate) fn exposition(
    snapshot: &Snapshot,
    totals: &[proto::LocationTotals],
    names: &mut Names,
    top: usize,
) -> Exposition {
    // Keyed by the record's own (file, line, column), so that 10k tasks
    // cost 10k lookups and one string per location, not 10k strings.
    let mut by_site: HashMap<Site<'_>, Location> = HashMap::new();
    let mut internal: Vec<Site<'_>> = Vec::new();
    // The first name seen at each site, and another one if any.
    let mut named: HashMap<Site<'_>, (&str, Option<&str>)> = HashMap::new();
    for task in &snapshot.tasks {
        let site = site(task.location.as_ref());
        if task.runtime_internal {
            internal.push(site);
            continue;
        }
        if !task.name.is_empty() {
            let seen = named.entry(site).or_insert((&task.name, None));
            if seen.0 != task.name {
                seen.1 = Some(&task.name);
            }
        }
        let entry = by_site.entry(site).or_default();
        match report::state(task) {
            proto::TaskState::Running => entry.running += 1,
            proto::TaskState::Scheduled => entry.scheduled += 1,
            proto::TaskState::Idle => entry.idle += 1,
            _ => continue,
        }
        entry.leaked += u64::from(task.leaked);
        if let Some(parked) = report::parked_ns(task, snapshot.now_ns) {
            entry.longest_parked_ns = entry.longest_parked_ns.max(parked);
        }
    }
    for total in totals {
        let site = site(total.location.as_ref());
        if internal.contains(&site) {
            continue;
        }
        let entry = by_site.entry(site).or_default();
        entry.spawned = total.spawned;
        entry.completed = total.completed;
    }
    for (site, (first, other)) in named {
        let label = label_of(site);
        names.see(&label, first);
        if let Some(other) = other {
            names.see(&label, other);
        }
    }
    let by_location = by_site.into_iter().map(|(site, l)| (label_of(site), l));
    let mut locations: Vec<Location> = by_location
        .map(|(location, mut l)| {
            l.name = names.label(&location);
            l.location = location;
            // Tasks found live that the totals did not count yet.
            l.spawned = l.spawned.max(l.completed + l.live());
            l
        })
        .collect();
    let known_locations = locations.len();
    locations.sort_by(|a, b| {
        b.live().cmp(&a.live()).then(b.spawned.cmp(&a.spawned)).then_with(|| a.location.cmp(&b.location))
    });
    if locations.len() > top {
        let mut other = Location { location: OTHER.to_string(), ..Location::default() };
        for cut in locations.drain(top..) {
            other.absorb(&cut);
        }
        locations.push(other);
    }
    Exposition {
        locations,
        known_locations,
        mode: crate::recorder::mode().to_owned(),
        dropped_events: snapshot.dropped_events,
        table_bytes: table_bytes(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        tokio_version: env!("TASKSCOPE_TOKIO_VERSION").to_owned(),
    }
}

/// A spawn site as a record gives it: file, line, column (`None`: unknown).
type Site<'a> = Option<(&'a str, u32, u32)>;

fn site(location: Option<&proto::Location>) -> Site<'_> {
    location.filter(|l| !l.file.is_empty()).map(|l| (l.file.as_str(), l.line, l.column))
}

/// The `location` label: `file:line:col`, as `taskscope stack` writes it.
fn label_of(site: Site<'_>) -> String {
    match site {
        Some((file, line, column)) => format!("{file}:{line}:{column}"),
        None => "unknown".to_string(),
    }
}

/// Bytes of the task table: the slots handed out so far, each two cache lines.
fn table_bytes() -> u64 {
    let slots = crate::recorder_if_started().map_or(0, |r| r.table.len());
    (slots * std::mem::size_of::<crate::slots::Slot>()) as u64
}

/// The text format a scraper gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Format {
    OpenMetrics,
    Prometheus,
}

impl Format {
    /// OpenMetrics when the `Accept` header names it (Prometheus itself
    /// does), else the classic text format every scraper reads.
    pub(crate) fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// `exposition` encoded in `format`.
pub(crate) fn encode(exposition: Exposition, format: Format) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(exposition));
    let mut out = String::new();
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry)?,
        Format::Prometheus => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?,
    }
    Ok(out)
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let labels = |l: &Location| [("location", l.location.clone()), ("name", l.name.clone())];
        {
            let mut family = encoder.encode_descriptor(
                "taskscope_tasks",
                "Live tasks by spawn location and state",
                None,
                MetricType::Gauge,
            )?;
            for l in &self.locations {
                for (state, n) in [("running", l.running), ("scheduled", l.scheduled), ("idle", l.idle)] {
                    let [location, name] = labels(l);
                    let set = [location, name, ("state", state.to_string())];
                    ConstGauge::new(n).encode(family.encode_family(&set)?)?;
                }
            }
        }
        if self.mode == "tracing" {
            let mut family = encoder.encode_descriptor(
                "taskscope_tasks_leaked",
                "Idle tasks that nothing can wake any more (no live waker)",
                None,
                MetricType::Gauge,
            )?;
            for l in &self.locations {
                ConstGauge::new(l.leaked).encode(family.encode_family(&labels(l))?)?;
            }
        }
        type Counter = (&'static str, &'static str, fn(&Location) -> u64);
        let counters: [Counter; 2] = [
            ("taskscope_tasks_spawned", "Tasks spawned, by spawn location", |l| l.spawned),
            ("taskscope_tasks_completed", "Tasks completed, by spawn location", |l| l.completed),
        ];
        for (metric, help, value) in counters {
            let mut family = encoder.encode_descriptor(metric, help, None, MetricType::Counter)?;
            for l in &self.locations {
                ConstCounter::new(value(l)).encode(family.encode_family(&labels(l))?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "taskscope_task_longest_parked",
                "How long the longest-parked idle task of the spawn location has been parked",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?;
            for l in &self.locations {
                ConstGauge::new(l.longest_parked_ns as f64 / 1e9).encode(family.encode_family(&labels(l))?)?;
            }
        }
        let help = "Task events the agent could not record (its records are incomplete when this grows)";
        ConstCounter::new(self.dropped_events).encode(encoder.encode_descriptor(
            "taskscope_dropped_events",
            help,
            None,
            MetricType::Counter,
        )?)?;
        let memory = encoder.encode_descriptor(
            "taskscope_agent_memory",
            "Memory the agent holds for its task table",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.table_bytes).encode(memory)?;
        let help = "How long the dumps the agent took for its clients lasted (stack, attach, the profile endpoint)";
        crate::http::stats::dump_seconds().encode(encoder.encode_descriptor(
            "taskscope_dump_duration",
            help,
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?)?;
        let help = "Spawn locations known (those past TASKSCOPE_METRICS_LOCATIONS are summed under location=\"other\")";
        ConstGauge::new(self.known_locations as u64).encode(encoder.encode_descriptor(
            "taskscope_spawn_locations",
            help,
            None,
            MetricType::Gauge,
        )?)?;
        let info = Info::new([
            ("mode", self.mode.clone()),
            ("agent_version", self.agent_version.clone()),
            ("tokio_version", self.tokio_version.clone()),
        ]);
        info.encode(encoder.encode_descriptor(
            "taskscope_agent",
            "The agent and the tokio it records",
            None,
            MetricType::Info,
        )?)?;
        Ok(())
    }
}
