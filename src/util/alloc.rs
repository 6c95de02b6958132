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

/// A vector of `n` zero words whose pages are faulted in as they are first
/// written, like a fresh `mmap`: `vec![0; n]` through mimalloc memsets a
/// block that reuses freed memory, faulting in every page at once (a key
/// table's 128 MiB slot array took 350 ms so, on a VM whose fresh memory
/// costs ~3 ms/MiB).
pub fn zeroed_words(n: usize) -> Vec<u64> {
    // SAFETY: zero is a u64.
    unsafe { zeroed_vec(n) }
}

/// `n` zeroed `T`s, faulted in lazily when big: the block is allocated
/// uninitialised and its whole pages given back with `MADV_DONTNEED`,
/// which makes a private anonymous mapping read zeros again; the partial
/// pages at the ends are zeroed by hand, and if the kernel refuses the
/// advice, everything is.
///
/// # Safety
/// All-zero bytes must be a valid `T` (an integer, `None` of an
/// `Option<Box<_>>`).
pub unsafe fn zeroed_vec<T>(n: usize) -> Vec<T> {
    const PAGE: usize = 4096;
    const BIG: usize = 1 << 20;
    let bytes = n * std::mem::size_of::<T>();
    let mut v: Vec<T> = Vec::with_capacity(n);
    let p = v.as_mut_ptr() as usize;
    let (a, b) = ((p + PAGE - 1) & !(PAGE - 1), (p + bytes) & !(PAGE - 1));
    // SAFETY: [p, p + bytes) is the vector's own capacity; the advice only
    // applies to whole pages inside it, which nothing else uses.
    unsafe {
        if bytes >= BIG && b > a && libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) == 0 {
            std::ptr::write_bytes(p as *mut u8, 0, a - p);
            std::ptr::write_bytes(b as *mut u8, 0, p + bytes - b);
        } else {
            std::ptr::write_bytes(p as *mut u8, 0, bytes);
        }
        v.set_len(n);
    }
    v
}

/// Asks for transparent huge pages (`huge`) under the whole 2 MiB pages of
/// a block, or for 4 KiB pages under it: a block that will be faulted in at
/// random places wants small ones (a range reused from a block advised for
/// huge pages keeps the advice, and each 2 MiB fault then zeroes 2 MiB).
pub fn advise_pages<T>(v: &[T], huge: bool) {
    let (align, advice) = if huge {
        (2 << 20, libc::MADV_HUGEPAGE)
    } else {
        (4096, libc::MADV_NOHUGEPAGE)
    };
    let start = (v.as_ptr() as usize + align - 1) & !(align - 1);
    let end = (v.as_ptr() as usize + std::mem::size_of_val(v)) & !(align - 1);
    if end > start {
        // SAFETY: madvise only advises on pages of this live allocation.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, advice) };
    }
}

/// The next array of a growing hash table, faulted in ahead of its use.
/// A resize's new array is written at random places by the inserts that
/// follow, so within a few hundred of them every page of it is faulted in:
/// for a 128 MiB array 365 ms in one 10K-SET batch here (the kernel zeroes
/// fresh memory at ~3 ms/MiB on this VM). Instead the array is allocated
/// (zero pages, not backed) once the table reaches 15/16 of the size that
/// grows it, and each insert up to 31/32 writes zeros to its share of the
/// pages, so the memory comes in evenly over 1/32 of that size in inserts;
/// the resize then starts on it. The band is narrow because a table that
/// stays in it keeps the array (counted in `used_memory`).
pub struct Prefault<T> {
    next: Vec<T>,
    touched: usize,
    from: usize,
}

impl<T> Default for Prefault<T> {
    fn default() -> Self {
        Prefault {
            next: Vec::new(),
            touched: 0,
            from: 0,
        }
    }
}

impl<T> Prefault<T> {
    /// An insert into a table of `len` entries that grows to `n` slots at
    /// `grow_at` entries.
    ///
    /// # Safety
    /// All-zero bytes must be a valid `T` (see [`zeroed_vec`]).
    pub unsafe fn step(&mut self, len: usize, grow_at: usize, n: usize) {
        if len * 16 < grow_at * 15 {
            return;
        }
        if self.next.len() != n {
            // SAFETY: the caller's contract.
            self.next = unsafe { zeroed_vec(n) };
            advise_pages(&self.next, false);
            self.touched = 0;
            self.from = len;
            return;
        }
        let words = (4096 / std::mem::size_of::<T>().max(1)).max(1);
        let pages = n.div_ceil(words);
        if self.touched >= pages {
            return;
        }
        let span = (grow_at * 31 / 32).saturating_sub(self.from).max(1);
        let done = len.saturating_sub(self.from) + 1;
        let target = ((pages as u128 * done as u128 / span as u128) as usize).min(pages);
        let p = self.next.as_mut_ptr() as *mut u8;
        while self.touched < target {
            // SAFETY: in bounds; writing the zero byte it holds faults the page in.
            unsafe { std::ptr::write_volatile(p.add(self.touched * words * std::mem::size_of::<T>()), 0) };
            self.touched += 1;
        }
    }

    /// The array if it has `n` slots (all zeros), else nothing (and it is dropped).
    pub fn take(&mut self, n: usize) -> Option<Vec<T>> {
        let v = std::mem::take(&mut self.next);
        (v.len() == n && n > 0).then_some(v)
    }

    /// Drops the array when the table is back under 3/4 of the size that grows it.
    pub fn shrunk(&mut self, len: usize, grow_at: usize) {
        if !self.next.is_empty() && len * 4 < grow_at * 3 {
            self.next = Vec::new();
        }
    }

    pub fn clear(&mut self) {
        self.next = Vec::new();
    }

    /// Bytes allocated for it (counted as table overhead).
    pub fn bytes(&self) -> usize {
        self.next.capacity() * std::mem::size_of::<T>()
    }

    /// Pages faulted in so far (tests).
    pub fn touched(&self) -> usize {
        self.touched
    }

    /// The array as it stands (tests).
    pub fn array(&self) -> &[T] {
        &self.next
    }
}

#[cfg(test)]
mod tests {
    /// Reused dirty memory comes back zeroed, big (advised away) or small
    /// (written), whatever the block's alignment.
    #[test]
    fn zeroed_vectors_are_zero_even_over_reused_memory() {
        for n in [10usize, 1000, (1 << 17) + 3, 3 << 18] {
            for _ in 0..3 {
                let dirty = vec![u64::MAX; n];
                drop(std::hint::black_box(dirty));
                let v = zeroed_words(n);
                assert_eq!(v.len(), n);
                assert!(v.iter().all(|w| *w == 0), "n={n}");
            }
        }
    }

    /// The prefaulted array appears at 15/16 of the growth load, is all
    /// faulted in by 31/32, stays zero, and is handed over at its size only.
    #[test]
    fn prefault_covers_the_array_before_the_growth_load() {
        let mut p: Prefault<u64> = Prefault::default();
        let (grow_at, n) = (100_000usize, 262_144usize);
        for len in 0..grow_at {
            // SAFETY: zero is a u64.
            unsafe { p.step(len, grow_at, n) };
            if len * 16 < grow_at * 15 {
                assert!(p.array().is_empty());
            }
        }
        assert_eq!(p.touched(), n * 8 / 4096);
        assert!(p.array().iter().all(|w| *w == 0));
        assert!(p.take(n / 2).is_none(), "the wrong size is dropped");
        for len in grow_at * 15 / 16..grow_at {
            // SAFETY: zero is a u64.
            unsafe { p.step(len, grow_at, n) };
        }
        assert_eq!(p.take(n).map(|v| v.len()), Some(n));
    }

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
