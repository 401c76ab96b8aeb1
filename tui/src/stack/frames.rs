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

use taskscope_proto::Frame;

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
/// (the one program code called); a run of one is shown as is.
fn flush<'a>(lines: &mut Vec<Line<'a>>, run: &mut Vec<&'a Frame>, at_leaf: bool) {
    match run.len() {
        0 => {}
        1 => lines.push(Line::Frame(run[0])),
        n if at_leaf => {
            lines.push(Line::Collapsed(n - 1));
            lines.push(Line::Frame(run[n - 1]));
        }
        n => lines.push(Line::Collapsed(n)),
    }
    run.clear();
}

/// Shortens dependency and standard-library paths for display:
/// `/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/sync/notify.rs`
/// becomes `tokio-1.54.1/src/sync/notify.rs`, and
/// `/rustc/<hash>/library/core/src/future/mod.rs` becomes `library/core/src/future/mod.rs`.
/// The program's own (relative) paths are left alone.
pub fn short_path(file: &str) -> &str {
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

/// `file:line:column`, shortened unless `full`; `None` without a file.
pub fn position(frame: &Frame, full: bool) -> Option<String> {
    if frame.file.is_empty() {
        return None;
    }
    let file = if full { frame.file.as_str() } else { short_path(&frame.file) };
    Some(match (frame.line, frame.column) {
        (0, _) => file.to_string(),
        (line, 0) => format!("{file}:{line}"),
        (line, column) => format!("{file}:{line}:{column}"),
    })
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
        assert_eq!(position(&frame, false).as_deref(), Some("src/main.rs:10:5"));
        assert_eq!(position(&Frame::default(), false), None);
    }
}
