//! One side of a diff: a `stack --json` report (grouped, or `--all`), read
//! back into groups keyed like `stack` groups them (spawn location and
//! stack), with every task id.
//!
//! The live side is made the same way, from the JSON the same report code
//! writes, so that a file and a live target are compared by one path.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The JSON report, as far as the diff reads it.
#[derive(Debug, Deserialize)]
struct File {
    /// `taskscope.stack.v1`; absent in reports of taskscope before it.
    format: Option<String>,
    process: Process,
    groups: Option<Vec<Group>>,
    tasks: Option<Vec<Task>>,
}

/// The program a report is of.
#[derive(Debug, Clone, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub name: String,
    #[serde(default)]
    pub protocol_version: Option<u32>,
    pub uptime_ns: u64,
    /// How the records were taken (`console-api`: from a console-subscriber,
    /// which gives no stacks); empty in reports of taskscope before it.
    #[serde(default)]
    pub mode: String,
}

#[derive(Debug, Deserialize)]
struct Group {
    count: usize,
    #[serde(default)]
    states: BTreeMap<String, usize>,
    leaked: usize,
    parked_max_ns: Option<u64>,
    location: Option<String>,
    #[serde(default)]
    names: Vec<String>,
    task_ids: Vec<u64>,
    stack: Option<Vec<Vec<Frame>>>,
}

#[derive(Debug, Deserialize)]
struct Task {
    id: u64,
    #[serde(default)]
    name: String,
    state: String,
    leaked: bool,
    parked_ns: Option<u64>,
    location: Option<String>,
    stack: Option<Vec<Vec<Frame>>>,
}

/// A frame, leaf first within its backtrace (as the report writes them, and
/// as `diff --json` writes them back).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Frame {
    pub function: String,
    pub file: String,
    pub line: u32,
    #[serde(default)]
    pub internal: bool,
}

/// One group of one side.
#[derive(Debug, Clone, Default)]
pub struct Bunch {
    pub location: Option<String>,
    /// Backtraces, leaf first; `None` when the tasks had no stack.
    pub stack: Option<Vec<Vec<Frame>>>,
    pub task_ids: BTreeSet<u64>,
    pub count: usize,
    pub states: BTreeMap<String, usize>,
    pub leaked: usize,
    pub parked_max_ns: Option<u64>,
    pub names: BTreeSet<String>,
}

/// A whole side.
#[derive(Debug, Clone)]
pub struct Side {
    pub process: Process,
    /// By key (location, then the stack's functions).
    pub bunches: BTreeMap<String, Bunch>,
}

impl Side {
    /// Reads a `stack --json` report; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Side, String> {
        let file: File =
            serde_json::from_str(text).map_err(|e| format!("not a `taskscope stack --json` report ({e})"))?;
        match file.format.as_deref() {
            None | Some(taskscope_report::json::FORMAT) => {}
            Some(other) => {
                return Err(format!(
                    "a report in format {other:?}, which this taskscope does not read (it reads {:?})",
                    taskscope_report::json::FORMAT
                ))
            }
        }
        let mut bunches: BTreeMap<String, Bunch> = BTreeMap::new();
        match (file.groups, file.tasks) {
            (Some(groups), _) => {
                for g in groups {
                    let bunch = bunches.entry(key(g.location.as_deref(), g.stack.as_deref())).or_default();
                    bunch.location = g.location;
                    bunch.stack = g.stack;
                    bunch.count += g.count;
                    bunch.task_ids.extend(g.task_ids);
                    for (state, n) in g.states {
                        *bunch.states.entry(state).or_insert(0) += n;
                    }
                    bunch.leaked += g.leaked;
                    bunch.parked_max_ns = bunch.parked_max_ns.max(g.parked_max_ns);
                    bunch.names.extend(g.names.into_iter().filter(|n| !n.is_empty()));
                }
            }
            (None, Some(tasks)) => {
                for t in tasks {
                    let bunch = bunches.entry(key(t.location.as_deref(), t.stack.as_deref())).or_default();
                    bunch.location = t.location;
                    bunch.stack = t.stack;
                    bunch.count += 1;
                    bunch.task_ids.insert(t.id);
                    *bunch.states.entry(t.state).or_insert(0) += 1;
                    bunch.leaked += usize::from(t.leaked);
                    bunch.parked_max_ns = bunch.parked_max_ns.max(t.parked_ns);
                    if !t.name.is_empty() {
                        bunch.names.insert(t.name);
                    }
                }
            }
            (None, None) => return Err("not a `taskscope stack --json` report (no groups and no tasks)".into()),
        }
        Ok(Side { process: file.process, bunches })
    }

    /// Every task id of the side.
    pub fn task_ids(&self) -> BTreeSet<u64> {
        self.bunches.values().flat_map(|b| b.task_ids.iter().copied()).collect()
    }
}

/// A group's key: its spawn location and the functions of its stack.
fn key(location: Option<&str>, stack: Option<&[Vec<Frame>]>) -> String {
    let mut key = location.unwrap_or("?").to_string();
    for backtrace in stack.unwrap_or_default() {
        key.push('\n');
        for frame in backtrace {
            key.push_str(&frame.function);
            key.push(';');
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUPED: &str = r#"{
      "format": "taskscope.stack.v1",
      "process": {"pid": 7, "name": "svc", "protocol_version": 1, "uptime_ns": 5},
      "now_ns": 100,
      "groups": [
        {"count": 2, "states": {"idle": 2}, "leaked": 2, "parked_max_ns": 50, "location": "src/a.rs:1:1",
         "names": [], "task_ids": [1, 2],
         "stack": [[{"function": "tokio::sync::Notify::poll", "file": "n.rs", "line": 1, "internal": true},
                    {"function": "svc::wait", "file": "src/a.rs", "line": 3, "internal": false}]]},
        {"count": 1, "states": {"running": 1}, "leaked": 0, "parked_max_ns": null, "location": "src/b.rs:2:2",
         "names": ["worker"], "task_ids": [3], "stack": null}
      ]
    }"#;

    #[test]
    fn a_grouped_report_reads_back_with_its_ids() {
        let side = Side::parse(GROUPED).expect("parses");
        assert_eq!(side.process.name, "svc");
        assert_eq!(side.bunches.len(), 2);
        assert_eq!(side.task_ids(), BTreeSet::from([1, 2, 3]));
        let a = side.bunches.values().find(|b| b.location.as_deref() == Some("src/a.rs:1:1")).expect("a");
        assert_eq!((a.count, a.leaked, a.parked_max_ns), (2, 2, Some(50)));
    }

    #[test]
    fn an_all_report_is_grouped_the_same_way() {
        let text = r#"{"process": {"pid": 7, "name": "svc", "uptime_ns": 5}, "now_ns": 1, "tasks": [
          {"id": 1, "state": "idle", "leaked": true, "parked_ns": 9, "location": "src/a.rs:1:1", "stack": null},
          {"id": 2, "state": "idle", "leaked": false, "parked_ns": 4, "location": "src/a.rs:1:1", "stack": null}]}"#;
        let side = Side::parse(text).expect("an older report without `format` still reads");
        let only = side.bunches.values().next().expect("one group");
        assert_eq!((only.count, only.leaked, only.parked_max_ns), (2, 1, Some(9)));
    }

    #[test]
    fn what_is_not_a_report_says_so() {
        assert!(Side::parse("{").unwrap_err().starts_with("not a `taskscope stack --json` report ("));
        assert!(Side::parse("{}").unwrap_err().contains("missing field `process`"));
        let future = GROUPED.replace("taskscope.stack.v1", "taskscope.stack.v9");
        assert!(Side::parse(&future).unwrap_err().contains("format \"taskscope.stack.v9\""));
        let empty = r#"{"process": {"pid": 7, "name": "svc", "uptime_ns": 5}, "now_ns": 1}"#;
        assert!(Side::parse(empty).unwrap_err().contains("no groups and no tasks"));
    }
}
