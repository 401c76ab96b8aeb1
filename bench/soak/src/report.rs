//! The report: a block per soak configuration and a table for the scale
//! mode, each followed by one `... result:` line of `key=value` words that
//! the smoke test (and a script) can read without parsing the prose.

use std::time::Duration;

use crate::load::{self, Kind};
use crate::scale::Row;
use crate::soak::{Outcome, Sample};

/// Nearest-rank percentile (`p` in 0..=100) of `values`, sorted here.
fn percentile(values: &mut [Duration], p: usize) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    let rank = (p * values.len()).div_ceil(100).max(1);
    values[rank - 1]
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    match ms {
        ms if ms < 10.0 => format!("{ms:.2} ms"),
        ms if ms < 10_000.0 => format!("{ms:.1} ms"),
        _ => format!("{:.1} s", ms / 1e3),
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `p50 A  p99 B  max C` of one of a sample's times.
fn spread(samples: &[Sample], time: fn(&Sample) -> Duration) -> String {
    let mut values: Vec<Duration> = samples.iter().map(time).collect();
    let (p50, p99, max) = (percentile(&mut values, 50), percentile(&mut values, 99), percentile(&mut values, 100));
    format!("p50 {}  p99 {}  max {}", ms(p50), ms(p99), ms(max))
}

pub fn print_soak(outcome: &Outcome) {
    let Some(config) = outcome.config else { return };
    let burst = load::BURST_TASKS;
    println!(
        "soak: {} workers, {} wrapped tasks ({} parked on oneshots, {burst} woken every {} ms, {} busy, \
         a heartbeat, a blocker of {} ms every {} s, the burst driver, a churner of {} short tasks every {} ms); \
         {} captures, timeout {} ms each",
        config.workers,
        outcome.tasks,
        config.parked,
        load::BURST_EVERY.as_millis(),
        config.workers,
        load::BLOCK_FOR.as_millis(),
        load::BLOCK_EVERY.as_secs(),
        load::CHURN_TASKS,
        load::CHURN_EVERY.as_millis(),
        config.captures,
        config.timeout_ms,
    );
    if let Some(why) = &outcome.error {
        println!("  error              {why}");
    }
    let samples = &outcome.samples;
    let all = samples.iter().filter(|s| s.answered == s.wanted).count();
    println!(
        "  captures           {} answered, {} failed, {} wedged{}",
        samples.len(),
        outcome.failed.len(),
        outcome.wedged,
        if outcome.cancelled > 0 {
            format!(", {} cancelled by the client on purpose", outcome.cancelled)
        } else {
            String::new()
        }
    );
    for failure in outcome.failed.iter().take(5) {
        println!("    {failure}");
    }
    let not_polled: Vec<String> = outcome
        .not_polled
        .iter()
        .map(|(kind, (captures, tasks))| format!("{} in {captures} capture(s), {tasks} task(s)", kind.name()))
        .collect();
    println!(
        "  safe capture       every wrapped task answered in {all}; some NOT_POLLED in {}{}",
        samples.len() - all,
        if not_polled.is_empty() { String::new() } else { format!(" ({})", not_polled.join("; ")) }
    );
    if let (Some(lo), Some(hi)) = (samples.iter().map(|s| s.wanted).min(), samples.iter().map(|s| s.wanted).max()) {
        println!("  tasks asked        {lo} - {hi} per capture (the churner's short tasks come and go)");
    }
    println!("  Dump RPC time      {}", spread(samples, |s| s.rpc));
    println!("  safe_capture time  {}  (SafeCapture.elapsed_ns)", spread(samples, |s| s.safe));
    println!(
        "  health checks      {}/{} passed; the blocker held a worker {} time(s) during the captures",
        outcome.checks_passed, outcome.checks, outcome.blocks
    );
    for failure in outcome.check_failures.iter().take(5) {
        println!("    {failure}");
    }
    let (b, d, a) = (outcome.rates_before, outcome.rates_during, outcome.rates_after);
    let ratio = |after: f64, before: f64| after / before.max(1e-9);
    println!(
        "  progress per s     before / during / after the captures: busy slices {:.0} / {:.0} / {:.0} (after x{:.2} \
         of before), per worker CPU-second {:.0} / {:.0} / {:.0} (x{:.2}); heartbeats {:.0} / {:.0} / {:.0}; \
         bursts {:.1} / {:.1} / {:.1}",
        b.busy,
        d.busy,
        a.busy,
        ratio(a.busy, b.busy),
        b.busy_per_cpu(),
        d.busy_per_cpu(),
        a.busy_per_cpu(),
        ratio(a.busy_per_cpu(), b.busy_per_cpu()),
        b.heartbeat,
        d.heartbeat,
        a.heartbeat,
        b.rounds,
        d.rounds,
        a.rounds
    );
    println!(
        "  CPU per s          workers {:.2} / {:.2} / {:.2}; agent thread {:.2} / {:.2} / {:.2}",
        b.worker_cpu, d.worker_cpu, a.worker_cpu, b.agent_cpu, d.agent_cpu, a.agent_cpu
    );
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    // The first capture loads the symbols; growth after the next check
    // would be the captures' own.
    let rss = &outcome.rss_kib;
    let mut points: Vec<String> = rss.first().map(|(when, kib)| format!("{} {when}", mib(*kib))).into_iter().collect();
    if rss.len() > 3 {
        let later = rss[2..].iter().map(|(_, kib)| *kib).max().unwrap_or(0);
        points.push(format!("{} {}, at most {} after that", mib(rss[1].1), rss[1].0, mib(later)));
    }
    if let Some((when, kib)) = rss.last().filter(|_| rss.len() > 1) {
        points.push(format!("{} {when}", mib(*kib)));
    }
    println!("  memory (RSS)       {}", points.join(", "));
    let finished = &outcome.finished;
    let field = |name| finished.field(name).map_or("?".to_string(), |v| v.to_string());
    println!(
        "  end                {} of {} tasks joined in {} ms, lost {}; runtime shut down in {} ms; exit status {}: clean exit {}",
        field("joined"),
        field("tasks"),
        field("join_ms"),
        outcome.lost(),
        field("shutdown_ms"),
        finished.status.map_or("?".to_string(), |s| s.code().map_or(s.to_string(), |c| c.to_string())),
        yes(finished.clean())
    );
    if let Some(why) = &finished.error {
        println!("    {why}");
    }
    if outcome.anomaly_count == 0 {
        println!("  anomalies          none");
    } else {
        println!("  anomalies          {} (first {} below)", outcome.anomaly_count, outcome.anomalies.len());
        for anomaly in &outcome.anomalies {
            println!("    {anomaly}");
        }
    }
    println!(
        "soak result: workers={} captures={} answered={} cancelled={} failed={} wedged={} all_answered={all} \
         some_not_polled={} health={}/{} lost={} clean_exit={} anomalies={} ok={}",
        config.workers,
        config.captures,
        samples.len(),
        outcome.cancelled,
        outcome.failed.len(),
        outcome.wedged,
        samples.len() - all,
        outcome.checks_passed,
        outcome.checks,
        outcome.lost(),
        yes(finished.clean()),
        outcome.anomaly_count,
        yes(outcome.ok()),
    );
    println!();
}

pub fn print_scale(rows: &[Row], captures: usize, timeout_ms: u32) {
    println!(
        "scale: capture time for N parked wrapped tasks ({}), idle program, 2 workers, {captures} captures each, \
         timeout {timeout_ms} ms; a fresh child per row",
        Kind::Parked.name()
    );
    println!(
        "{:<5} {:>6} {:>14} {:>10} {:>14} {:>10} {:>10} {:>13} {:>5} {:>6}",
        "mode",
        "tasks",
        "safe median",
        "safe max",
        "RPC median",
        "RPC max",
        "RPC first",
        "all answered",
        "lost",
        "clean"
    );
    for row in rows {
        let median = |time: fn(&Sample) -> Duration| {
            let mut v: Vec<Duration> = row.samples.iter().map(time).collect();
            (percentile(&mut v, 50), percentile(&mut v, 100))
        };
        let (safe_median, safe_max) = median(|s| s.safe);
        let (rpc_median, rpc_max) = median(|s| s.rpc);
        let first = row.samples.first().map_or(Duration::ZERO, |s| s.rpc);
        println!(
            "{:<5} {:>6} {:>14} {:>10} {:>14} {:>10} {:>10} {:>13} {:>5} {:>6}",
            row.agent.name(),
            row.tasks,
            ms(safe_median),
            ms(safe_max),
            ms(rpc_median),
            ms(rpc_max),
            ms(first),
            format!("{}/{}", row.all_answered, row.samples.len()),
            row.lost(),
            yes(row.finished.clean()),
        );
    }
    for row in rows {
        let what = format!("{} {}", row.agent.name(), row.tasks);
        for note in row.error.iter().chain(&row.failed).chain(&row.anomalies).chain(&row.finished.error) {
            println!("  {what}: {note}");
        }
        if row.wedged > 0 {
            println!("  {what}: a capture wedged (no answer within its timeout + 5 s); the row stopped there");
        }
    }
    for row in rows {
        println!(
            "scale result: agent={} tasks={} captures={} all_answered={} failed={} wedged={} lost={} clean_exit={} \
             anomalies={} ok={}",
            row.agent.name(),
            row.tasks,
            row.samples.len(),
            row.all_answered,
            row.failed.len(),
            row.wedged,
            row.lost(),
            yes(row.finished.clean()),
            row.anomalies.len(),
            yes(row.ok()),
        );
    }
    println!();
}
