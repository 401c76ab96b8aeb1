//! What a parked task waits on, in a few words and a class: the
//! `[chan receive, 5 minutes]` of a Go goroutine dump, for tokio.
//!
//! A stack's leaf end says what the task awaits: the frames between the
//! program's own code and the point where tokio's trace stopped are tokio's
//! (or tokio-util's) implementation of one primitive. `LEAVES` is the one
//! table that names them; a backtrace is read from its leaf toward its root,
//! over library frames, and the outermost frame the table knows wins, so
//! `Sender::send` (a full channel) beats the semaphore it waits on inside,
//! and `Mutex::lock` beats the same semaphore.
//!
//! The class is what matters for finding leaks (LeakProf's rule): a task
//! that waits on another task ([`Class::Sync`]) can wait forever if that task
//! is gone; one that waits on a timer wakes by itself; one that waits on the
//! outside world (a socket, a signal) is doing its job. A `select!` or
//! `join!` awaits several leaves at once: every branch is named, and any
//! timer branch makes the whole wait bounded, any I/O branch makes it an
//! I/O wait.
//!
//! The table is checked against real tokio futures by
//! `examples/tests/waits.rs` (one task parked on each primitive, dumped, its
//! reason asserted), so a tokio upgrade that moves a frame fails a test.

use std::cmp::Ordering;

use taskscope_proto::{Frame, Stack, Task, TaskState};

use crate::dump;
use crate::provenance::{Missing, Standing};

/// What kind of thing a task waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Another task (a channel, a lock, a notification): it waits forever
    /// if that task is gone or forgot it. The leak suspects.
    Sync,
    /// A timer: it will wake by itself.
    Timer,
    /// The outside world (a socket, a signal, a child process).
    Io,
    /// Something taskscope cannot name: a leaf the table does not know, or
    /// a future no dump can trace that still holds a waker.
    Unknown,
    /// Nothing at all: no leaf a dump can trace, and (in the full mode) no
    /// live waker.
    None,
}

impl Class {
    /// The word used in `--json` and in every view.
    pub fn word(self) -> &'static str {
        match self {
            Class::Sync => "sync",
            Class::Timer => "timer",
            Class::Io => "io",
            Class::Unknown => "unknown",
            Class::None => "none",
        }
    }
}

/// What one task (or group) waits on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Wait {
    /// A short phrase: `oneshot receive`, `broadcast receive | I/O read`.
    pub phrase: String,
    /// Its class.
    pub class: Class,
}

impl Wait {
    fn new(phrase: impl Into<String>, class: Class) -> Wait {
        Wait { phrase: phrase.into(), class }
    }
}

/// The phrase of a task that has no leaf a dump can trace and no live waker
/// while the agent sees wakers (the full mode): the leaked verdict.
pub const NOTHING_CAN_WAKE: &str = "nothing can wake it";

/// The phrase of a task whose future no dump can trace but which holds a
/// live waker (full mode): something outside tokio's trace will wake it.
pub const UNTRACEABLE: &str = "something a dump cannot trace (I/O readiness or a non-tokio future)";

/// The phrase of a task with no traceable leaf where the agent sees no
/// wakers (the lean mode), so it cannot tell a leak from an untraced wait.
pub const NOTHING_TRACEABLE: &str = "nothing tokio can trace";

/// One row of the table: a frame whose function contains `pattern` waits
/// on `phrase`. `phrase` is `None` for I/O, named by [`io_phrase`].
struct Leaf {
    pattern: &'static str,
    phrase: Option<&'static str>,
    class: Class,
}

const fn leaf(pattern: &'static str, phrase: &'static str, class: Class) -> Leaf {
    Leaf { pattern, phrase: Some(phrase), class }
}

const fn io(pattern: &'static str) -> Leaf {
    Leaf { pattern, phrase: None, class: Class::Io }
}

/// The known leaves. Within one frame the first row that matches wins;
/// across frames the outermost (nearest the program's code) does.
const LEAVES: &[Leaf] = &[
    leaf("tokio::signal::", "signal", Class::Io),
    leaf("tokio::process::", "child process", Class::Io),
    leaf("tokio::fs::", "file I/O", Class::Io),
    io("tokio::net::"),
    io("tokio::io::"),
    io("tokio::runtime::io::"),
    leaf("tokio::time::interval::", "interval", Class::Timer),
    leaf("tokio::time::sleep::", "sleep", Class::Timer),
    leaf("tokio::task::yield_now", "yield", Class::Timer),
    leaf("tokio::task::coop::consume_budget", "yield", Class::Timer),
    leaf("tokio::sync::mpsc::bounded::Sender", "mpsc send (channel full)", Class::Sync),
    leaf("tokio::sync::mpsc::bounded::Permit", "mpsc send (channel full)", Class::Sync),
    leaf("tokio::sync::mpsc::", "mpsc receive", Class::Sync),
    leaf("tokio::sync::oneshot::", "oneshot receive", Class::Sync),
    leaf("tokio::sync::broadcast::", "broadcast receive", Class::Sync),
    leaf("tokio::sync::watch::", "watch changed", Class::Sync),
    leaf("tokio::sync::barrier::", "Barrier wait", Class::Sync),
    leaf("tokio::sync::mutex::", "Mutex lock", Class::Sync),
    leaf("tokio::sync::rwlock::RwLock<T>::read", "RwLock read", Class::Sync),
    leaf("tokio::sync::rwlock::", "RwLock write", Class::Sync),
    leaf("tokio::sync::once_cell::", "OnceCell init", Class::Sync),
    leaf("tokio::sync::semaphore::", "Semaphore acquire", Class::Sync),
    leaf("tokio::sync::batch_semaphore::", "Semaphore acquire", Class::Sync),
    leaf("tokio::sync::notify::", "Notify", Class::Sync),
    leaf("tokio_util::sync::cancellation_token", "CancellationToken", Class::Sync),
    leaf("tokio::runtime::task::join::JoinHandle", "JoinHandle", Class::Sync),
    leaf("tokio::task::join_set::", "JoinSet", Class::Sync),
];

/// What a parked task waits on: from its stack when it has one, else from
/// what the agent knows of it. `None` when it is not parked, or when no
/// stack was had for a reason that says nothing of the wait (not wrapped,
/// dumps off, not polled in time) and nothing else tells.
pub fn of_task(task: &Task, standing: Standing, stack: Option<&Stack>) -> Option<Wait> {
    if dump::state(task) != TaskState::Idle {
        return None;
    }
    if let Some(stack) = stack.filter(|s| !s.backtraces.is_empty()) {
        return Some(of_stack(stack));
    }
    if task.leaked {
        return Some(Wait::new(NOTHING_CAN_WAKE, Class::None));
    }
    match standing {
        Standing::Missing(Missing::Untraceable) if task.live_wakers > 0 => Some(Wait::new(UNTRACEABLE, Class::Unknown)),
        Standing::Missing(Missing::Untraceable) => Some(Wait::new(NOTHING_TRACEABLE, Class::None)),
        _ => None,
    }
}

/// What a stack waits on: every backtrace's leaf, named, in a canonical
/// order (a `select!` polls its branches in random order).
pub fn of_stack(stack: &Stack) -> Wait {
    let mut leaves: Vec<Wait> = stack.backtraces.iter().map(|b| of_backtrace(&b.frames)).collect();
    leaves.sort_by(|a, b| compare_phrases(&a.phrase, &b.phrase));
    leaves.dedup();
    let class = combined(leaves.iter().map(|w| w.class));
    let phrase = leaves.iter().map(|w| w.phrase.as_str()).collect::<Vec<_>>().join(" | ");
    Wait { phrase, class }
}

/// Case-insensitive order, so `broadcast receive` comes before `I/O read`.
fn compare_phrases(a: &str, b: &str) -> Ordering {
    a.to_lowercase().cmp(&b.to_lowercase()).then_with(|| a.cmp(b))
}

/// The class of several branches awaited at once: any timer makes the wait
/// bounded, else any I/O makes it an I/O wait, else any sync wait is one.
fn combined(classes: impl Iterator<Item = Class>) -> Class {
    let classes: Vec<Class> = classes.collect();
    [Class::Timer, Class::Io, Class::Sync, Class::Unknown]
        .into_iter()
        .find(|c| classes.contains(c))
        .unwrap_or(Class::None)
}

/// What one backtrace (root first, as sent) waits on.
fn of_backtrace(frames: &[Frame]) -> Wait {
    let mut found: Option<(&Leaf, usize)> = None;
    for (i, frame) in frames.iter().enumerate().rev() {
        match LEAVES.iter().find(|l| frame.function.contains(l.pattern)) {
            Some(known) => found = Some((known, i)),
            // The program's own code (or a library taskscope does not
            // know) begins: the leaf ends here.
            None if !frame.internal => break,
            None => {}
        }
    }
    match found {
        Some((known, outermost)) => match known.phrase {
            Some(phrase) => Wait::new(phrase, known.class),
            None => Wait::new(io_phrase(&frames[outermost..]), Class::Io),
        },
        None => match frames.last() {
            Some(leaf) => Wait::new(format!("unknown leaf {}", short_function(&leaf.function)), Class::Unknown),
            None => Wait::new(NOTHING_TRACEABLE, Class::None),
        },
    }
}

/// The kind of I/O the frames from the outermost I/O frame to the leaf do.
fn io_phrase(frames: &[Frame]) -> &'static str {
    let any = |word: &str| frames.iter().any(|f| f.function.contains(word));
    if any("accept") {
        "accept"
    } else if any("connect") {
        "connect"
    } else if any("write") || any("flush") || any("shutdown") {
        "I/O write"
    } else if any("read") || any("recv") {
        "I/O read"
    } else {
        "I/O"
    }
}

/// `<futures_channel::mpsc::Receiver<T> as futures_core::stream::Stream>::poll_next`
/// becomes `futures_channel::mpsc::Receiver::poll_next`.
fn short_function(function: &str) -> String {
    let body = match function.strip_prefix('<').and_then(|rest| rest.split_once(" as ")) {
        Some((ty, rest)) => {
            let method = rest.rsplit_once(">::").map_or("", |(_, m)| m);
            format!("{ty}::{method}")
        }
        None => function.to_string(),
    };
    // Drop generic arguments.
    let mut out = String::new();
    let mut depth = 0usize;
    for c in body.chars() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskscope_proto::Backtrace;

    /// A backtrace from function names given leaf first (as read); names
    /// starting with `app::` are the program's own.
    fn bt(leaf_first: &[&str]) -> Backtrace {
        Backtrace {
            frames: leaf_first
                .iter()
                .rev()
                .map(|f| Frame { function: (*f).into(), internal: !f.starts_with("app::"), ..Frame::default() })
                .collect(),
        }
    }

    fn wait(backtraces: Vec<Backtrace>) -> Wait {
        of_stack(&Stack { id: 1, backtraces })
    }

    #[test]
    fn the_outermost_known_frame_names_the_wait() {
        let send = bt(&[
            "<tokio::sync::batch_semaphore::Acquire as core::future::future::Future>::poll",
            "tokio::sync::mpsc::bounded::Sender<T>::reserve_inner::{{closure}}",
            "tokio::sync::mpsc::bounded::Sender<T>::send::{{closure}}",
            "app::produce::{{closure}}",
            "tokio::sync::oneshot::Receiver::poll",
        ]);
        // The oneshot frame beyond the program's own frame is not this leaf's.
        assert_eq!(wait(vec![send]), Wait::new("mpsc send (channel full)", Class::Sync));
    }

    #[test]
    fn select_branches_are_named_in_one_order_and_a_timer_bounds_them() {
        let recv = bt(&["tokio::sync::broadcast::Recv<T>::poll", "app::h"]);
        let read = bt(&[
            "tokio::runtime::io::registration::Registration::poll_ready",
            "tokio::net::tcp::stream::TcpStream::poll_read_priv",
            "app::h",
        ]);
        let sleep = bt(&["tokio::time::sleep::Sleep::poll_elapsed", "app::h"]);
        let a = wait(vec![recv.clone(), read.clone()]);
        assert_eq!(a, wait(vec![read.clone(), recv.clone()]));
        assert_eq!(a, Wait::new("broadcast receive | I/O read", Class::Io));
        assert_eq!(wait(vec![recv.clone(), sleep]).class, Class::Timer);
        assert_eq!(wait(vec![recv.clone(), recv]), Wait::new("broadcast receive", Class::Sync));
    }

    #[test]
    fn an_unknown_leaf_is_named_not_guessed() {
        let w = wait(vec![bt(&[
            "<futures_channel::mpsc::Receiver<T> as futures_core::stream::Stream>::poll_next",
            "app::f",
        ])]);
        assert_eq!(w, Wait::new("unknown leaf futures_channel::mpsc::Receiver::poll_next", Class::Unknown));
    }

    #[test]
    fn without_a_stack_the_record_tells_leaked_from_untraced() {
        let idle = |leaked: bool, live_wakers: i64| Task {
            state: TaskState::Idle as i32,
            leaked,
            live_wakers,
            ..Task::default()
        };
        let untraceable = Standing::Missing(Missing::Untraceable);
        assert_eq!(of_task(&idle(true, 0), untraceable, None).map(|w| w.class), Some(Class::None));
        assert_eq!(of_task(&idle(false, 1), untraceable, None).map(|w| w.phrase), Some(UNTRACEABLE.to_string()));
        assert_eq!(of_task(&idle(false, 0), untraceable, None).map(|w| w.phrase), Some(NOTHING_TRACEABLE.to_string()));
        assert_eq!(of_task(&idle(false, 1), Standing::Missing(Missing::NotWrapped), None), None);
        let running = Task { state: TaskState::Running as i32, ..Task::default() };
        assert_eq!(of_task(&running, untraceable, None), None);
    }
}
