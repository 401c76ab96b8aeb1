//! What can be measured: the variants and the workloads.
//!
//! A module of its own because two binaries include it (`#[path]`): the bench
//! itself, whose tokio has the `tracing` feature, and `taskscope-bench-lean`,
//! whose tokio has not. Cargo unifies features per build, so the lean mode's
//! baseline (tokio without `tracing`) can only come from a package whose
//! dependency graph never turns it on; both must agree on names and sizes.

use clap::ValueEnum;

/// What a child process runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Variant {
    /// No subscriber: tokio's instrumentation compiled in but unused.
    Plain,
    /// `taskscope_agent::init()`.
    Agent,
    /// `console_subscriber::init()` (console-subscriber 0.5, default settings).
    Console,
    /// A bare tracing subscriber interested in the callsites the agent's full
    /// mode uses (tokio's task spans and waker events) that records nothing:
    /// what any `tracing`-based recorder pays before it records anything.
    Noop,
    /// `noop` that also reads every field it is given (a spawn span's
    /// attributes, formatting the `%` ones; a waker event's op and task id)
    /// and keeps none: the least a recorder of task names and wakers pays.
    Fields,
    /// Tokio without its `tracing` feature, no agent (taskscope-bench-lean).
    PlainLean,
    /// `taskscope_agent::build_runtime` on the same builder (taskscope-bench-lean).
    Lean,
    /// tokio's four task hooks set to empty closures on the same builder, no
    /// agent (taskscope-bench-lean): what any hook-based recorder pays before
    /// it records anything.
    Hooks,
    /// `lean` with every task spawned through `taskscope_agent::spawn`, so
    /// wrapped for the safe capture, none asked for (taskscope-bench-lean).
    LeanWrapped,
    /// `agent` with every task spawned through `taskscope_agent::spawn`.
    AgentWrapped,
    /// `agent` with exact times (`exact_times(true)`, `TASKSCOPE_EXACT_TIMES`):
    /// the counter read at every poll's start and end, not the 10 ms clock.
    AgentExact,
    /// `agent` serving `/metrics` (`TASKSCOPE_HTTP`) to a scraper that asks
    /// every second: what a Prometheus scrape costs the program.
    AgentMetrics,
    /// `lean` serving `/metrics` the same way (taskscope-bench-lean).
    LeanMetrics,
}

/// The report's variant column: as wide as the widest [`Variant::name`].
pub const VARIANT_COLUMN: usize = 13;

impl Variant {
    /// The variant's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Agent => "agent",
            Variant::Console => "console",
            Variant::Noop => "noop",
            Variant::Fields => "fields",
            Variant::PlainLean => "plain-lean",
            Variant::Lean => "lean",
            Variant::Hooks => "hooks",
            Variant::LeanWrapped => "lean-wrapped",
            Variant::AgentWrapped => "agent-wrapped",
            Variant::AgentExact => "agent-exact",
            Variant::AgentMetrics => "agent-metrics",
            Variant::LeanMetrics => "lean-metrics",
        }
    }

    /// Runs in `taskscope-bench-lean` (tokio without `tracing`) rather than
    /// in `taskscope-bench`.
    pub fn is_lean(self) -> bool {
        matches!(
            self,
            Variant::PlainLean | Variant::Lean | Variant::Hooks | Variant::LeanWrapped | Variant::LeanMetrics
        )
    }

    /// Serves `/metrics` to a scraper in the child (see `scraper.rs`).
    pub fn scraped(self) -> bool {
        matches!(self, Variant::AgentMetrics | Variant::LeanMetrics)
    }

    /// Spawns its workload's tasks through `taskscope_agent::spawn`.
    pub fn wraps(self) -> bool {
        matches!(self, Variant::LeanWrapped | Variant::AgentWrapped)
    }

    /// What this variant's ratios are against: the same program with the same
    /// tokio features and no subscriber or agent.
    pub fn baseline(self) -> Variant {
        // The metrics variants are against the same mode without the
        // endpoint: their ratio is the cost of the scrapes alone.
        if self == Variant::AgentMetrics {
            Variant::Agent
        } else if self == Variant::LeanMetrics {
            Variant::Lean
        } else if self.is_lean() {
            Variant::PlainLean
        } else {
            Variant::Plain
        }
    }

    /// A baseline itself, compared with nothing.
    pub fn is_baseline(self) -> bool {
        self.baseline() == self
    }
}

/// What a child process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Workload {
    /// Spawn 300k short tasks, then await them all.
    Spawn,
    /// 500k round trips over two bounded mpsc channels between two tasks.
    Channel,
    /// Spawn 100k tasks parked on a oneshot; resident memory once parked.
    Idle,
    /// Hold 10k parked tasks while the parent times `taskscope stack`
    /// (wrapped ones under the `-wrapped` variants, captured safely).
    Stack,
}

impl Workload {
    /// The workload's size: tasks or round trips.
    pub fn count(self, quick: bool) -> usize {
        let full = match self {
            Workload::Spawn => 300_000,
            Workload::Channel => 500_000,
            Workload::Idle => 100_000,
            Workload::Stack => 10_000,
        };
        if quick {
            full / 100
        } else {
            full
        }
    }

    /// The variants worth comparing on this workload: `stack` needs an agent,
    /// so it runs under `agent` always and under the other agent variants
    /// when they are wanted.
    pub fn variants(self, wanted: &[Variant]) -> Vec<Variant> {
        match self {
            Workload::Stack => {
                let others = [Variant::Lean, Variant::AgentWrapped, Variant::LeanWrapped];
                std::iter::once(Variant::Agent).chain(others.into_iter().filter(|v| wanted.contains(v))).collect()
            }
            _ => wanted.to_vec(),
        }
    }

    /// The workload's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Spawn => "spawn",
            Workload::Channel => "channel",
            Workload::Idle => "idle",
            Workload::Stack => "stack",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lean_is_compared_with_plain_lean_and_the_rest_with_plain() {
        assert_eq!(Variant::Lean.baseline(), Variant::PlainLean);
        assert_eq!(Variant::Hooks.baseline(), Variant::PlainLean);
        assert_eq!(Variant::Agent.baseline(), Variant::Plain);
        assert_eq!(Variant::Console.baseline(), Variant::Plain);
        assert_eq!(Variant::Noop.baseline(), Variant::Plain);
        assert_eq!(Variant::Fields.baseline(), Variant::Plain);
        assert_eq!(Variant::LeanWrapped.baseline(), Variant::PlainLean);
        assert_eq!(Variant::AgentWrapped.baseline(), Variant::Plain);
        assert_eq!(Variant::AgentExact.baseline(), Variant::Plain);
        assert!(Variant::Plain.is_baseline() && Variant::PlainLean.is_baseline());
        assert!(!Variant::Lean.is_baseline());
        assert_eq!(Variant::AgentMetrics.baseline(), Variant::Agent);
        assert_eq!(Variant::LeanMetrics.baseline(), Variant::Lean);
        assert!(Variant::LeanMetrics.is_lean() && !Variant::AgentMetrics.is_lean());
    }

    #[test]
    fn stack_runs_under_lean_only_when_wanted() {
        let all = [Variant::Plain, Variant::Lean];
        assert_eq!(Workload::Stack.variants(&all), [Variant::Agent, Variant::Lean]);
        assert_eq!(Workload::Stack.variants(&[Variant::Plain]), [Variant::Agent]);
        assert_eq!(Workload::Spawn.variants(&all), all);
    }

    #[test]
    fn every_name_fits_the_report_column() {
        let widest = Variant::value_variants().iter().map(|v| v.name().len()).max();
        assert_eq!(widest, Some(VARIANT_COLUMN));
    }

    #[test]
    fn names_match_the_command_line() {
        for v in Variant::value_variants() {
            let parsed = Variant::from_str(v.name(), false);
            assert_eq!(parsed, Ok(*v));
        }
    }
}
