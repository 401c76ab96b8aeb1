//! Interned source files of spawn locations: a small id per file, so that a
//! task's slot stores a `u32` instead of a string.
//!
//! Spawn sites are few and fixed by the program's code, so the table stays
//! small. tokio passes `Location::file()`, a `&'static str`, both in its spawn
//! spans and to runtime hooks, so a per-thread cache keyed by the string's
//! address answers repeat spawns without hashing or copying it and without
//! touching the shared table.

use std::collections::HashMap;
use std::sync::Mutex;

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
    list: Vec<std::sync::Arc<str>>,
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
        t.list.push(file.into());
        let id = t.list.len() as u32;
        t.ids.insert(file.to_owned(), id);
        id
    }

    /// All files, index = id - 1 (cheap clones).
    pub(crate) fn all(&self) -> Vec<std::sync::Arc<str>> {
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
        assert_eq!(&*files.all()[a as usize - 1], "src/main.rs");
    }
}
