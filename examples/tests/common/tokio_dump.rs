//! The checks of [`super::harm::Setup::tokio_dump`]: that `taskscope stack`
//! says tokio's own dump of the runtime was taken, and that its `--json`
//! report has a stack from that dump for every task of the shape.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use super::harm::CLI_WITHIN;
use super::process::{run_with_timeout, tail, Output};
use super::report::JsonCheck;

/// `--json` requests at most, until every task has had a stack from tokio's
/// dump. Tokio does not trace a task that is running, or that was woken into
/// a worker's LIFO slot, while the dump is taken, so on a multi-thread runtime
/// one request does not always show them all: a busy task of
/// `unordered-sleeps` or `notify-other` on two workers lacked its stack in
/// about a third to a half of the requests (it took up to 5 here).
const JSON_REQUESTS: usize = 20;

/// Whether a text report says tokio's dump of the program's runtime was
/// taken, with no warning (a harm, or no stacks at all): its `stacks:` line
/// has the part `tokio dumped runtime main` (the harm program has that one
/// runtime), next to the safe capture's part when a wrapped task was
/// captured that way.
pub(super) fn says_tokio_dumped(report: &str) -> bool {
    let dumped = report.lines().any(|line| {
        line.strip_prefix("stacks: ").is_some_and(|parts| parts.split("; ").any(|p| p == "tokio dumped runtime main"))
    });
    dumped && !report.lines().any(|line| line.starts_with("warning: "))
}

/// Asks `taskscope stack --json --all` (up to [`JSON_REQUESTS`] times)
/// until every task of the shape has had a stack from tokio's dump; every
/// answer must say the runtime was dumped (`ok`, not harmed), that the
/// program's tokio carries `fixes`, and that no task lacks a stack because
/// tokio's dump was not taken.
pub(super) fn check_json(cli: &Path, pid: &str, dir: &Path, prefix: &str, tasks: usize, fixes: &str) -> JsonCheck {
    let mut check = JsonCheck::default();
    let mut dumped = BTreeSet::new();
    let mut last = String::new();
    while check.requests < JSON_REQUESTS && dumped.len() < tasks {
        check.requests += 1;
        let out = run_with_timeout(
            Command::new(cli).args(["stack", "--json", "--all", pid]).env("TASKSCOPE_DIR", dir),
            CLI_WITHIN,
        );
        match json_answer(&out, prefix, fixes) {
            Ok((ids, summary)) => {
                dumped.extend(ids);
                last = summary;
            }
            Err(e) => {
                check.error = Some(format!("json request {}: {e}", check.requests));
                break;
            }
        }
    }
    check.dumped_tasks = dumped.len();
    if check.error.is_none() && dumped.len() < tasks {
        check.error = Some(format!(
            "in {} requests only {} of {tasks} tasks had a stack from tokio's dump; the last answer's tasks: {last}",
            check.requests,
            dumped.len()
        ));
    }
    check
}

/// One `--json --all` answer: the ids of the tasks with a stack from
/// tokio's dump that names a function of the shape, and every task in
/// short (`id name state source frames`), or what was wrong.
fn json_answer(out: &Output, prefix: &str, fixes: &str) -> Result<(Vec<u64>, String), String> {
    match out.status {
        Some(status) if status.success() => {}
        Some(status) => return Err(format!("{status}: {}", tail(&out.stderr, 300).trim())),
        None => return Err(format!("no answer within {CLI_WITHIN:?}, killed")),
    }
    let report: serde_json::Value = serde_json::from_str(&out.stdout).map_err(|e| format!("not JSON: {e}"))?;
    let announced = report["process"]["tokio_fixes"].as_str().unwrap_or_default();
    if announced != fixes {
        return Err(format!("process.tokio_fixes is {announced:?}, not {fixes:?}"));
    }
    let runtimes = report["runtimes"].as_array().map_or(&[][..], Vec::as_slice);
    if runtimes.is_empty() {
        return Err("no runtime in the report".to_string());
    }
    for runtime in runtimes {
        if runtime["status"] != "ok" || !runtime["harmed"].is_null() {
            return Err(format!("runtime not dumped: {runtime}"));
        }
    }
    let mut ids = Vec::new();
    let mut summary = Vec::new();
    for task in report["tasks"].as_array().map_or(&[][..], Vec::as_slice) {
        // Without tokio's dump of its runtime an unwrapped task says
        // `not_wrapped` (`not_dumped` from an older agent).
        if let Some(why @ ("not_wrapped" | "not_dumped")) = task["no_stack"].as_str() {
            return Err(format!("task {} has no stack ({why})", task["id"]));
        }
        let named = task["stack"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|backtrace| backtrace.as_array())
            .flatten()
            .any(|frame| frame["function"].as_str().is_some_and(|f| f.contains(prefix)));
        if task["stack_source"] == "tokio_dump" && named {
            ids.push(task["id"].as_u64().unwrap_or_default());
        }
        let frames: usize =
            task["stack"].as_array().into_iter().flatten().filter_map(|b| b.as_array()).map(Vec::len).sum();
        summary.push(format!(
            "{} {} {} {} {frames} frame(s){}",
            task["id"],
            task["name"].as_str().unwrap_or("-"),
            task["state"].as_str().unwrap_or("?"),
            task["stack_source"].as_str().unwrap_or("none"),
            if named { "" } else { ", none of the shape's" }
        ));
    }
    Ok((ids, summary.join("; ")))
}
