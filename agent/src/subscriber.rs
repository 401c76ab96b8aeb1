//! The bare tracing [`Subscriber`] that [`crate::init`] installs.
//!
//! Why not `tracing_subscriber::Registry` + a layer: the registry keeps its own
//! per-span records in a sharded slab and looks them up on every enter, exit
//! and event; measured, that alone costs more than our whole budget on
//! channel-heavy programs. Here the span id we hand to tracing *is* the task's
//! slot key, so a poll or wake reaches its slot with two loads.
//!
//! It is interested only in tokio's `runtime.spawn` spans and
//! `tokio::task::waker` events; every other callsite is disabled. It therefore
//! replaces any logging subscriber: programs that already have one use
//! [`crate::layer()`] instead.

use tracing_core::span::{Attributes, Current, Id, Record};
use tracing_core::subscriber::{Interest, Subscriber};
use tracing_core::{Event, LevelFilter, Metadata};

use crate::fields::WakerFields;
pub use crate::fields::{is_task_callsite, task_interest};
use crate::recorder::Recorder;
use crate::slots::Key;

/// Span id given to spans the agent does not record (the agent's own tasks).
/// It decodes to a slot index beyond the table, so every operation on it is a no-op.
const IGNORED: u64 = u64::MAX;

/// Records task lifecycles; see the module docs.
pub struct TaskSubscriber {
    recorder: &'static Recorder,
}

impl TaskSubscriber {
    pub(crate) fn new(recorder: &'static Recorder) -> Self {
        TaskSubscriber { recorder }
    }
}

impl Subscriber for TaskSubscriber {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        task_interest(meta)
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        is_task_callsite(meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let key = self.recorder.spawn(attrs).map_or(IGNORED, |k| k.0);
        Id::from_u64(key)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = WakerFields::default();
        event.record(&mut fields);
        if let Some(op) = fields.op {
            self.recorder.waker(Key(fields.span_id), op);
        }
    }

    fn enter(&self, span: &Id) {
        self.recorder.enter(Key(span.into_u64()));
    }

    fn exit(&self, span: &Id) {
        self.recorder.exit(Key(span.into_u64()));
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.recorder.clone_span(Key(id.into_u64()));
        id.clone()
    }

    fn try_close(&self, id: Id) -> bool {
        self.recorder.release(Key(id.into_u64()))
    }

    fn current_span(&self) -> Current {
        Current::none()
    }
}
