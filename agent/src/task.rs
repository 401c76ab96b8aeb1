//! Spawning tasks whose stacks the agent captures safely.
//!
//! [`spawn`] is `tokio::spawn` with the future wrapped in a
//! [`Traced`]: when `taskscope stack` asks, the task traces itself inside its
//! own next poll, on any runtime flavour, with no variable to set and
//! nothing that can harm the program (see [`Traced`]). Tasks spawned with
//! `tokio::spawn` are listed all the same, with states, parked times and
//! spawn locations; only their stacks need tokio's own task dump, which the
//! agent takes only where it is safe.
//!
//! [`Builder`] names tasks in both modes: through tokio's own task names in
//! the full mode, and by the agent itself in the lean mode, where tokio has
//! no task names.
//!
//! ```no_run
//! # #[tokio::main] async fn main() {
//! taskscope_agent::init();
//! let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
//! taskscope_agent::spawn(async move {
//!     let _ = rx.await; // `taskscope stack` shows this line
//! });
//! taskscope_agent::task::Builder::new()
//!     .name("ticker")
//!     .spawn(async {
//!         loop {
//!             tokio::time::sleep(std::time::Duration::from_secs(1)).await;
//!         }
//!     })
//!     .expect("spawn the ticker");
//! # }
//! ```

use std::future::Future;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::capture::Traced;

/// Spawns `future` as a tokio task, like `tokio::spawn` (same bounds, same
/// panics: outside a runtime it panics), with its stack captured safely on
/// request. The spawn location is the caller's.
#[track_caller]
#[inline(always)]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(Traced::task(future, None))
}

/// Settings for a task to spawn: its name. Like `tokio::task::Builder`, but
/// the task's stack is captured safely and its name is shown in the lean
/// mode too.
#[derive(Debug, Default, Clone, Copy)]
pub struct Builder<'a> {
    name: Option<&'a str>,
}

impl<'a> Builder<'a> {
    /// A builder with no name.
    pub fn new() -> Self {
        Builder::default()
    }

    /// The task's name, shown by `taskscope stack` and `attach`. Optional.
    pub fn name(self, name: &'a str) -> Self {
        Builder { name: Some(name) }
    }

    /// Spawns `future` on the current runtime (panics outside one, like
    /// `tokio::spawn`). The error is tokio's, when it cannot spawn.
    #[track_caller]
    pub fn spawn<F>(self, future: F) -> std::io::Result<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_on(future, &Handle::current())
    }

    /// Spawns `future` on the runtime behind `handle`.
    #[track_caller]
    pub fn spawn_on<F>(self, future: F, handle: &Handle) -> std::io::Result<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // The lean mode's hooks are told no names: the task carries its own
        // to its first poll. tokio's names reach the full mode's spans.
        let carried = match self.name {
            Some(name) if !tokio_names_recorded() => Some(Box::from(name)),
            _ => None,
        };
        let future = Traced::task(future, carried);
        #[cfg(feature = "tracing")]
        {
            let mut builder = tokio::task::Builder::new();
            if let Some(name) = self.name {
                builder = builder.name(name);
            }
            builder.spawn_on(future, handle)
        }
        #[cfg(not(feature = "tracing"))]
        {
            Ok(handle.spawn(future))
        }
    }
}

/// Whether tokio's own task names reach the agent (the full mode records
/// them from tokio's spawn spans).
fn tokio_names_recorded() -> bool {
    cfg!(feature = "tracing") && !crate::recorder::hooked()
}
