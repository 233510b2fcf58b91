//! The daemon's use of the allocator: large blocks mapped apart, and free memory given back to
//! the system once a refresh has let go of a whole listing, so that the resident size follows
//! what the agent holds instead of climbing with every whole read.
//!
//! A whole read of a cluster allocates its listing (hundreds of thousands of records at 10,000
//! volumes) while the previous one is still held, then frees the previous one. glibc's
//! allocator keeps what is freed inside its arenas (one per thread that allocated), where the
//! long-lived allocations made in between pin it, and it raises its threshold for mapping a
//! large block apart each time such a block is freed, so that a growing list is soon copied
//! within an arena from one block to a twice larger one. The next read, run on whichever
//! runtime thread, takes fresh pages instead of the freed ones: at 10,000 volumes the resident
//! size grew by about 20 MiB with every whole read though the heap did not
//! (docs/performance.md).

/// Blocks from this size on are mapped apart (grown in place, unmapped when freed), whatever
/// was freed before: glibc's own starting value, kept fixed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Whether [`configure`] ran: only the daemon hands memory back (`simulate` makes thousands of
/// whole reads a simulated year, and its process ends soon).
static CONFIGURED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets the allocator up for the daemon, before its runtime starts (glibc on Linux; elsewhere
/// nothing).
pub fn configure() {
    CONFIGURED.store(true, std::sync::atomic::Ordering::Relaxed);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a tunable of the allocator; it is called before the daemon
    // starts any other thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Hands the allocator's free pages back to the system, in the daemon (glibc on Linux;
/// elsewhere nothing).
pub(super) fn release_free_memory() {
    if !CONFIGURED.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns memory the allocator holds free; it takes the arenas'
    // locks itself and may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
