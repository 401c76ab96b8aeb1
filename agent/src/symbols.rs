//! Turning the raw instruction pointers of a task dump into readable frames.
//!
//! Symbolising is the expensive part of a dump: the first lookup parses the
//! binary's debuginfo, and every lookup takes the `backtrace` crate's global
//! lock. Ten thousand tasks parked at the same `.await` share a handful of
//! addresses, and the same addresses come back dump after dump, so each
//! address is resolved once per process and cached here.
//!
//! This module also decides which frames are *internal* (runtime, standard
//! library and async plumbing) so that tools can hide them, and trims the
//! frames that belong to the dump machinery itself.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use taskscope_proto::Frame;

mod source;
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod symtab;

/// The symbol table's full name for the function containing `ip`.
fn symtab_name(ip: usize) -> Option<String> {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    return symtab::function_name(ip);
    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
    return {
        let _ = ip;
        None
    };
}

/// Crates whose frames are plumbing rather than the program's own logic.
const INTERNAL_CRATES: &[&str] = &[
    "tokio",
    "tokio_util",
    "tokio_stream",
    "std",
    "core",
    "alloc",
    "futures",
    "futures_util",
    "futures_core",
    "futures_channel",
    "futures_executor",
    "tracing",
    "tracing_core",
    "tracing_futures",
    "backtrace",
    "taskscope_agent",
];

/// Beyond this many cached addresses the cache starts over; a program has far
/// fewer distinct await points, so this only bounds pathological cases.
const MAX_CACHED: usize = 200_000;

/// How long the parsed debuginfo is kept after the last address resolved
/// with it (see [`release_when_idle`]).
const KEEP_DEBUGINFO_FOR: Duration = Duration::from_secs(30);

/// Batches of new addresses resolved so far.
static RESOLUTIONS: AtomicU64 = AtomicU64::new(0);

type Cache = Mutex<HashMap<usize, Arc<[Frame]>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::default)
}

/// Symbolises backtraces given as instruction pointers, leaf first (the order
/// in which tokio captures them). Each result is outermost first, with the
/// dump machinery trimmed (see [`trim`]).
///
/// Blocks (debuginfo parsing, global lock): call it from a blocking thread.
pub(crate) fn symbolize(backtraces: &[Vec<usize>]) -> Vec<Vec<Frame>> {
    let mut known: HashMap<usize, Arc<[Frame]>> = HashMap::new();
    let mut missing: Vec<usize> = Vec::new();
    {
        let cache = cache().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for &ip in backtraces.iter().flatten() {
            if known.contains_key(&ip) {
                continue;
            }
            match cache.get(&ip) {
                Some(frames) => {
                    known.insert(ip, Arc::clone(frames));
                }
                None => missing.push(ip),
            }
        }
    }
    missing.sort_unstable();
    missing.dedup();
    // Resolve without holding the cache lock: a first resolution can take a
    // while and other dumps may be reading the cache meanwhile.
    let mut sources = source::Sources::default();
    let resolved: Vec<(usize, Arc<[Frame]>)> =
        missing.into_iter().map(|ip| (ip, resolve_ip(ip, &mut sources))).collect();
    drop(sources);
    if !resolved.is_empty() {
        let mut cache = cache().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() + resolved.len() > MAX_CACHED {
            cache.clear();
        }
        for (ip, frames) in &resolved {
            cache.insert(*ip, Arc::clone(frames));
        }
    }
    if !resolved.is_empty() {
        RESOLUTIONS.fetch_add(1, Ordering::Relaxed);
    }
    known.extend(resolved);

    backtraces
        .iter()
        .map(|ips| {
            let frames = ips
                .iter()
                .rev()
                .flat_map(|ip| known.get(ip).map(|f| f.iter().cloned()).into_iter().flatten())
                .collect();
            trim(frames)
        })
        .collect()
}

/// The count of batches of new addresses resolved so far: a caller that sees
/// it change across [`symbolize`] arranges [`release_when_idle`].
pub(crate) fn resolutions() -> u64 {
    RESOLUTIONS.load(Ordering::Relaxed)
}

/// Gives back the memory of the program's parsed debuginfo once no new
/// address has needed it for [`KEEP_DEBUGINFO_FOR`].
///
/// The first resolution makes the `backtrace` crate map the executable's
/// debuginfo and parse its line tables: on the examples (a 29 MB release
/// binary with line tables) that is 17 MB of heap and 25 MB of mapped file,
/// kept for the life of the process, which a service that leaves the agent
/// on would pay for one `taskscope stack`. Every answer is in this module's
/// own cache, so dumps that meet only known addresses (the usual case: the
/// same await points dump after dump) never need the debuginfo again; one
/// that meets new addresses parses it again.
pub(crate) async fn release_when_idle() {
    release_after(KEEP_DEBUGINFO_FOR).await;
}

/// [`release_when_idle`] after `idle` instead of [`KEEP_DEBUGINFO_FOR`].
async fn release_after(idle: Duration) {
    let seen = resolutions();
    tokio::time::sleep(idle).await;
    if resolutions() != seen {
        return; // a later resolution arranged its own release
    }
    let _ = tokio::task::spawn_blocking(|| {
        backtrace::clear_symbol_cache();
        trim_heap();
    })
    .await;
}

/// Returns freed heap pages to the system (glibc keeps them otherwise).
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Resolves one address into its frames, outermost first (an address inside
/// inlined code yields the inlined functions too). An inlined async body
/// that the debuginfo names only `{async_fn#0}` is named from `sources`.
fn resolve_ip(ip: usize, sources: &mut source::Sources) -> Arc<[Frame]> {
    let mut frames = Vec::new();
    backtrace::resolve(ip as *mut c_void, |symbol| {
        let name = symbol.name().map(|name| format!("{name:#}"));
        frames.push(frame(
            name.as_deref(),
            symbol.filename().map(|p| p.display().to_string()),
            symbol.lineno(),
            symbol.colno(),
        ));
    });
    // The last symbol is the function that really contains `ip` (the others
    // were inlined into it). Debuginfo limited to line tables names it
    // without its path; the symbol table has the full name.
    match frames.last_mut() {
        // Pathless, generic arguments aside (`{async_fn#0}<tokio::net::Tcp>`
        // names the same function as `{async_fn#0}`).
        Some(outer) if !outer.function.split('<').next().unwrap_or_default().contains("::") => {
            if let Some(name) = symtab_name(ip) {
                let file = std::mem::take(&mut outer.file);
                *outer = frame(Some(&name), Some(file), Some(outer.line), Some(outer.column));
            }
        }
        Some(_) => {}
        None => {
            // No debuginfo: name it from the symbol table, or at least show the address.
            let name = symtab_name(ip).unwrap_or_else(|| format!("{ip:#x}"));
            frames.push(frame(Some(&name), None, None, None));
        }
    }
    for frame in &mut frames {
        if let Some(named) = sources.name(&frame.function, &frame.file, frame.line, frame.column) {
            frame.function = named;
        }
    }
    // `backtrace` reports inlined functions innermost first.
    frames.reverse();
    frames.into()
}

/// Builds a frame from what a symboliser reported.
pub(crate) fn frame(name: Option<&str>, file: Option<String>, line: Option<u32>, column: Option<u32>) -> Frame {
    let function = name.map(clean_name).unwrap_or_default();
    let file = file.unwrap_or_default();
    Frame {
        internal: is_internal(&function) || (owner_crate(&function).is_none() && is_internal_file(&file)),
        function,
        file,
        line: line.unwrap_or(0),
        column: column.unwrap_or(0),
    }
}

/// A demangled name without the trailing `::h0123456789abcdef` hash.
pub(crate) fn clean_name(name: &str) -> String {
    let name = name.trim();
    if let Some((head, hash)) = name.rsplit_once("::h") {
        if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return head.to_owned();
        }
    }
    name.to_owned()
}

/// Drops the frames that show how the dump was taken rather than where the
/// task is: everything up to and including tokio's `Root::poll` (the task
/// harness) and everything from the leaf-capturing machinery (`trace_leaf`,
/// the `backtrace` crate) on. Frames are outermost first.
pub(crate) fn trim(mut frames: Vec<Frame>) -> Vec<Frame> {
    if let Some(root) = frames.iter().rposition(|f| is_trace_root(&f.function)) {
        frames.drain(..=root);
    }
    // A safe capture's root is the agent's own `poll_fn` around the task's
    // future (see `crate::capture`): its frames come first, then the task's.
    if let Some(own) = frames.iter().take(CAPTURE_FRAMES).rposition(is_capture_machinery) {
        frames.drain(..=own);
    }
    if let Some(leaf) = frames.iter().position(|f| is_trace_machinery(&f.function)) {
        frames.truncate(leaf);
    }
    frames
}

/// At most this many of a safe capture's outermost frames are its own.
const CAPTURE_FRAMES: usize = 6;

/// A frame of the safe capture's traced poll: the `poll_fn` it roots the
/// trace at, and its closure (which line-tables-only debuginfo names only by
/// its file).
fn is_capture_machinery(frame: &Frame) -> bool {
    frame.function.contains("taskscope_agent::capture::")
        || (frame.file.ends_with("/capture/trace.rs")
            && (frame.file.contains("/agent/src/") || frame.file.contains("/taskscope-agent-")))
}

fn is_trace_root(function: &str) -> bool {
    function.contains("tokio::runtime::task::trace::Root<") && function.ends_with("::poll")
}

fn is_trace_machinery(function: &str) -> bool {
    function.starts_with("backtrace::")
        || function.starts_with("tokio::runtime::task::trace::trace_leaf")
        || function.starts_with("tokio::runtime::task::trace::trace_impl::")
        || function.starts_with("tokio::runtime::task::trace::Trace::capture")
        || function.starts_with("tokio::runtime::task::trace::trace_with")
}

/// True when a (cleaned, demangled) function belongs to the runtime, the
/// standard library or the async plumbing rather than to the program.
///
/// The owner is the first path segment, so `tokio::...::{{closure}}` is
/// internal while `my_crate::handler::{{closure}}` is not. For trait methods
/// (`<Type as Trait>::method`) the owner is the type's crate, unless the type
/// is a bare generic parameter (`<F as core::future::future::Future>::poll`,
/// a forwarding frame), in which case it is the trait's crate.
pub(crate) fn is_internal(function: &str) -> bool {
    match owner_crate(function) {
        Some(krate) => INTERNAL_CRATES.contains(&krate),
        None => false,
    }
}

/// True when `file` is the source of an internal crate: the standard library
/// (`/rustc/<hash>/library/core/...`) or a registry crate
/// (`.../registry/src/<index>/tokio-1.54.1/...`). Used for frames whose
/// name has no path, which is how line-tables-only debuginfo names inlined
/// functions (`poll_elapsed`).
fn is_internal_file(file: &str) -> bool {
    if let Some((before, after)) = file.split_once("/library/") {
        if before.starts_with("/rustc/") || before.ends_with("/rustlib/src/rust") {
            return INTERNAL_CRATES.contains(&after.split('/').next().unwrap_or(""));
        }
    }
    if let Some((_, after)) = file.split_once("/registry/src/") {
        // `<index>/<name>-<version>/...`; the name ends at the first dash
        // followed by a digit (`tokio-util-0.7.20`, `libc-1.0.0-alpha.5`).
        let package = after.split('/').nth(1).unwrap_or("");
        let end = package
            .match_indices('-')
            .map(|(dash, _)| dash)
            .find(|&dash| package[dash + 1..].starts_with(|c: char| c.is_ascii_digit()))
            .unwrap_or(package.len());
        return INTERNAL_CRATES.contains(&package[..end].replace('-', "_").as_str());
    }
    false
}

fn owner_crate(function: &str) -> Option<&str> {
    let function = function.trim();
    if let Some(rest) = function.strip_prefix('<') {
        let (self_ty, trait_path) = split_qualified(rest)?;
        return match path_crate(self_ty) {
            Some(krate) => Some(krate),
            None => trait_path.and_then(path_crate),
        };
    }
    path_crate(function)
}

/// Splits the inside of `<Type as Trait>::rest` into `Type` and `Trait`.
fn split_qualified(inner: &str) -> Option<(&str, Option<&str>)> {
    let mut depth = 0usize;
    let mut as_at = None;
    let mut prev = ' ';
    for (i, c) in inner.char_indices() {
        let arrow = prev == '-';
        prev = c;
        match c {
            '<' | '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            '>' if arrow => {}
            '>' if depth == 0 => {
                let self_ty = &inner[..as_at.unwrap_or(i)];
                let trait_path = as_at.map(|a| &inner[a + 4..i]);
                return Some((self_ty, trait_path));
            }
            '>' => depth -= 1,
            ' ' if depth == 0 && as_at.is_none() && inner[i..].starts_with(" as ") => {
                as_at = Some(i);
            }
            _ => {}
        }
    }
    None
}

/// The crate of a path such as `tokio::time::Sleep`, `&mut core::pin::Pin<P>`
/// or `dyn core::future::Future`; `None` for a bare generic (`F`), a tuple,
/// a slice or an unknown name.
fn path_crate(path: &str) -> Option<&str> {
    let mut path = path.trim();
    for prefix in ["&mut ", "&", "*const ", "*mut ", "dyn ", "impl ", "mut "] {
        if let Some(rest) = path.strip_prefix(prefix) {
            path = rest.trim_start();
        }
    }
    if path.starts_with('<') {
        return owner_crate(path);
    }
    let end = path.find("::")?;
    let krate = &path[..end];
    let valid = !krate.is_empty() && krate.chars().all(|c| c.is_alphanumeric() || c == '_');
    valid.then_some(krate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(function: &str) -> Frame {
        frame(Some(function), None, None, None)
    }

    #[inline(never)]
    fn a_function_of_ours() -> usize {
        std::hint::black_box(a_function_of_ours as fn() -> usize as usize)
    }

    #[tokio::test]
    async fn released_debuginfo_is_parsed_again_and_cached_answers_stay() {
        // An address inside a function of this crate, as a return address would be.
        let ip = a_function_of_ours() + 1;
        let before = resolutions();
        let first = symbolize(&[vec![ip]]);
        assert!(resolutions() > before, "a new address is resolved");
        assert_eq!(symbolize(&[vec![ip]]), first, "then answered from the cache");
        release_after(Duration::ZERO).await;
        assert_eq!(symbolize(&[vec![ip]]), first, "the cache outlives the debuginfo");
        // A new address after the release parses the debuginfo again.
        let other = symbolize(&[vec![clean_name as fn(&str) -> String as usize + 1]]);
        let names: Vec<&str> = other[0].iter().map(|f| f.function.as_str()).collect();
        assert!(names.iter().any(|n| n.contains("clean_name")), "{names:?}");
    }

    #[test]
    fn hash_is_removed() {
        assert_eq!(clean_name("tokio::time::sleep::Sleep::poll::h0123456789abcdef"), "tokio::time::sleep::Sleep::poll");
        assert_eq!(clean_name("my_crate::hash"), "my_crate::hash");
        assert_eq!(clean_name("my_crate::h123"), "my_crate::h123");
    }

    #[test]
    fn internal_frames() {
        for f in [
            "tokio::time::sleep::Sleep::poll_elapsed",
            "<tokio::time::sleep::Sleep as core::future::future::Future>::poll",
            "tokio::runtime::task::core::Core<T,S>::poll::{{closure}}",
            "<F as core::future::future::Future>::poll",
            "<&mut F as core::future::future::Future>::poll",
            "<core::pin::Pin<P> as core::future::future::Future>::poll",
            "<alloc::boxed::Box<F,A> as core::future::future::Future>::poll",
            "std::panicking::try",
            "futures_util::future::future::FutureExt::poll_unpin",
            "tracing::instrument::Instrumented<T>::poll",
            "tokio_util::sync::cancellation_token::WaitForCancellationFuture::poll",
            "taskscope_agent::dump::capture::{{closure}}",
        ] {
            assert!(is_internal(f), "{f} should be internal");
        }
    }

    #[test]
    fn program_frames() {
        for f in [
            "my_crate::handler::{{closure}}",
            "<my_crate::Conn as core::future::future::Future>::poll",
            "<&mut my_crate::Conn as core::future::future::Future>::poll",
            "tokio_postgres::client::Client::query::{{closure}}",
            "main::{{closure}}",
            "0x55d0c0ffee",
            "",
        ] {
            assert!(!is_internal(f), "{f} should not be internal");
        }
    }

    #[test]
    fn short_names_are_classified_by_file() {
        let at = |function: &str, file: &str| frame(Some(function), Some(file.to_owned()), None, None).internal;
        assert!(at(
            "poll_elapsed",
            "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/time/sleep.rs"
        ));
        assert!(at(
            "poll_next",
            "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/futures-util-0.3.34/src/x.rs"
        ));
        assert!(at("call_once", "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/ops/function.rs"));
        assert!(!at(
            "query",
            "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-postgres-0.7.1/src/client.rs"
        ));
        assert!(!at("{async_fn#0}", "src/handler.rs"));
        // A name with a path is classified by the path, not the file.
        assert!(!at("app::handler::{{closure}}", "/rustc/x/library/core/src/future.rs"));
    }

    #[test]
    fn trim_drops_harness_and_capture_machinery() {
        let frames = vec![
            named("tokio::runtime::task::harness::poll_future"),
            named("<tokio::runtime::task::trace::Root<T> as core::future::future::Future>::poll"),
            named("app::serve::{{closure}}"),
            named("<tokio::time::sleep::Sleep as core::future::future::Future>::poll"),
            named("tokio::runtime::task::trace::trace_leaf"),
            named("backtrace::backtrace::trace"),
        ];
        let kept: Vec<String> = trim(frames).into_iter().map(|f| f.function).collect();
        assert_eq!(
            kept,
            ["app::serve::{{closure}}", "<tokio::time::sleep::Sleep as core::future::future::Future>::poll"]
        );
    }

    #[test]
    fn trim_drops_the_safe_captures_own_poll_fn_as_release_builds_name_it() {
        let at = |function: &str, file: &str| frame(Some(function), Some(file.to_owned()), Some(1), None);
        let frames = vec![
            at(
                "poll<app::Ended, taskscope_agent::capture::trace::imp::traced_poll::{closure_env#2}<app::serve::{async_fn_env#0}>>",
                "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/future/poll_fn.rs",
            ),
            at("{closure#2}<app::serve::{async_fn_env#0}>", "/home/me/taskscope/agent/src/capture/trace.rs"),
            at("{async_fn#0}", "/home/me/app/src/main.rs"),
            at("app::capture::trace::helper", "/home/me/app/src/capture/trace.rs"),
        ];
        let kept: Vec<String> = trim(frames).into_iter().map(|f| f.file).collect();
        assert_eq!(kept, ["/home/me/app/src/main.rs", "/home/me/app/src/capture/trace.rs"]);
    }

    #[test]
    fn resolves_and_caches_a_real_address() {
        #[inline(never)]
        fn marker_function() -> u32 {
            std::hint::black_box(7)
        }
        // `resolve` looks up `ip - 1` (a return address points past its call).
        let ip = marker_function as fn() -> u32 as usize + 1;
        let first = symbolize(&[vec![ip]]);
        assert_eq!(first.len(), 1);
        assert!(first[0].iter().any(|f| f.function.ends_with("marker_function")), "{:?}", first[0]);
        let cached = cache().lock().map(|c| c.contains_key(&ip)).unwrap_or(false);
        assert!(cached);
        assert_eq!(symbolize(&[vec![ip]]), first);
    }
}
