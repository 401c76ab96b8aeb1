//! Which frames of a backtrace a reader sees, and how their files are named.
//!
//! A tokio task dump is mostly runtime plumbing: `poll` adaptors, `Notified`
//! internals, the tracing machinery. The program's own frames are what the
//! reader is after, so by default runs of internal frames collapse to a
//! `... N runtime frames` line. One internal frame is kept: the one the
//! program's code called at the leaf end (e.g. `tokio::sync::oneshot::
//! Receiver::poll`), because it says what the task waits on, like the
//! `[chan receive]` of a Go goroutine dump. `--full` shows everything.
//!
//! Frames are listed leaf first (innermost call first), as Go and Rust
//! backtraces are; the protocol sends them root first.

use std::collections::HashSet;

use taskscope_proto::Frame;

use crate::dump::Dump;

/// One line of a rendered backtrace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// A frame shown in full.
    Frame(&'a Frame),
    /// A run of this many hidden internal frames.
    Collapsed(usize),
}

/// The lines of `frames` (root first, as sent), leaf first.
pub fn visible(frames: &[Frame], full: bool) -> Vec<Line<'_>> {
    let leaf_first = frames.iter().rev();
    if full {
        return leaf_first.map(Line::Frame).collect();
    }
    let mut lines = Vec::new();
    let mut run: Vec<&Frame> = Vec::new();
    let mut at_leaf = true; // still in the run that starts at the leaf
    for frame in leaf_first {
        if frame.internal {
            run.push(frame);
            continue;
        }
        flush(&mut lines, &mut run, at_leaf);
        at_leaf = false;
        lines.push(Line::Frame(frame));
    }
    flush(&mut lines, &mut run, at_leaf);
    lines
}

/// Emits a pending run of internal frames. The leaf run keeps its last frame
/// (the one program code called). A placeholder never stands for a single
/// frame: that frame takes no more room than the placeholder.
fn flush<'a>(lines: &mut Vec<Line<'a>>, run: &mut Vec<&'a Frame>, at_leaf: bool) {
    let kept = usize::from(at_leaf);
    let hidden = run.len().saturating_sub(kept);
    if hidden >= 2 {
        lines.push(Line::Collapsed(hidden));
        lines.extend(run[hidden..].iter().map(|f| Line::Frame(f)));
    } else {
        lines.extend(run.iter().map(|f| Line::Frame(f)));
    }
    run.clear();
}

/// How source paths are shown. The program's own frames carry absolute
/// paths from the debuginfo (`/home/u/app/src/main.rs`) while spawn locations
/// are relative to the workspace (`src/main.rs`); pairing the two reveals the
/// workspace root, which is then stripped so both read alike. Dependency and
/// standard-library paths are cut to the crate (`tokio-1.54.1/src/...`,
/// `library/core/src/...`). `--full` shows paths as recorded.
#[derive(Debug, Clone, Default)]
pub struct Paths {
    /// Show everything as recorded.
    pub full: bool,
    /// Workspace roots found, each ending with `/`.
    roots: Vec<String>,
}

impl Paths {
    /// Finds the roots from the dump's frames and spawn locations.
    pub fn new(dump: &Dump, full: bool) -> Paths {
        let relative = dump.tasks.iter().filter_map(|t| t.task.as_ref()?.location.as_ref()).map(|l| l.file.as_str());
        let absolute = dump
            .stacks
            .values()
            .flat_map(|s| &s.backtraces)
            .flat_map(|b| &b.frames)
            .filter(|f| !f.internal)
            .map(|f| f.file.as_str());
        Paths::pairing(relative, absolute, full)
    }

    /// Finds the roots by pairing spawn files (`relative`: relative ones
    /// count) with the program's own frames' files (`absolute`).
    pub fn pairing<'a>(
        relative: impl IntoIterator<Item = &'a str>,
        absolute: impl IntoIterator<Item = &'a str>,
        full: bool,
    ) -> Paths {
        let relative: HashSet<&str> = relative.into_iter().filter(|f| !f.is_empty() && !f.starts_with('/')).collect();
        let absolute: HashSet<&str> = absolute.into_iter().filter(|f| f.starts_with('/')).collect();
        let mut roots: Vec<String> = Vec::new();
        for file in absolute {
            for rel in &relative {
                if let Some(root) = file.strip_suffix(rel).filter(|r| r.ends_with('/')) {
                    if !roots.iter().any(|known| known == root) {
                        roots.push(root.to_string());
                    }
                }
            }
        }
        // Longest first, so a nested root wins over its parent.
        roots.sort_by_key(|r| std::cmp::Reverse(r.len()));
        Paths { full, roots }
    }

    /// The file as displayed.
    pub fn show<'a>(&self, file: &'a str) -> &'a str {
        if self.full {
            return file;
        }
        if let Some(rest) = self.roots.iter().find_map(|root| file.strip_prefix(root.as_str())) {
            return rest;
        }
        short_path(file)
    }

    /// `file:line:column` of a frame; `None` without a file.
    pub fn position(&self, frame: &Frame) -> Option<String> {
        if frame.file.is_empty() {
            return None;
        }
        let file = self.show(&frame.file);
        Some(match (frame.line, frame.column) {
            (0, _) => file.to_string(),
            (line, 0) => format!("{file}:{line}"),
            (line, column) => format!("{file}:{line}:{column}"),
        })
    }
}

/// Cuts dependency and standard-library paths to the crate:
/// `/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/sync/notify.rs`
/// becomes `tokio-1.54.1/src/sync/notify.rs`, and
/// `/rustc/<hash>/library/core/src/future/mod.rs` becomes `library/core/src/future/mod.rs`.
fn short_path(file: &str) -> &str {
    if let Some(i) = file.find("/registry/src/") {
        let rest = &file[i + "/registry/src/".len()..];
        // Skip the registry index directory.
        return rest.split_once('/').map_or(rest, |(_, path)| path);
    }
    if let Some(rest) = file.strip_prefix("/rustc/") {
        return rest.split_once('/').map_or(file, |(_, path)| path);
    }
    if let Some(i) = file.find("/git/checkouts/") {
        return &file[i + "/git/checkouts/".len()..];
    }
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, internal: bool) -> Frame {
        Frame { function: name.into(), internal, ..Frame::default() }
    }

    fn names(lines: &[Line<'_>]) -> Vec<String> {
        lines
            .iter()
            .map(|l| match l {
                Line::Frame(fr) => fr.function.clone(),
                Line::Collapsed(n) => format!("...{n}"),
            })
            .collect()
    }

    #[test]
    fn internal_runs_collapse_but_the_awaited_primitive_stays() {
        // Root first, as sent.
        let frames = vec![
            f("tokio::runtime::task::core::Core::poll", true),
            f("tokio::runtime::task::harness::poll_future", true),
            f("app::main::{{closure}}", false),
            f("core::future::poll_fn::PollFn::poll", true),
            f("app::wait::{{closure}}", false),
            f("tokio::sync::notify::Notified::poll", true),
            f("tokio::sync::notify::Notified::poll_notified", true),
            f("tokio::runtime::task::trace::trace_leaf", true),
        ];
        assert_eq!(
            names(&visible(&frames, false)),
            vec![
                "...2",
                "tokio::sync::notify::Notified::poll",
                "app::wait::{{closure}}",
                "core::future::poll_fn::PollFn::poll",
                "app::main::{{closure}}",
                "...2",
            ]
        );
        assert_eq!(visible(&frames, true).len(), frames.len());
        assert_eq!(names(&visible(&frames, true))[0], "tokio::runtime::task::trace::trace_leaf");
    }

    #[test]
    fn a_placeholder_never_stands_for_one_frame() {
        let frames = vec![f("app::main", false), f("tokio::Sleep::poll", true), f("tokio::trace_leaf", true)];
        assert_eq!(names(&visible(&frames, false)), vec!["tokio::trace_leaf", "tokio::Sleep::poll", "app::main"]);
        let frames = vec![f("rt::a", true), f("app::main", false)];
        assert_eq!(names(&visible(&frames, false)), vec!["app::main", "rt::a"]);
    }

    #[test]
    fn no_internal_frames_means_nothing_hidden() {
        let frames = vec![f("a", false), f("b", false)];
        assert_eq!(names(&visible(&frames, false)), vec!["b", "a"]);
        assert!(visible(&[], false).is_empty());
    }

    #[test]
    fn paths_are_shortened_for_display() {
        assert_eq!(
            short_path("/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/sync/notify.rs"),
            "tokio-1.54.1/src/sync/notify.rs"
        );
        assert_eq!(short_path("/rustc/90b35a6/library/core/src/future/mod.rs"), "library/core/src/future/mod.rs");
        assert_eq!(short_path("examples/src/bin/done_signal.rs"), "examples/src/bin/done_signal.rs");
        let frame = Frame { file: "src/main.rs".into(), line: 10, column: 5, ..Frame::default() };
        let paths = Paths::default();
        assert_eq!(paths.position(&frame).as_deref(), Some("src/main.rs:10:5"));
        assert_eq!(paths.position(&Frame::default()), None);
    }

    #[test]
    fn workspace_root_is_learned_from_spawn_locations() {
        use taskscope_proto::{Backtrace, DumpedTask, Location, Stack, Task};
        let own =
            Frame { function: "app::f".into(), file: "/home/u/app/src/main.rs".into(), line: 3, ..Frame::default() };
        let other = Frame { file: "/home/u/app/src/other.rs".into(), ..Frame::default() };
        let elsewhere = Frame { file: "/opt/src/main.rs.bak".into(), ..Frame::default() };
        let dump = Dump {
            stacks: [(1, Stack { id: 1, backtraces: vec![Backtrace { frames: vec![own.clone()] }] })].into(),
            tasks: vec![DumpedTask {
                task: Some(Task {
                    location: Some(Location { file: "src/main.rs".into(), line: 1, column: 1 }),
                    ..Task::default()
                }),
                stack_id: 1,
                ..DumpedTask::default()
            }],
            ..Dump::default()
        };
        let paths = Paths::new(&dump, false);
        assert_eq!(paths.position(&own).as_deref(), Some("src/main.rs:3"));
        assert_eq!(paths.show(&other.file), "src/other.rs", "every file under the root");
        assert_eq!(paths.show(&elsewhere.file), "/opt/src/main.rs.bak");
        assert_eq!(Paths::new(&dump, true).show(&own.file), "/home/u/app/src/main.rs");
    }
}
