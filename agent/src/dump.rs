//! The runtimes the agent can dump, and how a `Dump` request gets its stacks.
//!
//! Stacks come from two places:
//!
//! - the safe capture ([`crate::capture`]): every wrapped future traces
//!   itself inside its own next poll. Always taken; it cannot harm anything.
//! - tokio's own task dump (`Handle::dump`), which traces every task of a
//!   runtime, wrapped or not, but on tokio 1.54.1 harms the program it dumps
//!   on both flavours. [`policy`] decides where it is taken: by default only
//!   with a tokio that carries the fixes in `patches/tokio`. Where it was
//!   opted into on a tokio without them, [`harm`] watches each dump and
//!   refuses every later one once a dump has harmed the runtime.
//!
//! tokio's dump is taken first, then the safe capture of the wrapped futures
//! it did not trace (the future a runtime blocks on, and every wrapped task
//! of a runtime that was not dumped). Two more properties of tokio's dump
//! shape this module:
//!
//! - A current-thread dump only works from a task running *on* that runtime,
//!   so the agent spawns a short-lived task there (from the agent thread, so
//!   it is not recorded as a program task) and leaves it out of the result.
//!   A panic of that task is a panic inside the dump (tokio-rs/tokio#8391),
//!   reported as such.
//! - A runtime whose worker is blocked never answers. The request reports
//!   `DUMP_STATUS_TIMED_OUT`, and later requests join the dump in flight and
//!   time out too instead of piling up new ones ([`flight`]); a multi-thread
//!   runtime is only asked for a dump once no worker is stuck in a poll and
//!   few tasks are queued (`take`).
//!
//! Raw instruction pointers are symbolised by [`crate::symbols`] on a
//! blocking thread of the agent's runtime, with a cache, instead of tokio's
//! `resolve_backtraces` (which resolves every frame of every task again on
//! each dump).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use taskscope_proto as proto;
use tokio::runtime::{Handle, RuntimeFlavor};

mod flight;
mod harm;
pub(crate) mod policy;
mod stall;
#[cfg(all(tokio_unstable, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
mod take;
#[cfg(test)]
mod tests;

/// Why a runtime has no stacks from tokio's dump.
#[derive(Debug, Clone)]
pub(crate) struct DumpError {
    pub status: proto::DumpStatus,
    pub detail: String,
}

impl DumpError {
    pub(crate) fn failed(detail: impl Into<String>) -> Self {
        DumpError { status: proto::DumpStatus::Failed, detail: detail.into() }
    }
}

/// A task's async stack: one backtrace per leaf future it awaits, each
/// outermost frame first. Tasks parked at the same place share one.
pub(crate) type Stack = Arc<Vec<Vec<proto::Frame>>>;

/// The stacks of one `Dump` request.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    /// How tokio's dump went, one entry per registered runtime, in
    /// registration order.
    pub runtimes: Vec<proto::RuntimeDump>,
    /// Stacks by tokio task id; tasks without a stack are absent.
    pub traces: HashMap<u64, Stack>,
    /// Where each task's stack came from, for the tasks either source saw
    /// (see [`source_of`] for the others).
    pub sources: HashMap<u64, proto::StackSource>,
    /// How the safe capture went.
    pub safe: proto::SafeCapture,
}

impl Capture {
    /// Whether tokio's dump of some runtime succeeded.
    pub(crate) fn tokio_dumped(&self) -> bool {
        self.runtimes.iter().any(|rt| rt.status == proto::DumpStatus::Ok as i32)
    }
}

/// Where task `id`'s stack came from, or why it has none, given a capture's
/// `sources` and whether tokio's dump of some runtime succeeded.
pub(crate) fn source_of(sources: &HashMap<u64, proto::StackSource>, tokio_dumped: bool, id: u64) -> proto::StackSource {
    match sources.get(&id) {
        Some(source) => *source,
        // Every task a dump traced is in `sources`: one it did not was
        // running or woken meanwhile.
        None if tokio_dumped => proto::StackSource::NotTraced,
        None => proto::StackSource::NotWrapped,
    }
}

/// Registers a runtime so that task dumps include its tasks.
///
/// `taskscope_agent::init()` registers the runtime it is called from as
/// `"main"`; a program that runs tasks on further runtimes registers each of
/// them once. Registering the same runtime again does nothing.
///
/// Task dumps need tokio's unstable APIs (`--cfg tokio_unstable`, tokio's
/// `taskdump` feature) and Linux on x86_64 or aarch64; elsewhere the runtime
/// is listed but cannot be dumped.
///
/// # Example
///
/// ```no_run
/// let io = tokio::runtime::Builder::new_multi_thread()
///     .worker_threads(2)
///     .thread_name("io")
///     .enable_all()
///     .build()
///     .expect("cannot build the io runtime");
/// let main = tokio::runtime::Builder::new_current_thread()
///     .enable_all()
///     .build()
///     .expect("cannot build the main runtime");
/// main.block_on(async {
///     taskscope_agent::init(); // registers this runtime as "main"
///     taskscope_agent::register_runtime("io", io.handle());
///     // ... spawn work on both runtimes ...
/// });
/// ```
pub fn register_runtime(name: impl Into<String>, handle: &Handle) {
    let mut registry = registry().lock().unwrap_or_else(PoisonError::into_inner);
    if registry.iter().any(|rt| rt.handle.id() == handle.id()) {
        return;
    }
    registry.push(Arc::new(Registered {
        name: name.into(),
        handle: handle.clone(),
        flight: flight::Slot::default(),
        harm: harm::Harm::default(),
    }));
    if registry.len() >= 2 {
        // Tasks must now be told apart by runtime (`Task.runtime`); with one
        // runtime, full-mode spawns pay nothing for it (see `crate::tags`).
        crate::tags::attribute_spawns();
    }
}

/// Each registered runtime's id (as `tags::runtime_u64`), in registration
/// order: the order of `ProcessInfo.runtimes`.
pub(crate) fn runtime_ids() -> Vec<u64> {
    registered().iter().map(|rt| crate::tags::runtime_u64(&rt.handle)).collect()
}

/// How many runtimes are registered.
pub(crate) fn registered_count() -> usize {
    registry().lock().unwrap_or_else(PoisonError::into_inner).len()
}

/// The registered runtimes, in registration order.
pub(crate) fn runtimes() -> Vec<proto::RuntimeInfo> {
    registered()
        .iter()
        .map(|rt| {
            let harmed = rt.harm.get();
            let (tokio_dumps, tokio_dumps_reason) = match rt.policy() {
                Ok(why) => (true, why),
                Err(why) => (false, why),
            };
            proto::RuntimeInfo {
                name: rt.name.clone(),
                flavor: match rt.handle.runtime_flavor() {
                    RuntimeFlavor::CurrentThread => "current_thread",
                    RuntimeFlavor::MultiThread => "multi_thread",
                    _ => "unknown",
                }
                .to_owned(),
                workers: u32::try_from(rt.handle.metrics().num_workers()).unwrap_or(u32::MAX),
                tokio_dumps,
                tokio_dumps_reason,
                harmed: harmed.unwrap_or_default(),
            }
        })
        .collect()
}

/// `Ok` when task dumps can be taken, else why not.
pub(crate) fn dumps_supported() -> Result<(), String> {
    platform_support()?;
    if registered().is_empty() {
        return Err("no runtime is registered: call taskscope_agent::init() from inside the \
                    runtime, or taskscope_agent::register_runtime()"
            .to_owned());
    }
    Ok(())
}

fn platform_support() -> Result<(), String> {
    if cfg!(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))) {
        return Err("tokio task dumps are only available on Linux on x86_64 or aarch64".to_owned());
    }
    if cfg!(not(tokio_unstable)) {
        return Err("the program was built without `--cfg tokio_unstable`, which tokio task \
                    dumps need (set it in .cargo/config.toml)"
            .to_owned());
    }
    Ok(())
}

/// The stacks for a `Dump` request: tokio's dump of every runtime where
/// [`policy`] allows it, then the safe capture of the wrapped futures it did
/// not trace. `timeout` bounds the wait for the runtimes' answers (not the
/// symbolising that follows); a runtime that does not answer in time is
/// reported as timed out.
pub(crate) async fn capture(timeout: Duration) -> Capture {
    capture_of(registered(), timeout).await
}

async fn capture_of(runtimes: Vec<Arc<Registered>>, timeout: Duration) -> Capture {
    let started = std::time::Instant::now();
    let mut capture = Capture::default();
    if let Err(why) = platform_support() {
        capture.runtimes =
            runtimes.iter().map(|rt| runtime_dump(rt, proto::DumpStatus::Unsupported, &why, Duration::ZERO)).collect();
        return capture;
    }
    let answers = futures::future::join_all(runtimes.iter().map(|rt| async move {
        match rt.policy() {
            Ok(_) => flight::answer(rt, timeout).await,
            Err(why) => {
                let status =
                    if rt.harm.get().is_some() { proto::DumpStatus::Harmed } else { proto::DumpStatus::Disabled };
                Err(runtime_dump(rt, status, &why, Duration::ZERO))
            }
        }
    }))
    .await;
    for (rt, answer) in runtimes.iter().zip(answers) {
        let dumped = match answer {
            Ok(answer) => stacks_of(rt, &answer).await.map(|tasks| (answer, tasks)),
            Err(failed) => Err(failed),
        };
        match dumped {
            Ok((answer, tasks)) => {
                capture.runtimes.push(runtime_dump(rt, proto::DumpStatus::Ok, "", answer.elapsed));
                let empty = answer.outcome.as_ref().map(|raw| raw.empty.as_slice()).unwrap_or_default();
                let traced = tasks.keys().chain(empty);
                capture.sources.extend(traced.map(|&id| (id, proto::StackSource::TokioDump)));
                capture.traces.extend(tasks);
            }
            Err(failed) => capture.runtimes.push(failed),
        }
    }
    // The wrapped futures tokio's dump did not trace; at least a moment for
    // them (a quarter second, or the whole timeout if shorter) even when a
    // blocked runtime used up the timeout.
    let left = timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(250).min(timeout));
    let traced = std::mem::take(&mut capture.sources);
    let mut capture = Capture { sources: HashMap::new(), ..capture };
    add_safe(&mut capture, left, |id| !traced.contains_key(&id)).await;
    capture.sources.extend(traced);
    capture
}

/// The safe capture alone, of the wrapped futures `wanted` keeps, with no
/// runtime's dump: for the test guard, which must not dump a runtime other
/// tests run on.
pub(crate) async fn capture_wrapped(timeout: Duration, wanted: impl Fn(u64) -> bool) -> Capture {
    let mut capture = Capture::default();
    add_safe(&mut capture, timeout, wanted).await;
    capture
}

/// Adds to `capture` the safe capture of the wrapped futures `wanted`
/// keeps, given `left` to answer.
async fn add_safe(capture: &mut Capture, left: Duration, wanted: impl Fn(u64) -> bool) {
    let safe = crate::capture::collect(left, wanted).await;
    capture.safe = safe.summary;
    for id in safe.unanswered {
        capture.sources.insert(id, proto::StackSource::NotPolled);
    }
    let answered: Vec<(u64, Vec<Vec<usize>>)> = safe.answers.into_iter().collect();
    let raw = RawDump::of(answered.iter().map(|(id, leaves)| (*id, leaves)));
    match symbolize_all(&raw.traces).await {
        Ok(stacks) => {
            for &(task, index) in &raw.tasks {
                if let Some(Some(stack)) = stacks.get(index) {
                    capture.traces.insert(task, Arc::clone(stack));
                }
            }
        }
        Err(why) => capture.safe.detail = why,
    }
    for (id, _) in answered {
        capture.sources.insert(id, proto::StackSource::Captured);
    }
}

/// One registered runtime.
struct Registered {
    name: String,
    handle: Handle,
    /// The dump in flight, if any.
    flight: flight::Slot,
    /// What a dump did to it, once one harmed it.
    harm: harm::Harm,
}

impl Registered {
    /// Whether tokio's dump of this runtime is taken (see [`policy`]).
    fn policy(&self) -> Result<String, String> {
        policy::decide(&self.name, self.current_thread(), self.harm.get().as_deref())
    }

    fn current_thread(&self) -> bool {
        self.handle.runtime_flavor() == RuntimeFlavor::CurrentThread
    }
}

/// What one runtime answered.
struct Answer {
    /// How long the runtime took to produce the dump.
    elapsed: Duration,
    /// Distinct traces and which task has which; `Err` explains a failure.
    outcome: Result<RawDump, DumpError>,
    /// The symbolised form of `outcome`, computed once for all requests.
    stacks: tokio::sync::OnceCell<Result<Vec<Option<Stack>>, String>>,
}

/// A dump reduced to instruction pointers, identical traces stored once.
#[derive(Debug, Default)]
pub(crate) struct RawDump {
    /// Distinct traces.
    pub traces: Vec<RawTrace>,
    /// `(task id, index into traces)`.
    pub tasks: Vec<(u64, usize)>,
    /// Tasks traced that awaited nothing tokio can trace.
    pub empty: Vec<u64>,
}

impl RawDump {
    /// Each task's backtraces (leaf first), identical ones stored once;
    /// tasks whose backtraces are all empty have no stack.
    pub(crate) fn of<'a>(tasks: impl Iterator<Item = (u64, &'a Vec<Vec<usize>>)>) -> RawDump {
        let mut raw = RawDump::default();
        let mut seen: HashMap<&'a Vec<Vec<usize>>, usize> = HashMap::new();
        for (id, ips) in tasks {
            if ips.iter().all(Vec::is_empty) {
                continue;
            }
            let index = *seen.entry(ips).or_insert_with(|| {
                raw.traces.push(RawTrace::Ips(ips.clone()));
                raw.traces.len() - 1
            });
            raw.tasks.push((id, index));
        }
        raw
    }
}

/// One task's trace before symbolising.
#[derive(Debug)]
pub(crate) enum RawTrace {
    /// One list of instruction pointers per backtrace, leaf first.
    Ips(Vec<Vec<usize>>),
    /// Already resolved by tokio (used when the pointers could not be read).
    Resolved(Vec<Vec<proto::Frame>>),
}

fn registry() -> &'static Mutex<Vec<Arc<Registered>>> {
    static REGISTRY: OnceLock<Mutex<Vec<Arc<Registered>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn registered() -> Vec<Arc<Registered>> {
    registry().lock().unwrap_or_else(PoisonError::into_inner).clone()
}

fn runtime_dump(rt: &Registered, status: proto::DumpStatus, detail: &str, elapsed: Duration) -> proto::RuntimeDump {
    proto::RuntimeDump {
        runtime: rt.name.clone(),
        status: status as i32,
        detail: detail.to_owned(),
        elapsed_ns: u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
    }
}

#[cfg(all(tokio_unstable, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
async fn take_dump(rt: &Arc<Registered>, progress: &flight::Progress) -> Option<Result<RawDump, DumpError>> {
    take::take(rt, progress).await
}

#[cfg(not(all(tokio_unstable, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
async fn take_dump(_rt: &Arc<Registered>, _progress: &flight::Progress) -> Option<Result<RawDump, DumpError>> {
    Some(Err(DumpError {
        status: proto::DumpStatus::Unsupported,
        detail: platform_support().err().unwrap_or_default(),
    }))
}

/// The stack of each task in `answer`, symbolised once per answer on a
/// blocking thread (the first lookups parse debuginfo, which takes a while).
async fn stacks_of(rt: &Registered, answer: &Answer) -> Result<HashMap<u64, Stack>, proto::RuntimeDump> {
    let raw = answer.outcome.as_ref().map_err(|e| runtime_dump(rt, e.status, &e.detail, answer.elapsed))?;
    let stacks = answer
        .stacks
        .get_or_init(|| symbolize_all(&raw.traces))
        .await
        .as_ref()
        .map_err(|why| runtime_dump(rt, proto::DumpStatus::Failed, why, answer.elapsed))?;
    let mut by_task = HashMap::with_capacity(raw.tasks.len());
    for &(task, index) in &raw.tasks {
        if let Some(Some(stack)) = stacks.get(index) {
            by_task.insert(task, Arc::clone(stack));
        }
    }
    Ok(by_task)
}

async fn symbolize_all(traces: &[RawTrace]) -> Result<Vec<Option<Stack>>, String> {
    if traces.is_empty() {
        return Ok(Vec::new());
    }
    let mut pending: Vec<Vec<usize>> = Vec::new();
    for trace in traces {
        if let RawTrace::Ips(backtraces) = trace {
            pending.extend(backtraces.iter().cloned());
        }
    }
    let before = crate::symbols::resolutions();
    let mut resolved = tokio::task::spawn_blocking(move || crate::symbols::symbolize(&pending))
        .await
        .map_err(|e| format!("symbolising the dump failed: {e}"))?
        .into_iter();
    if crate::symbols::resolutions() != before {
        tokio::spawn(crate::symbols::release_when_idle());
    }
    let stacks = traces
        .iter()
        .map(|trace| {
            let backtraces: Vec<Vec<proto::Frame>> = match trace {
                RawTrace::Ips(ips) => resolved.by_ref().take(ips.len()).collect(),
                RawTrace::Resolved(frames) => frames.clone(),
            };
            let backtraces: Vec<_> = backtraces.into_iter().filter(|b| !b.is_empty()).collect();
            (!backtraces.is_empty()).then(|| Arc::new(backtraces))
        })
        .collect();
    Ok(stacks)
}

/// Reads the instruction pointers out of the `Debug` form of a tokio trace:
/// `Trace { inner: Trace { backtraces: [[BacktraceFrame { ip: 0x.., symbol_address: 0x.. }, ..], ..] } }`.
/// `None` when the text does not have that shape.
pub(crate) fn parse_ips(debug: &str) -> Option<Vec<Vec<usize>>> {
    const START: &str = "backtraces: ";
    const IP: &[u8] = b"ip: 0x";
    let text = &debug.as_bytes()[debug.find(START)? + START.len()..];
    let mut backtraces = Vec::new();
    let mut current: Option<Vec<usize>> = None;
    let mut depth = 0usize;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'[' => {
                depth += 1;
                if depth == 2 {
                    current = Some(Vec::new());
                }
            }
            b']' => {
                if depth == 2 {
                    backtraces.push(current.take()?);
                }
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(backtraces);
                }
            }
            _ if depth == 0 => return None,
            _ if depth == 2 && text[i..].starts_with(IP) => {
                let digits = &text[i + IP.len()..];
                let len = digits.iter().take_while(|b| b.is_ascii_hexdigit()).count();
                let hex = std::str::from_utf8(&digits[..len]).ok()?;
                current.as_mut()?.push(usize::from_str_radix(hex, 16).ok()?);
                i += IP.len() + len;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}
