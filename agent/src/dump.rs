//! The runtimes the agent can dump, and task dumps taken without ever
//! cancelling one midway.
//!
//! A tokio task dump (`Handle::dump`) pauses a runtime's workers and re-polls
//! every idle task in a tracing mode that records a backtrace at each leaf
//! future. Three properties of tokio's implementation shape this module:
//!
//! - A multi-thread dump that is dropped before it completes can leave the
//!   runtime's "trace requested" flag set, after which every later dump spins
//!   forever. So a dump is never dropped: it runs to completion in a task of
//!   the agent's own runtime, concurrent requests share the dump in flight
//!   (single flight per runtime), and a request's timeout only bounds its
//!   wait for the shared answer.
//! - A current-thread dump only works from a task running *on* that runtime,
//!   so the agent spawns a short-lived task there (from the agent thread, so
//!   it is not recorded as a program task) and leaves it out of the result.
//! - A runtime whose worker is blocked never answers. The request reports
//!   `DUMP_STATUS_TIMED_OUT`, and later requests join the stuck dump and time
//!   out too instead of piling up new ones.
//! - Worse, in tokio 1.54 a multi-thread dump taken while one worker is
//!   blocked for over 250ms can wedge or panic another worker
//!   (tokio-rs/tokio#8370). So a multi-thread runtime is only asked for a dump
//!   once no worker is stuck in a poll (`take`); until then the dump waits,
//!   and it is withdrawn when no request waits for it any more (`flight`).
//!   A task that starts blocking during the dump itself remains a risk.
//!
//! Raw instruction pointers are read from the dump and symbolised by
//! [`crate::symbols`] on a blocking thread of the agent's runtime, with a
//! cache, instead of tokio's `resolve_backtraces` (which resolves every frame
//! of every task again on each dump).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use taskscope_proto as proto;
use tokio::runtime::{Handle, RuntimeFlavor};

mod flight;
#[cfg(all(tokio_unstable, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
mod take;
#[cfg(test)]
mod tests;

/// How the reason for a dump the agent declines to take begins.
pub(crate) const REFUSED: &str = "not dumped: ";

/// `TASKSCOPE_MT_DUMPS`: dump multi-thread runtimes at the user's risk (see `take`).
pub(crate) static MT_DUMPS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A task's async stack: one backtrace per leaf future it awaits, each
/// outermost frame first. Tasks parked at the same place share one.
pub(crate) type Stack = Arc<Vec<Vec<proto::Frame>>>;

/// The result of dumping every registered runtime.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    /// How it went, one entry per registered runtime, in registration order.
    pub runtimes: Vec<proto::RuntimeDump>,
    /// Stacks by tokio task id; tasks without a stack are absent.
    pub traces: HashMap<u64, Stack>,
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
    }));
}

/// How many runtimes are registered.
pub(crate) fn registered_count() -> usize {
    registry().lock().unwrap_or_else(PoisonError::into_inner).len()
}

/// The registered runtimes, in registration order.
pub(crate) fn runtimes() -> Vec<proto::RuntimeInfo> {
    registered()
        .iter()
        .map(|rt| proto::RuntimeInfo {
            name: rt.name.clone(),
            flavor: match rt.handle.runtime_flavor() {
                RuntimeFlavor::CurrentThread => "current_thread",
                RuntimeFlavor::MultiThread => "multi_thread",
                _ => "unknown",
            }
            .to_owned(),
            workers: u32::try_from(rt.handle.metrics().num_workers()).unwrap_or(u32::MAX),
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
    if cfg!(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))
    {
        return Err("tokio task dumps are only available on Linux on x86_64 or aarch64".to_owned());
    }
    if cfg!(not(tokio_unstable)) {
        return Err("the program was built without `--cfg tokio_unstable`, which tokio task \
                    dumps need (set it in .cargo/config.toml)"
            .to_owned());
    }
    Ok(())
}

/// Dumps every registered runtime concurrently. `timeout` bounds the wait
/// for each runtime's answer (not the symbolising that follows); a runtime
/// that does not answer in time is reported as timed out.
pub(crate) async fn capture(timeout: Duration) -> Capture {
    capture_of(registered(), timeout).await
}

async fn capture_of(runtimes: Vec<Arc<Registered>>, timeout: Duration) -> Capture {
    if let Err(why) = platform_support() {
        let runtimes =
            runtimes.iter().map(|rt| runtime_dump(rt, proto::DumpStatus::Unsupported, &why, Duration::ZERO)).collect();
        return Capture { runtimes, traces: HashMap::new() };
    }
    let answers = futures::future::join_all(runtimes.iter().map(|rt| flight::answer(rt, timeout))).await;
    let mut capture = Capture::default();
    for (rt, answer) in runtimes.iter().zip(answers) {
        let dumped = match answer {
            Ok(answer) => stacks_of(rt, &answer).await.map(|tasks| (answer, tasks)),
            Err(failed) => Err(failed),
        };
        match dumped {
            Ok((answer, tasks)) => {
                capture.runtimes.push(runtime_dump(rt, proto::DumpStatus::Ok, "", answer.elapsed));
                capture.traces.extend(tasks);
            }
            Err(failed) => capture.runtimes.push(failed),
        }
    }
    capture
}

/// One registered runtime.
struct Registered {
    name: String,
    handle: Handle,
    /// The dump in flight, if any.
    flight: flight::Slot,
}

/// What one runtime answered.
struct Answer {
    /// How long the runtime took to produce the dump.
    elapsed: Duration,
    /// Distinct traces and which task has which; `Err` explains a failure.
    outcome: Result<RawDump, String>,
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
async fn take_dump(rt: &Registered, progress: &flight::Progress) -> Option<Result<RawDump, String>> {
    take::take(&rt.name, &rt.handle, progress).await
}

#[cfg(not(all(tokio_unstable, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
async fn take_dump(_rt: &Registered, _progress: &flight::Progress) -> Option<Result<RawDump, String>> {
    Some(Err(platform_support().err().unwrap_or_default()))
}

/// The stack of each task in `answer`, symbolised once per answer on a
/// blocking thread (the first lookups parse debuginfo, which takes a while).
async fn stacks_of(rt: &Registered, answer: &Answer) -> Result<HashMap<u64, Stack>, proto::RuntimeDump> {
    let failed = |detail: &str| {
        // A dump the agent declined to take is "disabled", not a failure.
        let status = if detail.starts_with(REFUSED) { proto::DumpStatus::Disabled } else { proto::DumpStatus::Failed };
        runtime_dump(rt, status, detail, answer.elapsed)
    };
    let raw = answer.outcome.as_ref().map_err(|why| failed(why))?;
    let stacks = answer.stacks.get_or_init(|| symbolize_all(&raw.traces)).await.as_ref().map_err(|why| failed(why))?;
    let mut by_task = HashMap::with_capacity(raw.tasks.len());
    for &(task, index) in &raw.tasks {
        if let Some(Some(stack)) = stacks.get(index) {
            by_task.insert(task, Arc::clone(stack));
        }
    }
    Ok(by_task)
}

async fn symbolize_all(traces: &[RawTrace]) -> Result<Vec<Option<Stack>>, String> {
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
