//! The host's steal time: CPU time that the hypervisor gave to other
//! machines while this one had work for it (`/proc/stat`'s `steal`).
//!
//! Why the bench reads it: on the shared 2-CPU machine its figures come
//! from, the same binaries measured minutes apart gave the full mode ×1.18
//! and ×1.41 on channel work, and `fields`, the floor any tracing-based
//! recorder pays, ×1.15 and ×1.29. The slow runs were those in which the
//! host's steal was 3% of its CPU time; in the fast one it was 0.5%. A
//! neighbour that takes the CPU also takes its caches, and a variant with
//! more code on the hot path loses more to that than its baseline: the
//! ratio moves, not just the times. So every round's steal is reported, and
//! `--max-steal` repeats the rounds measured while the neighbours were busy.

/// `/proc/stat`'s first line, in clock ticks: steal, and every state summed.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    steal: u64,
    total: u64,
}

/// The host's counters now; `None` where `/proc/stat` cannot be read or
/// has no steal column (not Linux, or a kernel older than 2.6.11).
pub fn read() -> Option<Reading> {
    parse(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse(stat: &str) -> Option<Reading> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let ticks: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|v| v.parse().ok()).collect::<Option<_>>()?;
    let steal = *ticks.get(7)?;
    Some(Reading { steal, total: ticks.iter().sum() })
}

/// Steal's share of the host's CPU time between two readings, in percent;
/// `None` if no time passed or the counters went back.
pub fn share(before: Reading, after: Reading) -> Option<f64> {
    let total = after.total.checked_sub(before.total).filter(|&t| t > 0)?;
    let steal = after.steal.checked_sub(before.steal)?;
    Some(100.0 * steal as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_steal_over_every_state() {
        let before = parse("cpu  100 0 50 800 10 0 5 5 0 0\ncpu0 1 2 3").expect("parse");
        let after = parse("cpu  150 0 70 1000 10 0 5 15 7 0\n").expect("parse");
        // 280 ticks passed, 10 of them stolen.
        let share = share(before, after).expect("time passed");
        assert!((share - 100.0 * 10.0 / 280.0).abs() < 1e-9, "{share}");
        assert_eq!(super::share(after, before), None, "counters going back are no reading");
    }

    #[test]
    fn a_line_without_steal_is_no_reading() {
        assert!(parse("cpu  1 2 3 4\n").is_none());
        assert!(parse("intr 5\n").is_none());
    }
}
