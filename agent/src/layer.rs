//! A composable [`tracing_subscriber::Layer`] for programs that already
//! install a tracing subscriber (a `fmt` layer, OpenTelemetry, ...).
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//!
//! #[tokio::main]
//! async fn main() {
//!     tracing_subscriber::registry()
//!         .with(taskscope_agent::layer())
//!         // .with(your_fmt_layer.with_filter(your_filter))
//!         .init();
//! }
//! ```
//!
//! The layer carries its own per-layer filter that lets through only tokio's
//! task spans and waker events, so it sees nothing else and costs the other
//! layers nothing. Give your other layers per-layer filters too (`with_filter`)
//! rather than a global one: a global `EnvFilter` at `info` would also hide
//! tokio's `trace`-level task spans from taskscope. This path goes through the
//! registry's span lookups and is slower than [`crate::init`]'s bare subscriber.

use std::marker::PhantomData;

use tracing_core::span::{Attributes, Id};
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::fields::{is_task_callsite, task_interest, WakerFields};
use crate::recorder::Recorder;
use crate::slots::Key;

/// Records task lifecycles into the agent; built by [`crate::layer()`].
pub struct TaskLayer {
    recorder: &'static Recorder,
}

/// The per-layer filter: tokio task spans and waker events only.
pub struct OnlyTasks<S>(PhantomData<fn(S)>);

/// What [`crate::layer()`] returns.
pub type TaskscopeLayer<S> = Filtered<TaskLayer, OnlyTasks<S>, S>;

pub(crate) fn build<S>(recorder: &'static Recorder) -> TaskscopeLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    TaskLayer { recorder }.with_filter(OnlyTasks(PhantomData))
}

impl<S> Filter<S> for OnlyTasks<S> {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        is_task_callsite(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        task_interest(meta)
    }
}

/// The slot key of a span, kept in its extensions.
struct SlotKey(Key);

impl TaskLayer {
    fn key<S>(id: &Id, cx: &Context<'_, S>) -> Option<Key>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        cx.span(id)?.extensions().get::<SlotKey>().map(|k| k.0)
    }
}

impl<S> Layer<S> for TaskLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        if let Some(key) = self.recorder.spawn(attrs) {
            match cx.span(id) {
                Some(span) => span.extensions_mut().insert(SlotKey(key)),
                None => self.recorder.complete(key),
            }
        }
    }

    fn on_enter(&self, id: &Id, cx: Context<'_, S>) {
        if let Some(key) = Self::key(id, &cx) {
            self.recorder.enter(key);
        }
    }

    fn on_exit(&self, id: &Id, cx: Context<'_, S>) {
        if let Some(key) = Self::key(id, &cx) {
            self.recorder.exit(key);
        }
    }

    fn on_close(&self, id: Id, cx: Context<'_, S>) {
        if let Some(key) = Self::key(&id, &cx) {
            self.recorder.complete(key);
        }
    }

    fn on_event(&self, event: &Event<'_>, cx: Context<'_, S>) {
        let mut fields = WakerFields::default();
        event.record(&mut fields);
        let Some(op) = fields.op else { return };
        if fields.span_id == 0 {
            return;
        }
        if let Some(key) = Self::key(&Id::from_u64(fields.span_id), &cx) {
            self.recorder.waker(key, op);
        }
    }
}
