//! Keeping freed memory for reuse, for programs that train.
//!
//! burn allocates a fresh buffer for every tensor operation. glibc's `malloc` hands each block
//! above its mmap threshold (128 KiB, adapting up to 32 MiB) back to the kernel when it is
//! freed, so the next operation's buffer is a new mapping whose pages the kernel zeroes on
//! first touch: in one profile of a training step, 41 % of the main thread's time went to page
//! faults and `clear_page`. [`retain_freed_memory`] tells `malloc` to keep what it frees.
//! `benches/train_speed.rs` ran 1.09× and 1.47× faster with it in two A/B runs on the same
//! machine (what a page fault costs varies with the kernel's state). The price is that resident
//! memory stays at the run's peak.
//!
//! ```
//! // First thing in `main`, before threads start: the setting is process-wide.
//! let applied = sieve_encoders::allocator::retain_freed_memory();
//! println!("malloc keeps freed memory: {applied}");
//! ```

/// Asks glibc's `malloc` to keep freed memory for reuse instead of returning it to the kernel:
/// no `mmap` for large blocks (`M_MMAP_MAX` 0), no trimming of the heap below 2 GiB of free
/// space at its top (`M_TRIM_THRESHOLD`), and one arena shared by all threads (`M_ARENA_MAX`
/// 1, so that a block freed by a worker thread serves the next allocation of any thread).
///
/// Process-wide, so a library never calls it on its own: a program does, from `main` (the
/// `sieve` binary does for `sieve train`). Returns `false`, changing nothing, where the C
/// library is not glibc.
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets malloc's tuning parameters; any value is accepted or
        // refused with 0.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
                && libc::mallopt(libc::M_ARENA_MAX, 1) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
