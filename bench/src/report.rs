//! The report: a table of medians per workload and variant, then one ratio
//! line per workload (`spawn: agent x1.04 vs plain; console x150; lean x1.02
//! vs plain-lean`).
//!
//! Every ratio is against the variant's baseline (`Variant::baseline`), never
//! across tokio builds: `lean` runs on tokio without its `tracing` feature,
//! so comparing it with `plain` would credit the agent with what leaving that
//! feature out saves.

use std::time::Duration;

mod stack;

use crate::plan::{Variant, Workload};
use crate::runner::{Plan, Results, Sample};

use stack::{print_stack_row, stack_line};

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
        "{:<8} {:<10} {:>10} {:>21} {:>14} {:>10} {:>9} {:>10} {:>10}",
        "workload", "variant", "median", "min - max", "vs base", "CPU", "CPU ×", "RSS", "peak RSS"
    );
    for &workload in &plan.workloads {
        for variant in workload.variants(&plan.variants) {
            if workload == Workload::Stack {
                print_stack_row(plan, results, variant);
            } else {
                print_row(plan, results, workload, variant);
            }
        }
    }
    if let Some(note) = base_note(plan) {
        println!("{note}");
    }
    println!();
    for &workload in &plan.workloads {
        if workload == Workload::Stack {
            for variant in workload.variants(&plan.variants) {
                println!("{}", stack_line(plan, results, variant));
            }
        } else {
            println!("{}", ratio_line(plan, results, workload));
        }
    }
}

/// What "vs base" means for the variants in the table, e.g.
/// `vs base: agent, console against plain; lean against plain-lean (...)`;
/// nothing when only baselines run.
fn base_note(plan: &Plan) -> Option<String> {
    let mut groups: Vec<(Variant, Vec<&str>)> = Vec::new();
    for variant in others(plan) {
        let base = variant.baseline();
        match groups.iter_mut().find(|(b, _)| *b == base) {
            Some((_, names)) => names.push(variant.name()),
            None => groups.push((base, vec![variant.name()])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(base, names)| {
            let why = if base.is_lean() {
                " (tokio without its `tracing` feature)"
            } else {
                ""
            };
            format!("{} against {}{why}", names.join(", "), base.name())
        })
        .collect();
    (!parts.is_empty()).then(|| format!("vs base: {}", parts.join("; ")))
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
            "{:<8} {:<10} skipped ({why})",
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
        let vs_base = bytes_per_task_vs_base(plan, results, variant)
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
            "{:<8} {:<10} {:>10} {:>21} {:>14} {:>10} {:>9} {:>10} {:>10}{skipped_later}",
            workload.name(),
            variant.name(),
            rss,
            format!("park {:.2} s, {per_task:.0} B/task", secs.as_secs_f64()),
            vs_base,
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
    let vs_base = time_ratio(results, workload, variant, wall)
        .map(|r| format!("x{}", ratio(r)))
        .unwrap_or_default();
    let cpu_vs_base = time_ratio(results, workload, variant, cpu)
        .map(|r| format!("x{}", ratio(r)))
        .unwrap_or_default();
    println!(
        "{:<8} {:<10} {:>8.3} s {:>19} {:>14} {:>8.3} s {:>9} {:>10} {:>10}{skipped_later}",
        workload.name(),
        variant.name(),
        median_duration(times.iter().copied()).as_secs_f64(),
        format!("{:.3} - {:.3} s", min.as_secs_f64(), max.as_secs_f64()),
        vs_base,
        median_duration(samples.iter().map(cpu)).as_secs_f64(),
        cpu_vs_base,
        rss,
        peak
    );
}

/// `spawn: agent x1.04 vs plain; console x150; lean x1.02 vs plain-lean`, and
/// the like per workload (not `stack`: see `stack::stack_line`).
fn ratio_line(plan: &Plan, results: &Results, workload: Workload) -> String {
    let name = workload.name();
    if workload == Workload::Idle {
        let parts: Vec<String> = others(plan)
            .map(
                |variant| match bytes_per_task_vs_base(plan, results, variant) {
                    Some(bytes) => format!(
                        "{} {bytes:+.0} B/task vs {} (RSS {})",
                        variant.name(),
                        variant.baseline().name(),
                        mib(median_rss(results, workload, variant).unwrap_or_default())
                    ),
                    None => format!("{} {}", variant.name(), missing(results, workload, variant)),
                },
            )
            .collect();
        let bases: Vec<String> = baselines(plan)
            .filter_map(|base| {
                let rss = median_rss(results, workload, base)?;
                Some(format!("{} RSS {}", base.name(), mib(rss)))
            })
            .collect();
        let bases = if bases.is_empty() {
            String::new()
        } else {
            format!(" [{}]", bases.join("; "))
        };
        return format!("{name}: {}{bases}", parts.join("; "));
    }
    // " vs BASE" once per baseline, on the first variant compared with it.
    let mut labelled: Vec<Variant> = Vec::new();
    let parts: Vec<String> = others(plan)
        .map(|variant| {
            let base = variant.baseline();
            let vs = if labelled.contains(&base) {
                String::new()
            } else {
                labelled.push(base);
                format!(" vs {}", base.name())
            };
            match (
                time_ratio(results, workload, variant, wall),
                time_ratio(results, workload, variant, cpu),
            ) {
                (Some(r), Some(c)) => {
                    format!("{} x{}{vs} (CPU x{})", variant.name(), ratio(r), ratio(c))
                }
                (Some(r), None) => format!("{} x{}{vs}", variant.name(), ratio(r)),
                (None, _) => format!("{} {}", variant.name(), missing(results, workload, variant)),
            }
        })
        .collect();
    format!("{name}: {}", parts.join("; "))
}

/// The baselines of the variants in the plan, in the plan's order.
fn baselines(plan: &Plan) -> impl Iterator<Item = Variant> + '_ {
    plan.variants.iter().copied().filter(|v| v.is_baseline())
}

/// Median resident memory of a pair, if it was measured.
fn median_rss(results: &Results, workload: Workload, variant: Variant) -> Option<u64> {
    let samples = results
        .samples
        .get(&(workload, variant))
        .filter(|s| !s.is_empty())?;
    Some(median_u64(samples.iter().map(|s| s.rss_kib)))
}

/// Why a variant has no ratio: it was skipped, or its baseline was.
fn missing(results: &Results, workload: Workload, variant: Variant) -> String {
    let measured = |v: Variant| {
        results
            .samples
            .get(&(workload, v))
            .is_some_and(|s| !s.is_empty())
    };
    if measured(variant) && !measured(variant.baseline()) {
        format!("(no {} to compare with)", variant.baseline().name())
    } else {
        skipped(results, workload, variant)
    }
}

/// The variants compared against a baseline.
fn others(plan: &Plan) -> impl Iterator<Item = Variant> + '_ {
    plan.variants.iter().copied().filter(|v| !v.is_baseline())
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

/// Median of `what` for `variant` over the median for its baseline.
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
    let (base, this) = (median(variant.baseline())?, median(variant)?);
    (base > 0.0).then(|| this / base)
}

/// Median RSS of `variant` minus median RSS of its baseline, per parked task.
fn bytes_per_task_vs_base(plan: &Plan, results: &Results, variant: Variant) -> Option<f64> {
    let base = median_rss(results, Workload::Idle, variant.baseline())?;
    let this = median_rss(results, Workload::Idle, variant)?;
    Some((this as f64 - base as f64) * 1024.0 / Workload::Idle.count(plan.quick) as f64)
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
