//! The task stacks as a pprof profile (`profile.proto`, gzipped), the shape
//! of Go's goroutine profile, so that `go tool pprof`, Pyroscope and
//! Grafana read a tokio program's tasks as they read goroutines.
//!
//! - sample type `goroutine`/`count` (what pprof's tools and Pyroscope
//!   expect of a goroutine profile; here it counts tasks), period 1;
//! - one sample per distinct stack *and* label set, whose value is the
//!   number of tasks that share both;
//! - labels `state`, `leaked` (`true`/`false`), `name` (when named) and
//!   `spawned_at` (`file:line:col`);
//! - locations leaf first, one line each, with function names, files and
//!   lines; the runtime's frames are kept (pprof's own `-focus`/`-hide`
//!   trim them), paths shown as `stack` shows them;
//! - a task without a stack gets one frame, `[no stack] spawned at
//!   file:line:col`, so it still counts where it was spawned.
//!
//! The message types are written here with prost's derive from the
//! `profile.proto` of github.com/google/pprof (only the fields used), so no
//! code generation is needed.

use std::collections::HashMap;
use std::io::Write as _;

use prost::Message;
use taskscope_proto::DumpedTask;

use crate::dump::{self, Dump};
use crate::frames::Paths;

#[derive(Clone, PartialEq, Message)]
struct Profile {
    #[prost(message, repeated, tag = "1")]
    sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    time_nanos: i64,
    #[prost(message, optional, tag = "11")]
    period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    period: i64,
    #[prost(int64, repeated, tag = "13")]
    comment: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
struct ValueType {
    #[prost(int64, tag = "1")]
    r#type: i64,
    #[prost(int64, tag = "2")]
    unit: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    label: Vec<Label>,
}

#[derive(Clone, PartialEq, Message)]
struct Label {
    #[prost(int64, tag = "1")]
    key: i64,
    #[prost(int64, tag = "2")]
    str: i64,
}

/// The one mapping: the program, already symbolised (so pprof neither
/// looks for the binary nor tries to symbolise).
#[derive(Clone, PartialEq, Message)]
struct Mapping {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "5")]
    filename: i64,
    #[prost(bool, tag = "7")]
    has_functions: bool,
    #[prost(bool, tag = "8")]
    has_filenames: bool,
    #[prost(bool, tag = "9")]
    has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    has_inline_frames: bool,
}

#[derive(Clone, PartialEq, Message)]
struct Location {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "2")]
    mapping_id: u64,
    #[prost(message, repeated, tag = "4")]
    line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
struct Line {
    #[prost(uint64, tag = "1")]
    function_id: u64,
    #[prost(int64, tag = "2")]
    line: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Function {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "2")]
    name: i64,
    #[prost(int64, tag = "3")]
    system_name: i64,
    #[prost(int64, tag = "4")]
    filename: i64,
}

/// A sample's identity: its locations (leaf first) and its labels (key, value).
type SampleKey = (Vec<u64>, Vec<(i64, i64)>);

/// What a profile holds, for the line the CLI prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub tasks: usize,
    pub samples: usize,
}

/// The profile of `dump`'s tasks (tokio's own runtime tasks left out),
/// gzipped; `time_nanos` is the wall-clock time of the dump.
pub fn profile(dump: &Dump, program: &str, time_nanos: i64) -> (Vec<u8>, Written) {
    profile_noted(dump, program, time_nanos, &[])
}

/// The comments a profile of `dump` carries (`go tool pprof -raw` prints
/// them): where its stacks came from, and how many tasks have none. Used by
/// `taskscope stack --pprof` and the agent's profile endpoint alike.
pub fn notes(dump: &Dump, timeout: std::time::Duration) -> Vec<String> {
    let mut notes: Vec<String> = dump.summary(timeout).map(|s| s.line()).into_iter().collect();
    let program_tasks = dump.tasks.iter().filter(|t| t.task.as_ref().is_some_and(|r| !r.runtime_internal));
    let missing = program_tasks.filter(|t| dump.stack_of(t).is_none()).count();
    if missing > 0 {
        let tasks = if missing == 1 { "task" } else { "tasks" };
        notes.push(format!(
            "{missing} {tasks} without a stack, counted by spawn location under \"[no stack] spawned at FILE:LINE:COL\""
        ));
    }
    notes
}

/// [`profile`] with `notes` added to its comments (`go tool pprof -raw`
/// prints them as `Comment:` lines): the agent's profile endpoint says there
/// where the stacks came from, and why tasks have none.
pub fn profile_noted(dump: &Dump, program: &str, time_nanos: i64, notes: &[String]) -> (Vec<u8>, Written) {
    let mut b = Builder::default();
    b.string(""); // index 0 is the empty string, as the format requires
    let paths = Paths::new(dump, false);
    let goroutine = b.string("goroutine");
    let count = b.string("count");
    let keys = [b.string("state"), b.string("leaked"), b.string("name"), b.string("spawned_at")];
    let mut comment = vec![b.string(&format!("taskscope task profile of {program}: a \"goroutine\" is a tokio task"))];
    comment.extend(notes.iter().map(|note| b.string(note)));
    let program = b.string(program);
    let mut samples: HashMap<SampleKey, i64> = HashMap::new();
    let mut tasks = 0;
    for dumped in &dump.tasks {
        let Some(task) = dumped.task.as_ref().filter(|t| !t.runtime_internal) else { continue };
        tasks += 1;
        let location = dump::location(task);
        let file = task.location.as_ref().map_or("", |l| l.file.as_str());
        let stack = b.stack(dump, dumped, location.as_deref(), file, &paths);
        let mut labels = vec![
            (keys[0], b.string(dump::state_word(dump::state(task)))),
            (keys[1], b.string(if task.leaked { "true" } else { "false" })),
        ];
        if !task.name.is_empty() {
            labels.push((keys[2], b.string(&task.name)));
        }
        if let Some(location) = &location {
            labels.push((keys[3], b.string(location)));
        }
        *samples.entry((stack, labels)).or_insert(0) += 1;
    }
    let mut sample: Vec<Sample> = samples
        .into_iter()
        .map(|((location_id, labels), n)| Sample {
            location_id,
            value: vec![n],
            label: labels.into_iter().map(|(key, str)| Label { key, str }).collect(),
        })
        .collect();
    // Largest first, then a fixed order: the same dump gives the same bytes.
    sample.sort_by(|x, y| y.value.cmp(&x.value).then_with(|| x.location_id.cmp(&y.location_id)));
    let written = Written { tasks, samples: sample.len() };
    let profile = Profile {
        sample_type: vec![ValueType { r#type: goroutine, unit: count }],
        sample,
        mapping: vec![Mapping {
            id: 1,
            filename: program,
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        }],
        location: b.locations,
        function: b.functions,
        string_table: b.strings,
        time_nanos,
        period_type: Some(ValueType { r#type: goroutine, unit: count }),
        period: 1,
        comment,
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a `Vec` cannot fail.
    let _ = gz.write_all(&profile.encode_to_vec());
    (gz.finish().unwrap_or_default(), written)
}

/// Interning of strings, functions and locations.
#[derive(Default)]
struct Builder {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<Function>,
    function_ids: HashMap<(i64, i64), u64>,
    locations: Vec<Location>,
    location_ids: HashMap<(u64, i64), u64>,
}

impl Builder {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    fn function(&mut self, name: &str, file: &str) -> u64 {
        let key = (self.string(name), self.string(file));
        if let Some(&id) = self.function_ids.get(&key) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        self.functions.push(Function { id, name: key.0, system_name: key.0, filename: key.1 });
        self.function_ids.insert(key, id);
        id
    }

    fn location(&mut self, function: u64, line: i64) -> u64 {
        if let Some(&id) = self.location_ids.get(&(function, line)) {
            return id;
        }
        let id = self.locations.len() as u64 + 1;
        self.locations.push(Location { id, mapping_id: 1, line: vec![Line { function_id: function, line }] });
        self.location_ids.insert((function, line), id);
        id
    }

    /// A task's locations, leaf first (each backtrace of a stack after the
    /// other, as `stack` prints them).
    /// `spawned` is the spawn location (`file:line:col`), `file` its file.
    fn stack(&mut self, dump: &Dump, task: &DumpedTask, spawned: Option<&str>, file: &str, paths: &Paths) -> Vec<u64> {
        let mut ids = Vec::new();
        if let Some(stack) = dump.stack_of(task) {
            for backtrace in &stack.backtraces {
                for frame in backtrace.frames.iter().rev() {
                    let function = self.function(&frame.function, paths.show(&frame.file));
                    ids.push(self.location(function, i64::from(frame.line)));
                }
            }
        }
        if ids.is_empty() {
            let name = format!("[no stack] spawned at {}", spawned.unwrap_or("an unknown location"));
            let function = self.function(&name, file);
            ids.push(self.location(function, 0));
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use taskscope_proto::{Backtrace, Frame, Location as Loc, Stack, Task, TaskState};

    fn task(id: u64, leaked: bool, stack_id: u32, name: &str) -> DumpedTask {
        DumpedTask {
            task: Some(Task {
                id,
                state: TaskState::Idle as i32,
                leaked,
                name: name.into(),
                polls: 1,
                location: Some(Loc { file: "src/main.rs".into(), line: 10, column: 5 }),
                ..Task::default()
            }),
            stack_id,
            ..DumpedTask::default()
        }
    }

    fn decode(bytes: &[u8]) -> Profile {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut raw).expect("gzip");
        Profile::decode(raw.as_slice()).expect("profile.proto")
    }

    #[test]
    fn one_sample_per_stack_and_labels_counting_tasks() {
        let frames = vec![
            Frame { function: "app::main".into(), file: "/w/src/main.rs".into(), line: 3, ..Frame::default() },
            Frame { function: "app::wait".into(), file: "/w/src/main.rs".into(), line: 9, ..Frame::default() },
        ];
        let mut dump = Dump::default();
        dump.stacks.insert(1, Stack { id: 1, backtraces: vec![Backtrace { frames }] });
        dump.tasks = vec![task(1, true, 1, ""), task(2, true, 1, ""), task(3, false, 1, ""), task(4, false, 0, "w")];
        let (bytes, written) = profile(&dump, "app", 7);
        assert_eq!(written, Written { tasks: 4, samples: 3 });
        let p = decode(&bytes);
        let s = |i: i64| p.string_table[i as usize].as_str();
        assert_eq!(s(p.sample_type[0].r#type), "goroutine");
        assert_eq!(p.sample[0].value, [2], "the two leaked tasks at one stack");
        let leaf = &p.location[(p.sample[0].location_id[0] - 1) as usize];
        let function = &p.function[(leaf.line[0].function_id - 1) as usize];
        assert_eq!((s(function.name), s(function.filename), leaf.line[0].line), ("app::wait", "src/main.rs", 9));
        let labels: Vec<(&str, &str)> = p.sample[0].label.iter().map(|l| (s(l.key), s(l.str))).collect();
        assert_eq!(labels, [("state", "idle"), ("leaked", "true"), ("spawned_at", "src/main.rs:10:5")]);
        let unstacked = p.sample.iter().find(|x| x.label.iter().any(|l| s(l.key) == "name")).expect("named");
        let only = &p.location[(unstacked.location_id[0] - 1) as usize];
        let function = &p.function[(only.line[0].function_id - 1) as usize];
        assert_eq!(s(function.name), "[no stack] spawned at src/main.rs:10:5");
        assert_eq!(profile(&dump, "app", 7).0, bytes, "the same dump gives the same file");
    }
}
