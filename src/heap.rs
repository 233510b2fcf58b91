//! The binary's global allocator (`main.rs` declares it; the benches that simulate do too):
//! glibc's (the system's) until a what-if run asks for throughput, mimalloc for what is
//! allocated from then on.
//!
//! The two uses pull apart. The daemon's resident size is a target of its own, and its
//! handling of glibc's arenas (`agent::allocator`: large blocks mapped apart, free pages handed
//! back after each whole read) keeps it there; mimalloc, tried in its place, held a third more
//! at 10,000 volumes. `simulate` makes millions of short-lived records (a whole listing of the
//! estate every simulated hour) and ends soon: there glibc's bins were a third of its time at
//! 10,000 volumes, and the same run over 3 days takes 0.68–0.69 of glibc's time with mimalloc
//! (docs/performance.md).
//!
//! Every block goes back to the allocator it came from, whenever the switch is made: a block
//! freed or grown is mimalloc's exactly when it lies in memory mimalloc reserved
//! (`mi_is_in_heap_region`, a look-up in its page map; false for everything before mimalloc's
//! first block), and glibc's otherwise. The switch only chooses where new blocks come from.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where new blocks come from: the system's allocator, or mimalloc once
/// [`favour_throughput`] ran.
pub struct Heap;

/// Whether new blocks come from mimalloc.
static THROUGHPUT: AtomicBool = AtomicBool::new(false);

/// From now on, this process's new blocks come from mimalloc: for a run that allocates and
/// frees far more than it keeps, and whose resident size is not a target (`simulate`).
/// Blocks already made stay the system's until freed. Calling it again changes nothing; in a
/// binary whose global allocator is not [`Heap`] (most test binaries), nothing at all.
pub fn favour_throughput() {
    THROUGHPUT.store(true, Ordering::Relaxed);
}

/// Whether `ptr` is a block of mimalloc's (rather than the system allocator's).
pub fn mimalloc_owns(ptr: *const u8) -> bool {
    // SAFETY: the look-up only reads mimalloc's page map; any address may be asked, and one it
    // never reserved (or asked before mimalloc made anything) answers false.
    unsafe { libmimalloc_sys::mi_is_in_heap_region(ptr.cast::<c_void>()) }
}

// SAFETY: each method hands the block to the allocator that made it (mimalloc's page map tells
// them apart), and both allocators meet `GlobalAlloc`'s contract for the layouts given them:
// mimalloc's aligned calls take the layout's alignment, and `System` is the standard library's.
unsafe impl GlobalAlloc for Heap {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if THROUGHPUT.load(Ordering::Relaxed) {
            libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align()).cast::<u8>()
        } else {
            System.alloc(layout)
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if THROUGHPUT.load(Ordering::Relaxed) {
            libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()).cast::<u8>()
        } else {
            System.alloc_zeroed(layout)
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mimalloc_owns(ptr) {
            libmimalloc_sys::mi_free(ptr.cast::<c_void>());
        } else {
            System.dealloc(ptr, layout);
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A block grows or shrinks within the allocator that made it.
        if mimalloc_owns(ptr) {
            libmimalloc_sys::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align())
                .cast::<u8>()
        } else {
            System.realloc(ptr, layout, new_size)
        }
    }
}
