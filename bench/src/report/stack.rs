//! The `stack` workload's rows and lines: timings of `taskscope stack`, one
//! set per variant whose child it inspected (`agent`, and `lean` when wanted),
//! with no baseline to be compared with.

use std::time::Duration;

use super::median_duration;
use crate::plan::{Variant, Workload, VARIANT_COLUMN};
use crate::runner::{Plan, Results};

pub(super) fn print_stack_row(plan: &Plan, results: &Results, variant: Variant) {
    let Some((cold, warm)) = stack_medians(results, variant) else {
        println!(
            "{:<8} {:<VARIANT_COLUMN$} skipped ({})",
            "stack",
            variant.name(),
            stack_skip_reason(results, variant)
        );
        return;
    };
    println!(
        "{:<8} {:<VARIANT_COLUMN$} {:>8.3} s {:>19}   `taskscope stack` on {} parked tasks: first call (cold), second call {:.3} s",
        "stack",
        variant.name(),
        cold.as_secs_f64(),
        "",
        Workload::Stack.count(plan.quick),
        warm.as_secs_f64()
    );
}

/// Median cold and warm `taskscope stack` times against `variant`'s child,
/// if the workload ran.
fn stack_medians(results: &Results, variant: Variant) -> Option<(Duration, Duration)> {
    let samples = results.stack.get(&variant).filter(|s| !s.is_empty())?;
    Some((median_duration(samples.iter().map(|s| s.cold)), median_duration(samples.iter().map(|s| s.warm))))
}

/// Why the `stack` workload has no result for `variant`.
fn stack_skip_reason(results: &Results, variant: Variant) -> &str {
    results.skipped.get(&(Workload::Stack, variant)).map(String::as_str).unwrap_or("not run")
}

/// `stack: `taskscope stack` (grouped) against 10000 parked tasks: ...` for
/// the agent's child; `stack (lean): ...` for the lean one.
pub(super) fn stack_line(plan: &Plan, results: &Results, variant: Variant) -> String {
    let name = match variant {
        Variant::Agent => "stack".to_string(),
        other => format!("stack ({})", other.name()),
    };
    let Some((cold, warm)) = stack_medians(results, variant) else {
        return format!("{name}: skipped ({})", stack_skip_reason(results, variant));
    };
    let header = results.stack.get(&variant).and_then(|s| s.last()).map(|s| s.header.as_str()).unwrap_or_default();
    format!(
        "{name}: `taskscope stack` (grouped) against {} parked tasks: {:.3} s cold, {:.3} s warm  [{header}]",
        Workload::Stack.count(plan.quick),
        cold.as_secs_f64(),
        warm.as_secs_f64()
    )
}
