//! The report: a table of medians per workload and variant, then one ratio
//! line per workload (`spawn: agent x1.04 vs plain; console x150`).

use std::time::Duration;

use crate::runner::{Plan, Results, Sample};
use crate::{Variant, Workload};

/// Prints the table and the ratio lines on stdout.
pub fn print(plan: &Plan, results: &Results) {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!();
    println!(
        "taskscope-bench: median of {} interleaved run(s), {cpus} CPU(s), one fresh process per measurement{}",
        plan.runs,
        if plan.quick { " (--quick: sizes /100, the numbers mean nothing)" } else { "" }
    );
    println!();
    println!(
        "{:<8} {:<8} {:>10} {:>21} {:>14} {:>10} {:>9} {:>10} {:>10}",
        "workload", "variant", "median", "min - max", "vs plain", "CPU", "CPU ×", "RSS", "peak RSS"
    );
    for &workload in &plan.workloads {
        if workload == Workload::Stack {
            print_stack_row(plan, results);
            continue;
        }
        for variant in workload.variants(&plan.variants) {
            print_row(plan, results, workload, variant);
        }
    }
    println!();
    for &workload in &plan.workloads {
        println!("{}", ratio_line(plan, results, workload));
    }
}

fn print_row(plan: &Plan, results: &Results, workload: Workload, variant: Variant) {
    let key = (workload, variant);
    let Some(samples) = results.samples.get(&key).filter(|s| !s.is_empty()) else {
        let why = results
            .skipped
            .get(&key)
            .map(String::as_str)
            .unwrap_or("not run");
        println!(
            "{:<8} {:<8} skipped ({why})",
            workload.name(),
            variant.name()
        );
        return;
    };
    let skipped_later = results
        .skipped
        .get(&key)
        .map(|why| format!("  (later runs skipped: {why})"))
        .unwrap_or_default();
    let rss = mib(median_u64(samples.iter().map(|s| s.rss_kib)));
    let peak = mib(median_u64(samples.iter().map(|s| s.peak_rss_kib)));
    if workload == Workload::Idle {
        // For idle the measurement is memory; the time to spawn and park is context.
        let vs_plain = bytes_per_task_vs_plain(plan, results, variant)
            .map(|b| format!("{b:+.0} B/task"))
            .unwrap_or_default();
        let secs = median_duration(samples.iter().map(|s| s.elapsed));
        let grown = median_u64(
            samples
                .iter()
                .map(|s| s.rss_kib.saturating_sub(s.base_rss_kib)),
        );
        let per_task = grown as f64 * 1024.0 / workload.count(plan.quick) as f64;
        println!(
            "{:<8} {:<8} {:>10} {:>21} {:>14} {:>10} {:>9} {:>10} {:>10}{skipped_later}",
            workload.name(),
            variant.name(),
            rss,
            format!("park {:.2} s, {per_task:.0} B/task", secs.as_secs_f64()),
            vs_plain,
            "",
            "",
            rss,
            peak
        );
        return;
    }
    let times: Vec<Duration> = samples.iter().map(|s| s.elapsed).collect();
    let (min, max) = (
        times.iter().min().copied().unwrap_or_default(),
        times.iter().max().copied().unwrap_or_default(),
    );
    let vs_plain = time_ratio(results, workload, variant, wall)
        .map(|r| format!("x{}", ratio(r)))
        .unwrap_or_default();
    let cpu_vs_plain = time_ratio(results, workload, variant, cpu)
        .map(|r| format!("x{}", ratio(r)))
        .unwrap_or_default();
    println!(
        "{:<8} {:<8} {:>8.3} s {:>19} {:>14} {:>8.3} s {:>9} {:>10} {:>10}{skipped_later}",
        workload.name(),
        variant.name(),
        median_duration(times.iter().copied()).as_secs_f64(),
        format!("{:.3} - {:.3} s", min.as_secs_f64(), max.as_secs_f64()),
        vs_plain,
        median_duration(samples.iter().map(cpu)).as_secs_f64(),
        cpu_vs_plain,
        rss,
        peak
    );
}

fn print_stack_row(plan: &Plan, results: &Results) {
    let Some((cold, warm)) = stack_medians(results) else {
        println!("{:<8} {:<8} skipped ({})", "stack", "agent", stack_skip_reason(results));
        return;
    };
    println!(
        "{:<8} {:<8} {:>8.3} s {:>19}   `taskscope stack` on {} parked tasks: first call (cold), second call {:.3} s",
        "stack",
        "agent",
        cold.as_secs_f64(),
        "",
        Workload::Stack.count(plan.quick),
        warm.as_secs_f64()
    );
}

/// Median cold and warm `taskscope stack` times, if the workload ran.
fn stack_medians(results: &Results) -> Option<(Duration, Duration)> {
    if results.stack.is_empty() {
        return None;
    }
    Some((
        median_duration(results.stack.iter().map(|s| s.cold)),
        median_duration(results.stack.iter().map(|s| s.warm)),
    ))
}

/// Why the `stack` workload has no result.
fn stack_skip_reason(results: &Results) -> &str {
    results.skipped.get(&(Workload::Stack, Variant::Agent)).map(String::as_str).unwrap_or("not run")
}

/// `spawn: agent x1.04 vs plain; console x150`, and the like per workload.
fn ratio_line(plan: &Plan, results: &Results, workload: Workload) -> String {
    let name = workload.name();
    match workload {
        Workload::Stack => {
            let Some((cold, warm)) = stack_medians(results) else {
                return format!("stack: skipped ({})", stack_skip_reason(results));
            };
            let header = results
                .stack
                .last()
                .map(|s| s.header.as_str())
                .unwrap_or_default();
            format!(
                "stack: `taskscope stack` (grouped) against {} parked tasks: {:.3} s cold, {:.3} s warm  [{header}]",
                Workload::Stack.count(plan.quick),
                cold.as_secs_f64(),
                warm.as_secs_f64()
            )
        }
        Workload::Idle => {
            let parts: Vec<String> = others(plan)
                .map(
                    |variant| match bytes_per_task_vs_plain(plan, results, variant) {
                        Some(bytes) => {
                            let rss = median_u64(
                                results.samples[&(workload, variant)]
                                    .iter()
                                    .map(|s| s.rss_kib),
                            );
                            format!(
                                "{} {bytes:+.0} B/task vs plain (RSS {})",
                                variant.name(),
                                mib(rss)
                            )
                        }
                        None => {
                            format!("{} {}", variant.name(), skipped(results, workload, variant))
                        }
                    },
                )
                .collect();
            let plain = results
                .samples
                .get(&(workload, Variant::Plain))
                .map(|s| {
                    format!(
                        " [plain RSS {}]",
                        mib(median_u64(s.iter().map(|s| s.rss_kib)))
                    )
                })
                .unwrap_or_default();
            format!("{name}: {}{plain}", parts.join("; "))
        }
        _ => {
            let parts: Vec<String> = others(plan)
                .enumerate()
                .map(|(i, variant)| {
                    let vs = if i == 0 { " vs plain" } else { "" };
                    match (
                        time_ratio(results, workload, variant, wall),
                        time_ratio(results, workload, variant, cpu),
                    ) {
                        (Some(r), Some(c)) => {
                            format!("{} x{}{vs} (CPU x{})", variant.name(), ratio(r), ratio(c))
                        }
                        (Some(r), None) => format!("{} x{}{vs}", variant.name(), ratio(r)),
                        (None, _) => {
                            format!("{} {}", variant.name(), skipped(results, workload, variant))
                        }
                    }
                })
                .collect();
            format!("{name}: {}", parts.join("; "))
        }
    }
}

/// The variants compared against `plain`.
fn others(plan: &Plan) -> impl Iterator<Item = Variant> + '_ {
    plan.variants
        .iter()
        .copied()
        .filter(|v| *v != Variant::Plain)
}

/// "skipped (>cap)" or "skipped (reason)".
fn skipped(results: &Results, workload: Workload, variant: Variant) -> String {
    match results.skipped.get(&(workload, variant)) {
        Some(why) if why.starts_with(">cap") => "skipped (>cap)".to_string(),
        Some(why) => format!("skipped ({why})"),
        None => "not run".to_string(),
    }
}

/// Wall time of a sample.
fn wall(sample: &Sample) -> Duration {
    sample.elapsed
}

/// CPU time of a sample.
fn cpu(sample: &Sample) -> Duration {
    sample.cpu
}

/// Median of `what` for `variant` over the median for `plain`.
fn time_ratio(
    results: &Results,
    workload: Workload,
    variant: Variant,
    what: fn(&Sample) -> Duration,
) -> Option<f64> {
    let median = |v: Variant| -> Option<f64> {
        let samples: &Vec<Sample> = results
            .samples
            .get(&(workload, v))
            .filter(|s| !s.is_empty())?;
        Some(median_duration(samples.iter().map(what)).as_secs_f64())
    };
    let (plain, this) = (median(Variant::Plain)?, median(variant)?);
    (plain > 0.0).then(|| this / plain)
}

/// Median RSS of `variant` minus median RSS of `plain`, per parked task.
fn bytes_per_task_vs_plain(plan: &Plan, results: &Results, variant: Variant) -> Option<f64> {
    let median = |v: Variant| -> Option<u64> {
        let samples = results
            .samples
            .get(&(Workload::Idle, v))
            .filter(|s| !s.is_empty())?;
        Some(median_u64(samples.iter().map(|s| s.rss_kib)))
    };
    let (plain, this) = (median(Variant::Plain)?, median(variant)?);
    Some((this as f64 - plain as f64) * 1024.0 / Workload::Idle.count(plan.quick) as f64)
}

/// `1.04`, `22.1`, `150`: three significant figures or so.
fn ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else if r >= 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.2}")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn median_duration(values: impl Iterator<Item = Duration>) -> Duration {
    Duration::from_nanos(median_u64(values.map(|d| d.as_nanos() as u64)))
}

fn median_u64(values: impl Iterator<Item = u64>) -> u64 {
    let mut values: Vec<u64> = values.collect();
    values.sort_unstable();
    match values.len() {
        0 => 0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median_u64([3, 1, 2].into_iter()), 2);
        assert_eq!(median_u64([4, 1, 3, 2].into_iter()), 2);
        assert_eq!(median_u64(std::iter::empty()), 0);
    }

    #[test]
    fn ratios_keep_about_three_figures() {
        assert_eq!(ratio(1.0412), "1.04");
        assert_eq!(ratio(22.06), "22.1");
        assert_eq!(ratio(179.4), "179");
    }
}
