//! Reading tokio's instrumentation: which callsites matter, the fields of a
//! `runtime.spawn` span, the op of a `tokio::task::waker` event, and the
//! interning of spawn locations.
//!
//! tokio 1.54 emits, with `--cfg tokio_unstable` and its `tracing` feature:
//! - span `runtime.spawn` (target `tokio::task` or `tokio::task::blocking`) with
//!   fields `kind`, `task.name`, `task.id`, `loc.file`, `loc.line`, `loc.col`,
//!   entered around every poll and closed when the task's future is dropped;
//! - event target `tokio::task::waker` with `op` (`waker.clone`, `waker.drop`,
//!   `waker.wake`, `waker.wake_by_ref`) and `task.id` = the task span's id.
//!
//! Every other callsite is switched off (`Interest::never`), so the rest of the
//! program's instrumentation costs nothing. Only built with the `tracing`
//! feature; spawn files are interned in [`crate::files`].

use std::fmt::{self, Write as _};

use tracing_core::field::{Field, Visit};
use tracing_core::subscriber::Interest;
use tracing_core::Metadata;

use crate::files::FILES;
use crate::slots::kind_code;

/// `kind_code("block_on")`.
const BLOCK_ON: u32 = 4;

/// True for the span tokio opens around each task.
pub(crate) fn is_spawn_span(meta: &Metadata<'_>) -> bool {
    meta.is_span() && meta.name() == "runtime.spawn" && meta.target().starts_with("tokio::task")
}

/// True for tokio's waker events.
pub(crate) fn is_waker_event(meta: &Metadata<'_>) -> bool {
    meta.is_event() && meta.target() == "tokio::task::waker"
}

/// Whether `meta` is a callsite the full mode records: tokio's
/// `runtime.spawn` spans and `tokio::task::waker` events. Every other
/// callsite is disabled. Public (as `subscriber::is_task_callsite`) for
/// filters that must let exactly these through, and for measuring what
/// merely asking for them costs.
pub fn is_task_callsite(meta: &Metadata<'_>) -> bool {
    is_spawn_span(meta) || is_waker_event(meta)
}

/// The interest to register for `meta`: always for the callsites of
/// [`is_task_callsite`], never for the rest. Public (as
/// `subscriber::task_interest`) like it.
pub fn task_interest(meta: &Metadata<'_>) -> Interest {
    if is_task_callsite(meta) {
        Interest::always()
    } else {
        Interest::never()
    }
}

/// A fixed buffer for formatting short `Display` values without allocating.
/// Only whole `&str`s are appended, so its bytes are always UTF-8.
struct StackStr {
    buf: [u8; 96],
    len: usize,
}

impl StackStr {
    const fn new() -> Self {
        StackStr { buf: [0; 96], len: 0 }
    }

    fn as_str(&self) -> &str {
        // Whole `&str`s only (see `write_str`); the check is a cold fallback
        // that never fails.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for StackStr {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let Some(room) = self.buf.get_mut(self.len..end) else { return Err(fmt::Error) };
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Turns the `Display` of tokio's `kind` field (`task`, `local`,
/// `blocking`, `block_on`: one `write_str` of a `&'static str`) into its
/// code, without copying it anywhere first.
struct KindSink(u32);

impl fmt::Write for KindSink {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !s.is_empty() {
            self.0 = kind_code(s);
        }
        Ok(())
    }
}

/// Fields of a `runtime.spawn` span.
pub(crate) struct SpawnFields {
    pub task_id: u64,
    pub kind: u32,
    /// Interned `loc.file` (see [`crate::files::Files`]); 0 = none.
    pub file: u32,
    pub line: u32,
    pub col: u32,
    /// Set only for named tasks whose name does not fit `name_buf`.
    name: Option<String>,
    name_buf: StackStr,
    /// A `block_on` of tokio's own (see [`SpawnFields::tokios_own`]).
    tokios_block_on: bool,
}

impl SpawnFields {
    pub(crate) const fn new() -> Self {
        SpawnFields {
            task_id: 0,
            kind: 0,
            file: 0,
            line: 0,
            col: 0,
            name: None,
            name_buf: StackStr::new(),
            tokios_block_on: false,
        }
    }

    /// Whether the span is a `block_on` that tokio itself calls in its
    /// `src/runtime/`: the one a multi-thread `Handle::dump` runs on a thread
    /// of its own (tokio 1.54's `spawn_thread`), that is the agent's dump,
    /// not the program. Recorded, it added one to `spawned_total` per dump.
    /// A program's `block_on` is located at its caller (`#[track_caller]`).
    pub(crate) fn tokios_own(&self) -> bool {
        self.tokios_block_on
    }

    /// The task's name, if it has one.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref().or_else(|| Some(self.name_buf.as_str()).filter(|n| !n.is_empty()))
    }
}

impl Visit for SpawnFields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "task.id" => self.task_id = value,
            "loc.line" => self.line = value as u32,
            "loc.col" => self.col = value as u32,
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "loc.file" => self.keep_file(value),
            "kind" => self.kind = kind_code(value),
            "task.name" => self.set_name(value),
            _ => {}
        }
    }

    // tokio records `kind` and `task.name` with `%`, so they arrive here as
    // `Display` values: formatted straight into where they are kept (this
    // runs on the spawning thread, once per task).
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "kind" => {
                let mut sink = KindSink(self.kind);
                let _ = write!(sink, "{value:?}");
                self.kind = sink.0;
            }
            "task.name" => {
                self.name_buf.len = 0;
                if write!(self.name_buf, "{value:?}").is_err() {
                    self.name_buf.len = 0;
                    self.name = Some(format!("{value:?}"));
                }
            }
            _ => {}
        }
    }
}

impl SpawnFields {
    fn set_name(&mut self, value: &str) {
        if !value.is_empty() {
            self.name = Some(value.to_owned());
        }
    }

    fn keep_file(&mut self, value: &str) {
        self.file = FILES.get().map_or(0, |files| files.intern(value));
        // tokio records `kind` first. Only a `block_on` pays for the look at
        // its file: other spawns compare one number.
        if self.kind == BLOCK_ON && crate::files::in_tokio_runtime(value) {
            self.tokios_block_on = true;
        }
    }
}

/// What a waker event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WakeOp {
    Clone,
    Drop,
    /// Wake by value: wakes and consumes the waker.
    Wake,
    WakeByRef,
}

/// Fields of a `tokio::task::waker` event.
#[derive(Default)]
pub(crate) struct WakerFields {
    pub op: Option<WakeOp>,
    pub span_id: u64,
}

impl Visit for WakerFields {
    // tokio's waker events have exactly two fields, `op` (a str) and `task.id`
    // (a u64), so the value's type says which field it is: no name compare on
    // this hot path.
    #[inline]
    fn record_u64(&mut self, _field: &Field, value: u64) {
        self.span_id = value;
    }

    #[inline]
    fn record_str(&mut self, _field: &Field, value: &str) {
        self.op = parse_op(value.as_bytes());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "op" {
            let mut s = StackStr::new();
            let _ = write!(s, "{value:?}");
            self.op = parse_op(s.as_str().trim_matches('"').as_bytes());
        }
    }
}

/// `waker.clone`, `waker.drop`, `waker.wake`, `waker.wake_by_ref`, told apart
/// by length and one byte.
#[inline]
fn parse_op(op: &[u8]) -> Option<WakeOp> {
    match (op.len(), op.get(6)) {
        (11, Some(b'c')) => Some(WakeOp::Clone),
        (10, Some(b'd')) => Some(WakeOp::Drop),
        (10, Some(b'w')) => Some(WakeOp::Wake),
        (17, Some(b'w')) => Some(WakeOp::WakeByRef),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waker_ops_parse() {
        assert_eq!(parse_op(b"waker.clone"), Some(WakeOp::Clone));
        assert_eq!(parse_op(b"waker.drop"), Some(WakeOp::Drop));
        assert_eq!(parse_op(b"waker.wake"), Some(WakeOp::Wake));
        assert_eq!(parse_op(b"waker.wake_by_ref"), Some(WakeOp::WakeByRef));
        assert_eq!(parse_op(b"waker.other"), None);
    }

    #[test]
    fn block_on_is_the_code_of_its_kind() {
        assert_eq!(BLOCK_ON, kind_code("block_on"));
    }
}
