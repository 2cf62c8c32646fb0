//! The process allocator, mimalloc, and how long it keeps freed memory.
//!
//! A large fill stores its body in chunks of half a MiB, each a fresh
//! allocation that mimalloc takes straight from the OS; by default it gives
//! freed memory back after 1 s, so once the memory store evicts, nearly every
//! chunk stored is a chunk's worth of fresh pages for the kernel to fault in
//! and zero. On the 2-core VM of BENCHMARKS.md that was 60 % of a cold
//! 256 MiB fill's samples (`clear_page_erms`), and the fill ran at
//! 220 MiB/s; keeping freed memory for 10 s lets the next chunks reuse it
//! (950 MiB/s), and memory still goes back to the OS once traffic stops.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its place in mimalloc v3's
/// `mi_option_e` (`libmimalloc-sys` names no constant for it).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// The option's documented default, which tells that `PURGE_DELAY` is
/// still the option it was.
const DEFAULT_PURGE_DELAY_MS: std::ffi::c_long = 1_000;
/// How long freed memory stays mapped for reuse.
const KEEP_FREED_MS: std::ffi::c_long = 10_000;

/// Keeps freed memory for reuse for [`KEEP_FREED_MS`], unless the operator
/// set `MIMALLOC_PURGE_DELAY`.
pub(crate) fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: reading and setting an option is allowed at any time; the
    // index is checked against the option's default before it is set.
    unsafe {
        if libmimalloc_sys::mi_option_get(PURGE_DELAY) == DEFAULT_PURGE_DELAY_MS {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, KEEP_FREED_MS);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        super::keep_freed_memory();
        // SAFETY: as above.
        let now = unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY) };
        assert_eq!(now, super::KEEP_FREED_MS);
    }
}
