//! A global allocator that counts: allocation calls (`alloc`, `alloc_zeroed`
//! and `realloc`, each a trip to the allocator), bytes requested, and bytes
//! live. Install it with
//! `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.
//!
//! Counting is on from the start; [`enable`] turns it off around timed code,
//! where the atomic counters would cost each allocation a few nanoseconds.
//! `live` is only meaningful over a stretch that counting covered whole.
#![allow(dead_code)] // each bench uses its own subset

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Counts every allocation of the process, then hands it to the system allocator.
pub struct CountingAlloc;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns counting on or off.
pub fn enable(on: bool) {
    ENABLED.store(on, Relaxed);
}

#[inline]
fn on() -> bool {
    ENABLED.load(Relaxed)
}

// SAFETY: every call is forwarded unchanged to `System`; only counters are added.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if on() {
            ALLOCS.fetch_add(1, Relaxed);
            BYTES.fetch_add(layout.size() as u64, Relaxed);
            LIVE.fetch_add(layout.size(), Relaxed);
        }
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if on() {
            ALLOCS.fetch_add(1, Relaxed);
            BYTES.fetch_add(layout.size() as u64, Relaxed);
            LIVE.fetch_add(layout.size(), Relaxed);
        }
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if on() {
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if on() {
            REALLOCS.fetch_add(1, Relaxed);
            BYTES.fetch_add(new_size.saturating_sub(layout.size()) as u64, Relaxed);
            LIVE.fetch_sub(layout.size(), Relaxed);
            LIVE.fetch_add(new_size, Relaxed);
        }
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// `alloc` and `alloc_zeroed` calls.
    pub allocs: u64,
    /// `realloc` calls (a `Vec` growing in place or moving).
    pub reallocs: u64,
    /// Bytes requested (for a `realloc`, only the growth).
    pub bytes: u64,
    /// Bytes allocated and not yet freed.
    pub live: usize,
}

impl Counts {
    /// Allocator calls that may hand out new memory: allocs plus reallocs.
    pub fn calls(&self) -> u64 {
        self.allocs + self.reallocs
    }

    /// What happened between `earlier` and `self` (`live` is the change).
    pub fn since(&self, earlier: Counts) -> Counts {
        Counts {
            allocs: self.allocs - earlier.allocs,
            reallocs: self.reallocs - earlier.reallocs,
            bytes: self.bytes - earlier.bytes,
            live: self.live.wrapping_sub(earlier.live),
        }
    }
}

/// The counters now.
pub fn counts() -> Counts {
    Counts {
        allocs: ALLOCS.load(Relaxed),
        reallocs: REALLOCS.load(Relaxed),
        bytes: BYTES.load(Relaxed),
        live: LIVE.load(Relaxed),
    }
}
