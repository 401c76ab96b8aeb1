//! Comparing two sides, and the text of the answer: groups that grew first,
//! sorted by growth, each with its stack and how many of its tasks were
//! spawned after the baseline (the strongest sign of a leak: new and still
//! there); groups that shrank or vanished in one line each.

use std::collections::BTreeSet;

use taskscope_report::frames::Paths;

use super::side::{Bunch, Frame, Side};
use crate::duration::format_ns;
use crate::output::shown;

/// One group whose count changed.
#[derive(Debug)]
pub struct Change<'a> {
    pub before: Option<&'a Bunch>,
    pub after: Option<&'a Bunch>,
    /// After's count minus before's.
    pub growth: i64,
    /// Tasks of after's group that the baseline did not have (same process only).
    pub new_tasks: Option<usize>,
}

impl<'a> Change<'a> {
    /// The side the group is shown from: after's, or the baseline's when it
    /// vanished.
    pub fn shown(&self) -> &'a Bunch {
        self.after.or(self.before).expect("a change has a side")
    }
}

/// The comparison.
#[derive(Debug)]
pub struct Compared<'a> {
    pub grew: Vec<Change<'a>>,
    pub shrank: Vec<Change<'a>>,
    /// The same process on both sides (task ids comparable).
    pub same_process: bool,
}

/// Compares `after` with the baseline `before`; `Err` when they are not of
/// one program, or not of one protocol.
pub fn compare<'a>(before: &'a Side, after: &'a Side) -> Result<Compared<'a>, String> {
    if before.process.name != after.process.name {
        return Err(format!(
            "the baseline is of {} (pid {}), the target is {} (pid {}): a baseline compares one program with itself",
            shown(&before.process.name),
            before.process.pid,
            shown(&after.process.name),
            after.process.pid
        ));
    }
    if let (Some(b), Some(a)) = (before.process.protocol_version, after.process.protocol_version) {
        if a != b {
            return Err(format!("the baseline came from an agent of protocol version {b}, the target's is {a}"));
        }
    }
    let same_process = before.process.pid == after.process.pid && after.process.uptime_ns >= before.process.uptime_ns;
    let known: BTreeSet<u64> = if same_process { before.task_ids() } else { BTreeSet::new() };
    let keys: BTreeSet<&String> = before.bunches.keys().chain(after.bunches.keys()).collect();
    let mut grew = Vec::new();
    let mut shrank = Vec::new();
    for key in keys {
        let (b, a) = (before.bunches.get(key), after.bunches.get(key));
        let growth = a.map_or(0, |a| a.count as i64) - b.map_or(0, |b| b.count as i64);
        let new_tasks = same_process.then(|| a.map_or(0, |a| a.task_ids.difference(&known).count()));
        let change = Change { before: b, after: a, growth, new_tasks };
        match growth {
            g if g > 0 => grew.push(change),
            g if g < 0 => shrank.push(change),
            _ => {}
        }
    }
    grew.sort_by(|x, y| y.growth.cmp(&x.growth).then_with(|| y.new_tasks.cmp(&x.new_tasks)));
    shrank.sort_by_key(|c| c.growth);
    Ok(Compared { grew, shrank, same_process })
}

/// How long after the baseline the other side was taken, when both are of
/// one process.
pub fn since_baseline(before: &Side, after: &Side, compared: &Compared<'_>) -> Option<u64> {
    compared.same_process.then(|| after.process.uptime_ns.saturating_sub(before.process.uptime_ns))
}

/// The text answer.
pub fn render(before: &Side, after: &Side, compared: &Compared<'_>, baseline: &str) -> String {
    let grew = compared.grew.len();
    let shrank = compared.shrank.len();
    let mut out = format!("taskscope diff: {} (pid {})", shown(&after.process.name), after.process.pid);
    if let Some(ago) = since_baseline(before, after, compared) {
        out.push_str(&format!(", {} after the baseline {baseline}", format_ns(ago)));
    } else {
        out.push_str(&format!(
            " against the baseline {baseline} of another run (pid {}): groups compared by count, not by task",
            before.process.pid
        ));
    }
    out.push_str(&format!(
        ": {grew} {} grew, {shrank} shrank or vanished\n",
        if grew == 1 { "group" } else { "groups" }
    ));
    let paths = paths(before, after);
    for change in &compared.grew {
        out.push('\n');
        // A console-subscriber's report has no stacks at all: its header said so.
        let stackless = after.process.mode == taskscope_report::render::CONSOLE_MODE;
        out.push_str(&grown_block(change, &paths, stackless));
    }
    if !compared.shrank.is_empty() {
        out.push_str("\nshrank or vanished:\n");
        for change in &compared.shrank {
            let b = change.shown();
            out.push_str(&format!(
                "  {} ({} → {})  spawned at {}{}\n",
                change.growth,
                change.before.map_or(0, |b| b.count),
                change.after.map_or(0, |a| a.count),
                shown(b.location.as_deref().unwrap_or("?")),
                top_frame(b).map(|f| format!("  at {}", shown(&f.function))).unwrap_or_default()
            ));
        }
    }
    out
}

fn grown_block(change: &Change<'_>, paths: &Paths, stackless: bool) -> String {
    let a = change.shown();
    let before = change.before.map_or(0, |b| b.count);
    let tasks = if change.growth == 1 { "task" } else { "tasks" };
    let mut out = format!("+{} {tasks} ({before} → {}", change.growth, a.count);
    if let Some(new) = change.new_tasks {
        out.push_str(&format!("; {new} spawned after the baseline"));
    }
    out.push_str(") [");
    let states: Vec<String> = a.states.iter().map(|(s, n)| format!("{s} {n}")).collect();
    out.push_str(&states.join(", "));
    if a.leaked > 0 {
        out.push_str(&format!(", {} leaked", a.leaked));
    }
    out.push(']');
    if let Some(parked) = a.parked_max_ns {
        out.push_str(&format!(" parked up to {}", format_ns(parked)));
    }
    out.push_str(&format!("  spawned at {}\n", shown(a.location.as_deref().unwrap_or("?"))));
    if !a.names.is_empty() {
        let names: Vec<String> = a.names.iter().map(|n| shown(n).into_owned()).collect();
        out.push_str(&format!("  name: {}\n", names.join(", ")));
    }
    match &a.stack {
        Some(stack) => {
            out.push_str("  stack:\n");
            for backtrace in stack {
                out.push_str(&frames(backtrace, paths));
            }
        }
        None if stackless => {}
        None => out.push_str("  (no stack in the report)\n"),
    }
    out
}

/// A backtrace's frames, leaf first, runs of runtime frames collapsed.
fn frames(backtrace: &[Frame], paths: &Paths) -> String {
    let mut out = String::new();
    let mut hidden = 0;
    let flush = |out: &mut String, hidden: &mut usize| {
        if *hidden > 0 {
            out.push_str(&format!("    ... {hidden} runtime frame{}\n", if *hidden == 1 { "" } else { "s" }));
            *hidden = 0;
        }
    };
    for frame in backtrace {
        if frame.internal {
            hidden += 1;
            continue;
        }
        flush(&mut out, &mut hidden);
        out.push_str(&format!("    {}\n", shown(&frame.function)));
        if !frame.file.is_empty() {
            out.push_str(&format!("        {}:{}\n", shown(paths.show(&frame.file)), frame.line));
        }
    }
    flush(&mut out, &mut hidden);
    out
}

/// How source paths are shown, as `stack` shows them: the workspace root
/// found by pairing spawn files with the program's own frames.
fn paths(before: &Side, after: &Side) -> Paths {
    let bunches = || before.bunches.values().chain(after.bunches.values());
    let relative = bunches().filter_map(|b| b.location.as_deref()).map(|l| {
        // `file:line:column`
        l.rsplitn(3, ':').nth(2).unwrap_or(l)
    });
    let absolute =
        bunches().flat_map(|b| b.stack.iter().flatten().flatten()).filter(|f| !f.internal).map(|f| f.file.as_str());
    Paths::pairing(relative, absolute, false)
}

/// The innermost frame of the program's own, for one-line summaries.
fn top_frame(b: &Bunch) -> Option<&Frame> {
    b.stack.as_ref()?.first()?.iter().find(|f| !f.internal)
}

/// Whether the diff fails: some group grew by at least `min_growth`.
pub fn failed(compared: &Compared<'_>, min_growth: u64) -> bool {
    compared.grew.iter().any(|c| c.growth >= min_growth as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(pid: u32, uptime_ns: u64, groups: &str) -> Side {
        Side::parse(&format!(
            r#"{{"format": "taskscope.stack.v1", "process": {{"pid": {pid}, "name": "svc", "protocol_version": 1,
               "uptime_ns": {uptime_ns}}}, "now_ns": {uptime_ns}, "groups": [{groups}]}}"#
        ))
        .expect("parses")
    }

    fn group(location: &str, ids: &[u64], leaked: usize) -> String {
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        format!(
            r#"{{"count": {}, "states": {{"idle": {}}}, "leaked": {leaked}, "parked_max_ns": 2000000000,
                "location": "{location}", "names": [], "task_ids": [{}],
                "stack": [[{{"function": "tokio::sync::Notify::poll", "file": "n.rs", "line": 1, "internal": true}},
                           {{"function": "svc::wait", "file": "src/svc.rs", "line": 9, "internal": false}}]]}}"#,
            ids.len(),
            ids.len(),
            ids.join(", ")
        )
    }

    #[test]
    fn growth_is_sorted_and_new_tasks_are_told_apart_by_id() {
        let before = side(
            7,
            1_000_000_000,
            &[group("src/a.rs:1:1", &[1, 2], 0), group("src/b.rs:1:1", &[3, 4, 5], 0)].join(","),
        );
        let after = side(
            7,
            4_000_000_000,
            &[
                group("src/a.rs:1:1", &[1, 2, 10, 11, 12], 3),
                group("src/c.rs:1:1", &[20], 0),
                group("src/b.rs:1:1", &[3], 0),
            ]
            .join(","),
        );
        let compared = compare(&before, &after).expect("one program");
        assert!(compared.same_process);
        let growth: Vec<i64> = compared.grew.iter().map(|c| c.growth).collect();
        assert_eq!(growth, [3, 1]);
        assert_eq!(compared.grew[0].new_tasks, Some(3));
        assert_eq!(compared.shrank.len(), 1);
        assert!(failed(&compared, 1) && failed(&compared, 3) && !failed(&compared, 4));
        let text = render(&before, &after, &compared, "before.json");
        assert!(
            text.starts_with(
                "taskscope diff: svc (pid 7), 3s after the baseline before.json: 2 groups grew, 1 shrank or vanished\n"
            ),
            "{text}"
        );
        assert!(text.contains("\n+3 tasks (2 → 5; 3 spawned after the baseline) [idle 5, 3 leaked] parked up to 2s  spawned at src/a.rs:1:1\n  stack:\n    ... 1 runtime frame\n    svc::wait\n        src/svc.rs:9\n"), "{text}");
        assert!(
            text.contains("\nshrank or vanished:\n  -2 (3 → 1)  spawned at src/b.rs:1:1  at svc::wait\n"),
            "{text}"
        );
    }

    #[test]
    fn another_run_is_compared_by_count_and_another_program_not_at_all() {
        let before = side(7, 9_000_000_000, &group("src/a.rs:1:1", &[1, 2], 0));
        let restarted = side(8, 1_000_000_000, &group("src/a.rs:1:1", &[1, 2, 3], 0));
        let compared = compare(&before, &restarted).expect("one program");
        assert!(!compared.same_process);
        assert_eq!(compared.grew[0].new_tasks, None, "ids of another process say nothing");
        assert!(render(&before, &restarted, &compared, "b.json")
            .contains("of another run (pid 7): groups compared by count"));
        let mut other = restarted.clone();
        other.process.name = "other".into();
        assert!(compare(&before, &other).unwrap_err().contains("a baseline compares one program with itself"));
        let mut newer = restarted.clone();
        newer.process.protocol_version = Some(2);
        assert!(compare(&before, &newer).unwrap_err().contains("protocol version 1, the target's is 2"));
    }
}
