//! Gives back the memory of what only ran at start-up, as the kernel frees its `__init` sections
//! after boot.
//!
//! Every page of the binary the process has touched stays in its resident set. Parsing the
//! command line, building the HTTP router, loading the protocol libraries and opening the
//! routes run once, yet their code and read-only data (with what the kernel maps around each
//! fault, 0.6-0.7 MB of the 1.6 MB a RIST route kept) would stay resident for as long as the
//! relay runs.
//! Once the relay is running, [`release`] unmaps the binary's read-only pages: its code and the
//! segment before it (headers, symbol tables, constants, unwind tables). What keeps running is
//! read back in on its next use, a minor fault while the binary is in the page cache, and
//! release builds lay that code out together (`hot-symbols.txt`, made by
//! `scripts/hot-symbols.sh`), so it comes back as a few contiguous pages, not spread over the
//! binary. These pages are private, read-only and backed by the file, so dropping them costs
//! at most a few faults, never correctness.
//!
//! Only the binary's own pages: the shared libraries' are mapped by other processes too, so
//! unmapping them here would lower the figure without freeing anything. The heap's free pages
//! go back to the system as well (`malloc_trim`).
// madvise, malloc_trim and the linker's symbols have no safe wrapper in std.
#![allow(unsafe_code)]

extern "C" {
    /// The ELF header, where the binary's first loaded segment begins (GNU ld, lld).
    static __ehdr_start: u8;
    /// The end of the code (`.text`), defined by the linker (GNU ld, lld).
    static etext: u8;
}

/// Unmaps the binary's read-only pages and trims the heap. Returns how many bytes of the
/// binary it unmapped (0 when it did nothing).
pub fn release() -> usize {
    // Software breakpoints are written into the code's pages: unmapping them would remove a
    // debugger's breakpoints without its knowing.
    if traced() {
        return 0;
    }
    // Only the addresses of the linker's symbols are taken, never their contents.
    let begin = &raw const __ehdr_start as usize;
    let end = &raw const etext as usize;
    let mut released = 0;
    if let Some((start, len)) = whole_pages(begin, end, page_size()) {
        // SAFETY: from the ELF header to the end of the code, the binary's mappings are private,
        // read-only and backed by the file (no relocation writes there; they all land in RELRO
        // and data, after the code). MADV_DONTNEED drops the pages from this process and the
        // next access reads them back from the file.
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if rc == 0 {
            released = len;
        }
    }
    trim_heap();
    released
}

/// The page-aligned range strictly inside `[begin, end)`, if any.
fn whole_pages(begin: usize, end: usize, page: usize) -> Option<(usize, usize)> {
    // Inward: the page after the code also holds what the linker puts behind it (.init, .plt).
    let start = begin.div_ceil(page) * page;
    let stop = end / page * page;
    (stop > start).then(|| (start, stop - start))
}

#[cfg(target_env = "gnu")]
fn trim_heap() {
    // SAFETY: malloc_trim only returns free memory to the system; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(target_env = "gnu"))]
fn trim_heap() {}

fn traced() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| tracer_pid(&s) != 0)
}

/// `TracerPid` from the text of `/proc/self/status` (0 when not traced or not found).
fn tracer_pid(status: &str) -> u32 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a constant of the system.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_pages_strictly_inside_are_released() {
        // The page the code ends in also holds .init and .plt.
        assert_eq!(whole_pages(0x1000, 0x5020, 0x1000), Some((0x1000, 0x4000)));
        assert_eq!(whole_pages(0x1010, 0x5000, 0x1000), Some((0x2000, 0x3000)));
        assert_eq!(whole_pages(0x1010, 0x1ff0, 0x1000), None);
        assert_eq!(whole_pages(0x9000, 0x1000, 0x1000), None);
    }

    #[test]
    fn the_range_is_this_binary_up_to_the_end_of_its_code() {
        let begin = &raw const __ehdr_start as usize;
        let end = &raw const etext as usize;
        let code = release as *const () as usize;
        assert!(begin < code && code < end, "{begin:#x} {code:#x} {end:#x}");
        // The ELF header's magic number: the symbol is where the binary is mapped.
        // SAFETY: the first loaded segment begins with the ELF header, 64 bytes.
        let magic = unsafe { std::slice::from_raw_parts(begin as *const u8, 4) };
        assert_eq!(magic, b"\x7fELF");
    }

    #[test]
    fn a_traced_process_is_recognised() {
        let status = "Name:\tstream-relay\nState:\tS (sleeping)\nTracerPid:\t4242\nUid:\t0\n";
        assert_eq!(tracer_pid(status), 4242);
        assert_eq!(tracer_pid("TracerPid:\t0\n"), 0);
        assert_eq!(tracer_pid("Name:\tx\n"), 0);
    }
}
