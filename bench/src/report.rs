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

use crate::plan::{Variant, Workload, VARIANT_COLUMN};
use crate::runner::{Plan, Results, Sample};

use stack::{print_stack_row, stack_line};

/// Prints the table and the ratio lines on stdout.
pub fn print(plan: &Plan, results: &Results) {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!();
    println!(
        "taskscope-bench: median of {} interleaved run(s), {cpus} CPU(s), one fresh process per measurement{}",
        plan.runs,
        if plan.quick { " (--quick: sizes /100, the numbers mean nothing)" } else { "" }
    );
    println!();
    println!(
        "{:<8} {:<VARIANT_COLUMN$} {:>10} {:>21} {:>14} {:>10} {:>9} {:>10} {:>10}",
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
    println!("{}", steal_line(plan, results));
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

/// The host's steal over the kept rounds of each workload (see `steal.rs`):
/// `host steal per round: channel median 0.5%, max 1.0%`, and how many
/// rounds `--max-steal` had measured again.
fn steal_line(plan: &Plan, results: &Results) -> String {
    let mut parts = Vec::new();
    for (workload, shares) in &results.steal {
        let mut sorted = shares.clone();
        let median = median_f64(&mut sorted);
        let Some(max) = sorted.last() else { continue };
        parts.push(format!("{} median {median:.1}%, max {max:.1}%", workload.name()));
    }
    let mut line = if parts.is_empty() {
        "host steal: unknown (no steal in /proc/stat)".to_string()
    } else {
        format!("host steal per round (CPU time the hypervisor gave to other machines): {}", parts.join("; "))
    };
    if let Some(max) = plan.max_steal {
        line.push_str(&format!("; {} round(s) measured again for steal over {max}%", results.repeated));
    }
    line
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
            let why = if base.is_lean() { " (tokio without its `tracing` feature)" } else { "" };
            format!("{} against {}{why}", names.join(", "), base.name())
        })
        .collect();
    (!parts.is_empty()).then(|| format!("vs base: {}", parts.join("; ")))
}

fn print_row(plan: &Plan, results: &Results, workload: Workload, variant: Variant) {
    let key = (workload, variant);
    let Some(samples) = results.samples.get(&key).filter(|s| !s.is_empty()) else {
        let why = results.skipped.get(&key).map(String::as_str).unwrap_or("not run");
        println!("{:<8} {:<VARIANT_COLUMN$} skipped ({why})", workload.name(), variant.name());
        return;
    };
    let skipped_later =
        results.skipped.get(&key).map(|why| format!("  (later runs skipped: {why})")).unwrap_or_default();
    let rss = mib(median_u64(samples.iter().map(|s| s.rss_kib)));
    let peak = mib(median_u64(samples.iter().map(|s| s.peak_rss_kib)));
    if workload == Workload::Idle {
        // For idle the measurement is memory; the time to spawn and park is context.
        let vs_base =
            bytes_per_task_vs_base(plan, results, variant).map(|b| format!("{b:+.0} B/task")).unwrap_or_default();
        let secs = median_duration(samples.iter().map(|s| s.elapsed));
        let grown = median_u64(samples.iter().map(|s| s.rss_kib.saturating_sub(s.base_rss_kib)));
        let per_task = grown as f64 * 1024.0 / workload.count(plan.quick) as f64;
        println!(
            "{:<8} {:<VARIANT_COLUMN$} {:>10} {:>21} {:>14} {:>10} {:>9} {:>10} {:>10}{skipped_later}",
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
    let (min, max) = (times.iter().min().copied().unwrap_or_default(), times.iter().max().copied().unwrap_or_default());
    let vs_base = time_ratio(results, workload, variant, wall).map(|r| format!("x{}", ratio(r))).unwrap_or_default();
    let cpu_vs_base = time_ratio(results, workload, variant, cpu).map(|r| format!("x{}", ratio(r))).unwrap_or_default();
    println!(
        "{:<8} {:<VARIANT_COLUMN$} {:>8.3} s {:>19} {:>14} {:>8.3} s {:>9} {:>10} {:>10}{skipped_later}",
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
            .map(|variant| match bytes_per_task_vs_base(plan, results, variant) {
                Some(bytes) => format!(
                    "{} {bytes:+.0} B/task vs {} (RSS {})",
                    variant.name(),
                    variant.baseline().name(),
                    mib(median_rss(results, workload, variant).unwrap_or_default())
                ),
                None => format!("{} {}", variant.name(), missing(results, workload, variant)),
            })
            .collect();
        let bases: Vec<String> = baselines(plan)
            .filter_map(|base| {
                let rss = median_rss(results, workload, base)?;
                Some(format!("{} RSS {}", base.name(), mib(rss)))
            })
            .collect();
        let bases = if bases.is_empty() { String::new() } else { format!(" [{}]", bases.join("; ")) };
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
            let interval = match time_interval(results, workload, variant, wall) {
                Some((low, high)) => format!(" (90% interval x{}-{})", ratio(low), ratio(high)),
                None => String::new(),
            };
            match (time_ratio(results, workload, variant, wall), time_ratio(results, workload, variant, cpu)) {
                (Some(r), Some(c)) => {
                    format!("{} x{}{interval}{vs} (CPU x{})", variant.name(), ratio(r), ratio(c))
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
    let samples = results.samples.get(&(workload, variant)).filter(|s| !s.is_empty())?;
    Some(median_u64(samples.iter().map(|s| s.rss_kib)))
}

/// Why a variant has no ratio: it was skipped, or its baseline was.
fn missing(results: &Results, workload: Workload, variant: Variant) -> String {
    let measured = |v: Variant| results.samples.get(&(workload, v)).is_some_and(|s| !s.is_empty());
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
fn time_ratio(results: &Results, workload: Workload, variant: Variant, what: fn(&Sample) -> Duration) -> Option<f64> {
    let median = |v: Variant| -> Option<f64> {
        let samples: &Vec<Sample> = results.samples.get(&(workload, v)).filter(|s| !s.is_empty())?;
        Some(median_duration(samples.iter().map(what)).as_secs_f64())
    };
    let (base, this) = (median(variant.baseline())?, median(variant)?);
    (base > 0.0).then(|| this / base)
}

/// A 90% interval for [`time_ratio`] (see [`ratio_interval`]).
fn time_interval(
    results: &Results,
    workload: Workload,
    variant: Variant,
    what: fn(&Sample) -> Duration,
) -> Option<(f64, f64)> {
    let seconds = |v: Variant| -> Option<Vec<f64>> {
        let samples = results.samples.get(&(workload, v))?;
        Some(samples.iter().map(|s| what(s).as_secs_f64()).collect())
    };
    ratio_interval(&seconds(variant.baseline())?, &seconds(variant)?)
}

/// Resamplings behind [`ratio_interval`].
const RESAMPLES: usize = 2000;

/// A 90% interval for `median(this) / median(base)`, by a paired bootstrap:
/// rounds are drawn with replacement, a round's two measurements together
/// (they ran minutes apart at most, interleaved, and share the machine's
/// mood of the moment), and the ratio of medians is taken over each draw.
/// `base[i]` and `this[i]` are round `i`'s (a pair that failed stops early,
/// so the shorter list is a prefix). `None` below 5 rounds. The seed is
/// fixed: the same measurements give the same interval.
///
/// Why: on a shared 2-CPU machine, medians of the same binary measured in
/// one batch of 31 rounds as two variants differed by 6%; a ratio alone
/// reads as more certain than it is.
fn ratio_interval(base: &[f64], this: &[f64]) -> Option<(f64, f64)> {
    let n = base.len().min(this.len());
    if n < 5 {
        return None;
    }
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        // xorshift64*: plenty for drawing indices.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let (mut b, mut t) = (vec![0.0; n], vec![0.0; n]);
    let mut ratios = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        for k in 0..n {
            let i = (next() % n as u64) as usize;
            b[k] = base[i];
            t[k] = this[i];
        }
        let (mb, mt) = (median_f64(&mut b), median_f64(&mut t));
        if mb > 0.0 {
            ratios.push(mt / mb);
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    Some((at(0.05), at(0.95)))
}

fn median_f64(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
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
    fn a_constant_factor_gives_a_tight_interval_around_it() {
        let base: Vec<f64> = (1..=21).map(|i| 0.2 + i as f64 * 0.01).collect();
        let this: Vec<f64> = base.iter().map(|b| b * 1.10).collect();
        let (low, high) = ratio_interval(&base, &this).expect("enough rounds");
        assert!((low - 1.10).abs() < 1e-9 && (high - 1.10).abs() < 1e-9, "{low}..{high}");
    }

    #[test]
    fn noise_widens_the_interval_around_the_ratio() {
        // The same spread in both, shuffled against each other: a true ratio
        // of 1, measured through noise.
        let base: Vec<f64> = (0..31).map(|i| 0.20 + ((i * 7) % 31) as f64 * 0.005).collect();
        let this: Vec<f64> = (0..31).map(|i| 0.20 + ((i * 11) % 31) as f64 * 0.005).collect();
        let (low, high) = ratio_interval(&base, &this).expect("enough rounds");
        assert!(low < 1.0 && high > 1.0, "{low}..{high} holds 1");
        assert!(high - low > 0.05, "{low}..{high} is not tight");
        assert_eq!(ratio_interval(&base, &this), Some((low, high)), "the same data, the same interval");
    }

    #[test]
    fn few_rounds_give_no_interval() {
        assert_eq!(ratio_interval(&[1.0, 1.0, 1.0, 1.0], &[1.0, 1.0, 1.0, 1.0]), None);
    }

    #[test]
    fn ratios_keep_about_three_figures() {
        assert_eq!(ratio(1.0412), "1.04");
        assert_eq!(ratio(22.06), "22.1");
        assert_eq!(ratio(179.4), "179");
    }
}
