//! Interned source files of spawn locations: a small id per file, so that a
//! task's slot stores a `u32` instead of a string.
//!
//! Spawn sites are few and fixed by the program's code, so the table stays
//! small. tokio passes `Location::file()`, a `&'static str`, both in its spawn
//! spans and to runtime hooks, so a per-thread cache keyed by the string's
//! address answers repeat spawns without hashing or copying it and without
//! touching the shared table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The process-wide file table (set once by the recorder).
pub(crate) static FILES: std::sync::OnceLock<Files> = std::sync::OnceLock::new();

/// The table of interned files (see the module docs).
pub(crate) struct Files {
    table: Mutex<FileTable>,
}

#[derive(Default)]
struct FileTable {
    ids: HashMap<String, u32>,
    /// Index = id - 1.
    list: FileList,
}

/// The interned files, index = id - 1, as the state owner reads them.
#[derive(Default, Clone)]
pub(crate) struct FileList {
    names: Vec<Arc<str>>,
    /// Whether each file is in tokio's own runtime (see [`in_tokio_runtime`]).
    runtime: Vec<bool>,
}

impl FileList {
    /// The file with id `id`, if any (0 is "unknown").
    pub(crate) fn name(&self, id: u32) -> Option<&Arc<str>> {
        (id as usize).checked_sub(1).and_then(|i| self.names.get(i))
    }

    /// True when file `id` is a source of tokio's runtime.
    pub(crate) fn in_runtime(&self, id: u32) -> bool {
        (id as usize).checked_sub(1).and_then(|i| self.runtime.get(i)).copied().unwrap_or(false)
    }
}

/// True when `file` is a source in tokio's `src/runtime/`
/// (`.../tokio-1.54.1/src/runtime/scheduler/multi_thread/worker.rs`, or
/// `.../tokio/src/runtime/...` for a git or vendored tokio). Tasks spawned
/// there are the runtime's own: a multi-thread runtime runs each worker
/// thread as a blocking task spawned in `worker.rs`, for its whole life.
/// `tokio::fs` and other APIs that spawn on the program's behalf spawn
/// outside `src/runtime/`, so their tasks stay the program's.
pub(crate) fn in_tokio_runtime(file: &str) -> bool {
    let Some((root, _)) = file.split_once("/src/runtime/") else {
        return false;
    };
    let package = root.rsplit('/').next().unwrap_or(root);
    package == "tokio"
        || package.strip_prefix("tokio-").is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
}

const CACHE: usize = 32;

thread_local! {
    static FILE_CACHE: [std::cell::Cell<(usize, usize, u32)>; CACHE] =
        const { [const { std::cell::Cell::new((0, 0, 0)) }; CACHE] };
}

impl Files {
    pub(crate) fn new() -> Self {
        Files { table: Mutex::new(FileTable::default()) }
    }

    /// The id of `file` (never 0).
    #[inline]
    pub(crate) fn intern(&self, file: &str) -> u32 {
        let (ptr, len) = (file.as_ptr() as usize, file.len());
        let index = (ptr >> 3) % CACHE;
        let (p, l, id) = FILE_CACHE.with(|c| c[index].get());
        if p == ptr && l == len && id != 0 {
            return id;
        }
        let id = self.intern_slow(file);
        FILE_CACHE.with(|c| c[index].set((ptr, len, id)));
        id
    }

    fn intern_slow(&self, file: &str) -> u32 {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = t.ids.get(file) {
            return *id;
        }
        t.list.names.push(file.into());
        t.list.runtime.push(in_tokio_runtime(file));
        let id = t.list.names.len() as u32;
        t.ids.insert(file.to_owned(), id);
        id
    }

    /// All files (cheap clones).
    pub(crate) fn all(&self) -> FileList {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).list.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_intern_once() {
        let files = Files::new();
        let a = files.intern("src/main.rs");
        let owned = String::from("src/main.rs");
        assert_eq!(files.intern(&owned), a, "same text, other address: same id");
        assert_ne!(files.intern("src/lib.rs"), a);
        assert_eq!(files.all().name(a).map(|f| &**f), Some("src/main.rs"));
        assert_eq!(files.all().name(0), None, "0 is unknown");
    }

    #[test]
    fn tokio_runtime_files() {
        for runtime in [
            "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/runtime/scheduler/multi_thread/worker.rs",
            "/home/me/.cargo/git/checkouts/tokio-abc/1234567/tokio/src/runtime/blocking/pool.rs",
            "vendor/tokio/src/runtime/scheduler/multi_thread/worker.rs",
        ] {
            assert!(in_tokio_runtime(runtime), "{runtime}");
        }
        for program in [
            "src/main.rs",
            "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/fs/mod.rs",
            "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-util-0.7.16/src/runtime/x.rs",
            "/work/app/src/runtime/pool.rs",
            "/work/tokio-app/src/runtime/pool.rs",
        ] {
            assert!(!in_tokio_runtime(program), "{program}");
        }
        let files = Files::new();
        let worker = files.intern("/x/tokio-1.54.1/src/runtime/scheduler/multi_thread/worker.rs");
        let main = files.intern("src/main.rs");
        let list = files.all();
        assert!(list.in_runtime(worker));
        assert!(!list.in_runtime(main));
        assert!(!list.in_runtime(0));
    }
}
