//! Full function names from the executable's ELF symbol table.
//!
//! With `debug = "line-tables-only"` (a common release setting, and this
//! workspace's) the DWARF names functions without their path: an async fn's
//! body is just `{async_fn#0}`. The `backtrace` crate prefers DWARF names
//! whenever there are any, so a task's own frames would come out anonymous.
//! The symbol table still holds the full mangled name of every function that
//! was not inlined, so the outermost frame at each address is named from it.
//!
//! The executable is mapped read-only once and never unmapped (as the
//! `backtrace` crate does with its debuginfo); the index keeps only addresses
//! and slices of that mapping.

use std::ops::Range;
use std::sync::OnceLock;

/// Function symbols of the main executable, and where it is loaded.
struct Symtab {
    /// Load bias: runtime address minus the address in the file.
    bias: usize,
    /// Runtime address ranges of its loadable segments.
    segments: Vec<Range<usize>>,
    /// `(start, end, mangled name)` in file addresses, sorted by start.
    functions: Vec<(u64, u64, &'static [u8])>,
}

/// The full name of the function containing the return address `ip`, when
/// `ip` lies in the main executable and its symbol table knows it.
pub(super) fn function_name(ip: usize) -> Option<String> {
    static SYMTAB: OnceLock<Option<Symtab>> = OnceLock::new();
    let symtab = SYMTAB.get_or_init(load).as_ref()?;
    // Like `backtrace::resolve`: a return address points past its call.
    let avma = ip.checked_sub(1)?;
    if !symtab.segments.iter().any(|segment| segment.contains(&avma)) {
        return None;
    }
    let svma = (avma - symtab.bias) as u64;
    let index = symtab.functions.partition_point(|&(start, _, _)| start <= svma).checked_sub(1)?;
    let (_, end, name) = symtab.functions[index];
    (svma < end).then(|| format!("{:#}", backtrace::SymbolName::new(name)))
}

fn load() -> Option<Symtab> {
    use object::{Object, ObjectSymbol, SymbolKind};

    let (bias, segments) = main_program()?;
    let data = map_executable()?;
    let file = object::File::parse(data).ok()?;
    let mut functions: Vec<(u64, u64, &'static [u8])> = file
        .symbols()
        .filter(|symbol| symbol.kind() == SymbolKind::Text && symbol.size() > 0)
        .filter_map(|symbol| {
            let start = symbol.address();
            Some((start, start.checked_add(symbol.size())?, symbol.name_bytes().ok()?))
        })
        .collect();
    functions.sort_unstable_by_key(|&(start, _, _)| start);
    (!functions.is_empty()).then_some(Symtab { bias, segments, functions })
}

/// The running executable, mapped read-only for the rest of the process.
fn map_executable() -> Option<&'static [u8]> {
    use std::os::fd::AsRawFd;

    let file = std::fs::File::open("/proc/self/exe").ok()?;
    let len = usize::try_from(file.metadata().ok()?.len()).ok().filter(|&len| len > 0)?;
    // SAFETY: a fresh private read-only mapping of a whole regular file; no
    // other memory is affected. The kernel refuses writes to a running
    // executable (ETXTBSY), so the bytes cannot change under the slice.
    let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, file.as_raw_fd(), 0) };
    if ptr == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: `ptr` is a valid mapping of `len` readable bytes that is never
    // unmapped, so the slice may live for the rest of the process.
    Some(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
}

/// Load bias and segments of the main program (the first object the
/// dynamic loader reports).
fn main_program() -> Option<(usize, Vec<Range<usize>>)> {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        out: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid `info` for the duration of the
        // call, and `out` is the `Option` that `main_program` lends us.
        let (info, out) = unsafe { (&*info, &mut *out.cast::<Option<(usize, Vec<Range<usize>>)>>()) };
        let bias = info.dlpi_addr as usize;
        let headers: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() {
            &[]
        } else {
            // SAFETY: the loader guarantees `dlpi_phnum` headers at `dlpi_phdr`.
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        let segments = headers
            .iter()
            .filter(|header| header.p_type == libc::PT_LOAD)
            .map(|header| {
                let start = bias.wrapping_add(header.p_vaddr as usize);
                start..start.wrapping_add(header.p_memsz as usize)
            })
            .collect();
        *out = Some((bias, segments));
        1 // stop: only the main program
    }
    let mut out: Option<(usize, Vec<Range<usize>>)> = None;
    // SAFETY: `first` matches the callback signature, does not unwind, and
    // only writes through `out`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(first), (&mut out as *mut Option<(usize, Vec<Range<usize>>)>).cast()) };
    out.filter(|(_, segments)| !segments.is_empty())
}

#[cfg(test)]
mod tests {
    #[inline(never)]
    fn named_by_the_symbol_table() -> u32 {
        std::hint::black_box(11)
    }

    #[test]
    fn finds_a_function_of_this_binary() {
        let ip = named_by_the_symbol_table as fn() -> u32 as usize + 1;
        let name = super::function_name(ip).expect("the test binary has a symbol table");
        assert!(name.ends_with("symtab::tests::named_by_the_symbol_table"), "{name}");
        assert_eq!(super::function_name(1), None);
    }
}
