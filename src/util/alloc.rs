//! Allocation accounting for INFO memory (`used_memory`, peak, startup).
//!
//! [`Counting`] wraps the real allocator (mimalloc) and keeps, per thread, the
//! net bytes that thread allocated minus the bytes it freed. A thread owns its
//! slot, so updating it is a relaxed load + store (no locked instruction);
//! memory freed on another thread than the one that allocated it simply makes
//! that thread's slot go negative, and the sum over all slots stays exact.
//! INFO sums the slots lazily. Sizes are the allocator's usable sizes (the
//! size class a block really takes, `mi_usable_size`), as Redis counts
//! `zmalloc_size` (jemalloc's usable size): so `used_memory` compares with
//! Redis's like for like, size-class rounding included.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};

/// Threads that get a slot of their own; later threads share `OVERFLOW`.
const SLOTS: usize = 256;

/// One cache line (two on CPUs that prefetch pairs) per slot: no false sharing.
/// `.0` is the thread's exact net bytes; `.1` what it has not yet published
/// to [`APPROX`].
#[repr(align(128))]
struct Slot(AtomicIsize, AtomicIsize);

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot(AtomicIsize::new(0), AtomicIsize::new(0));
static SLOT: [Slot; SLOTS] = [EMPTY; SLOTS];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
/// Shared by threads beyond `SLOTS` (fetch_add: several writers).
static OVERFLOW: AtomicIsize = AtomicIsize::new(0);
/// Set once the wrapper has counted anything: lets INFO tell "not installed" from zero.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// The process's net bytes, published by each thread once its unpublished
/// change reaches [`PUBLISH_BYTES`]: a line that is rarely written, so the
/// maxmemory check before every command reads it instead of summing every
/// slot (one remote cache line per thread) while the process is far from
/// the limit. It lags the exact sum by less than `PUBLISH_BYTES` per thread.
static APPROX: AtomicIsize = AtomicIsize::new(0);
/// 8 KiB: a shared write every ~80 small allocations at most.
pub const PUBLISH_BYTES: isize = 8 << 10;

static PEAK: AtomicUsize = AtomicUsize::new(0);
static STARTUP: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// 1 + this thread's slot index; 0 = not assigned yet; usize::MAX = overflow.
    /// `const` with no destructor: a plain TLS word, safe to use inside the allocator.
    static MY_SLOT: Cell<usize> = const { Cell::new(0) };
}

#[inline(always)]
fn add(delta: isize) {
    let i = MY_SLOT.with(|s| {
        let v = s.get();
        if v != 0 {
            return v;
        }
        let n = NEXT_SLOT.fetch_add(1, Relaxed);
        let v = if n < SLOTS { n + 1 } else { usize::MAX };
        s.set(v);
        if n == 0 {
            ACTIVE.store(1, Relaxed);
        }
        v
    });
    if i <= SLOTS {
        let slot = &SLOT[i - 1];
        let a = &slot.0;
        a.store(a.load(Relaxed).wrapping_add(delta), Relaxed);
        let p = slot.1.load(Relaxed).wrapping_add(delta);
        if p >= PUBLISH_BYTES || p <= -PUBLISH_BYTES {
            APPROX.fetch_add(p, Relaxed);
            slot.1.store(0, Relaxed);
        } else {
            slot.1.store(p, Relaxed);
        }
    } else {
        OVERFLOW.fetch_add(delta, Relaxed);
        APPROX.fetch_add(delta, Relaxed);
    }
}

/// Publishes this thread's unpublished change now: a thread about to sleep
/// (or a shard's cron) calls it, so that threads that stay idle do not keep
/// up to [`PUBLISH_BYTES`] each out of the figure eviction reads.
pub fn publish_pending() {
    let i = MY_SLOT.with(|s| s.get());
    if i == 0 || i > SLOTS {
        return;
    }
    let slot = &SLOT[i - 1];
    let p = slot.1.load(Relaxed);
    if p != 0 {
        APPROX.fetch_add(p, Relaxed);
        slot.1.store(0, Relaxed);
    }
}

/// An allocator that can tell how many bytes a live block really occupies.
pub trait UsableSize {
    /// The usable size of block `p`, allocated with `l` (at least `l.size()`).
    ///
    /// # Safety
    /// `p` must be a live block of this allocator.
    unsafe fn usable_size(&self, p: *mut u8, l: Layout) -> usize;
}

extern "C" {
    /// In every mimalloc build.
    fn mi_usable_size(p: *const std::ffi::c_void) -> usize;
}

impl UsableSize for mimalloc::MiMalloc {
    #[inline]
    unsafe fn usable_size(&self, p: *mut u8, _l: Layout) -> usize {
        mi_usable_size(p as *const std::ffi::c_void)
    }
}

/// The system allocator's rounding is not known: the requested size.
impl UsableSize for std::alloc::System {
    #[inline]
    unsafe fn usable_size(&self, _p: *mut u8, l: Layout) -> usize {
        l.size()
    }
}

/// A `GlobalAlloc` that counts the bytes live through it, then delegates to `A`.
pub struct Counting<A>(pub A);

// SAFETY: every call is forwarded unchanged to the inner allocator; we only
// count, asking the sizes of blocks while they are live.
unsafe impl<A: GlobalAlloc + UsableSize> GlobalAlloc for Counting<A> {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = self.0.alloc(l);
        if !p.is_null() {
            add(self.0.usable_size(p, l) as isize);
        }
        p
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = self.0.alloc_zeroed(l);
        if !p.is_null() {
            add(self.0.usable_size(p, l) as isize);
        }
        p
    }
    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        add(-(self.0.usable_size(p, l) as isize));
        self.0.dealloc(p, l);
    }
    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let old = self.0.usable_size(p, l) as isize;
        let q = self.0.realloc(p, l, new);
        if !q.is_null() {
            let nl = Layout::from_size_align_unchecked(new, l.align());
            add(self.0.usable_size(q, nl) as isize - old);
        }
        q
    }
}

/// Whether the process allocates through [`Counting`] (false in unit tests of the library).
pub fn counting() -> bool {
    ACTIVE.load(Relaxed) != 0
}

/// Bytes currently allocated through [`Counting`], summed over threads.
pub fn used_memory() -> usize {
    let mut sum: isize = OVERFLOW.load(Relaxed);
    let n = NEXT_SLOT.load(Relaxed).min(SLOTS);
    for s in &SLOT[..n] {
        sum = sum.wrapping_add(s.0.load(Relaxed));
    }
    sum.max(0) as usize
}

/// Whether `used_memory` exceeds `limit`, as exactly as [`used_memory`] but
/// usually for two loads of lines this thread owns or rarely sees written:
/// the published figure plus this thread's own unpublished change is within
/// `PUBLISH_BYTES` of the exact sum for every *other* thread, so only when
/// it falls in that band are the slots summed. The command path's maxmemory
/// check: eviction that trusted the published figure alone let the process
/// run up to `PUBLISH_BYTES` per thread (tens of KiB) over the budget.
#[inline]
pub fn used_memory_exceeds(limit: usize) -> bool {
    let mine = MY_SLOT.with(|s| s.get());
    let own = if mine != 0 && mine <= SLOTS { SLOT[mine - 1].1.load(Relaxed) } else { 0 };
    let near = APPROX.load(Relaxed).wrapping_add(own);
    let others = NEXT_SLOT.load(Relaxed).min(SLOTS).saturating_sub(1) as isize * PUBLISH_BYTES;
    if near > limit as isize + others {
        return true;
    }
    if near < limit as isize - others {
        return false;
    }
    used_memory() > limit
}

/// The exact net bytes this thread allocated minus those it freed: the
/// difference of two readings is what code in between freed on this thread
/// (eviction counts what a deletion released with it, as Redis does with
/// `zmalloc_used_memory` around dbSyncDelete).
#[inline]
pub fn thread_net() -> isize {
    let v = MY_SLOT.with(|s| s.get());
    if v == 0 || v > SLOTS {
        return 0;
    }
    SLOT[v - 1].0.load(Relaxed)
}

/// Reads `used_memory` and raises the peak: called by INFO and by shard 0's cron every 100 ms,
/// so the peak is the highest value sampled, as Redis's `stat_peak_memory`.
pub fn sample() -> usize {
    let u = used_memory();
    PEAK.fetch_max(u, Relaxed);
    u
}

pub fn peak() -> usize {
    PEAK.load(Relaxed)
}

/// Records `used_memory_startup` (Redis: `initial_memory_usage`, after initServer).
pub fn record_startup() {
    STARTUP.store(sample(), Relaxed);
}

pub fn startup() -> usize {
    STARTUP.load(Relaxed)
}

extern "C" {
    /// mimalloc's MI_MALLOC_VERSION; in every mimalloc build.
    fn mi_version() -> std::os::raw::c_int;
}

/// MI_MALLOC_VERSION is major + 2 digits minor + 2 digits patch (30302 = 3.3.2)
/// since mimalloc 2.2/3.0, one digit each before (186 = 1.8.6).
fn version_string(v: i32) -> String {
    if v >= 10000 {
        format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100)
    } else {
        format!("{}.{}.{}", v / 100, (v / 10) % 10, v % 10)
    }
}

/// `mimalloc-<major>.<minor>.<patch>` as INFO's `mem_allocator`.
pub fn allocator_name() -> String {
    // Reference the crate so the mimalloc library is linked wherever this module is.
    let _ = std::mem::size_of::<mimalloc::MiMalloc>();
    // SAFETY: mi_version takes no arguments and has no preconditions.
    let v = unsafe { mi_version() };
    format!("mimalloc-{}", version_string(v))
}

/// Resident set size of the process, from /proc/self/statm.
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mimalloc_version_format() {
        assert_eq!(version_string(30302), "3.3.2");
        assert_eq!(version_string(186), "1.8.6");
    }

    /// The counters are process-wide: tests that read them run one at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn counts_mimalloc_size_classes_not_requested_sizes() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let a = Counting(mimalloc::MiMalloc);
        let l = Layout::from_size_align(100, 8).unwrap();
        let before = used_memory();
        // SAFETY: layouts match between alloc, realloc and dealloc.
        let p = unsafe { a.alloc(l) };
        let counted = used_memory() - before;
        assert!(counted > 100 && counted == unsafe { mi_usable_size(p as *const _) }, "{counted}");
        let p = unsafe { a.realloc(p, l, 5000) };
        assert!(used_memory() - before >= 5000);
        unsafe { a.dealloc(p, Layout::from_size_align(5000, 8).unwrap()) };
        assert_eq!(used_memory(), before);
    }

    #[test]
    fn counts_alloc_realloc_free_across_threads() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let a = Counting(std::alloc::System);
        let l = Layout::from_size_align(1000, 8).unwrap();
        let before = used_memory();
        // SAFETY: layouts match between alloc, realloc and dealloc.
        let p = unsafe { a.alloc(l) };
        assert_eq!(used_memory() - before, 1000);
        let p = unsafe { a.realloc(p, l, 3000) } as usize;
        assert_eq!(used_memory() - before, 3000);
        // Freed on another thread: that thread's slot goes negative, the sum is exact.
        std::thread::spawn(move || unsafe { a.dealloc(p as *mut u8, Layout::from_size_align(3000, 8).unwrap()) })
            .join()
            .unwrap();
        assert_eq!(used_memory(), before);
        assert!(counting());
    }
}
