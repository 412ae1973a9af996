//! Huge-page storage for the store's large arrays.
//!
//! **Why.** A lookup for a random brand and number reads four or five cache
//! lines scattered over the whole store (~230 MB at 100 M tuples): the set
//! header, its bucket table, a leaf line, the block's data, sometimes a RET
//! word. With ordinary 4 KiB pages each of those reads also misses the TLB
//! (the second-level TLB covers ~12 MB), and on a virtual machine a TLB miss
//! is a two-dimensional page walk that costs about as much as the cache miss
//! itself. Transparent huge pages (2 MiB) cover the whole store with ~120 TLB
//! entries. The kernel only backs memory with them when it is 2 MiB-aligned
//! and, in the usual `madvise` THP mode, advised `MADV_HUGEPAGE`; the many
//! small `Vec`s malloc hands out are neither.
//!
//! Allocators that can use huge pages were measured first. mimalloc (v2 and
//! v3) as the global allocator: the store did land on huge pages, but the
//! process kept freed memory resident (5.2 bytes/tuple right after loading
//! the file: the 250 MB read buffer stays until a delayed purge), or, purging
//! at once, the purges split the huge pages (half the store on them) and
//! fragmentation between the sets and the parser's temporaries cost 2.6–2.7
//! bytes/tuple against 2.29. glibc's `glibc.malloc.hugetlb=1` tunable put
//! ~70 % of the store on huge pages at no memory cost, but it is read from
//! the environment at process start only. Hence a store-owned arena.
//!
//! **How.** [`Frozen<T>`] is an immutable array that lives either in its own
//! heap allocation (while a set is being built, or after a sync compaction
//! rebuilt it) or in an arena: one anonymous mapping, 2 MiB-aligned and
//! advised `MADV_HUGEPAGE` (a [`Region`]). Loading a snapshot file parses
//! every array straight into one arena ([`build_in_arena`]: nothing is
//! copied twice, no heap copy is left to free); a snapshot built from
//! exports is moved into one afterwards (`Snapshot::pack`, via [`pack`]).
//! Resident memory is the arena rounded up to 2 MiB. An array shared by two
//! sets (an ARAMA set described against MESAJ) is placed once and stays
//! shared. Sets rebuilt later live on the heap until the store handle packs
//! the next version again (see `Snapshot::arena_usage`,
//! [`ArenaUsage::wants_repack`]). Stores under [`MIN_PACK_BYTES`] stay on the
//! heap.
//!
//! Setting `IYS_GATE_HUGE_PAGES=0` in the environment keeps the arena but
//! leaves out `MADV_HUGEPAGE` (for comparison, or on a host where THP
//! misbehaves); `IYS_GATE_HUGE_PAGES=off` also skips the arena.

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use rustc_hash::FxHashMap;

/// Transparent huge page size on x86-64 and most arm64 kernels.
pub const HUGE_PAGE: usize = 2 << 20;

/// Stores smaller than this are not packed: their arrays fit the TLB anyway,
/// and an arena costs at least one 2 MiB page of resident memory.
pub const MIN_PACK_BYTES: usize = 8 << 20;

/// What `IYS_GATE_HUGE_PAGES` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HugePages {
    /// Pack into an arena advised `MADV_HUGEPAGE` (the default).
    On,
    /// Pack into an arena of ordinary pages.
    NoAdvice,
    /// Keep every array on the heap.
    Off,
}

/// The setting from `IYS_GATE_HUGE_PAGES` (read once): `0`/`no` → no
/// advice, `off` → no arena, anything else or unset → on.
pub fn huge_pages() -> HugePages {
    static SETTING: OnceLock<HugePages> = OnceLock::new();
    *SETTING.get_or_init(|| {
        match std::env::var("IYS_GATE_HUGE_PAGES")
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "0" | "no" | "false" => HugePages::NoAdvice,
            "off" => HugePages::Off,
            _ => HugePages::On,
        }
    })
}

/// Memory that [`Frozen`] arrays point into: an arena (one anonymous,
/// 2 MiB-aligned mapping holding many arrays, written only while it is
/// filled, then read-only; unmapped when its last array is dropped) or one
/// heap array's own buffer. Every array holds an `Arc` of its region, so an
/// array costs one pointer for its owner whichever it is.
pub struct Region {
    base: NonNull<u8>,
    /// Bytes mapped; an arena's shrinks once, when `build_in_arena` unmaps
    /// what it reserved but did not use.
    capacity: AtomicUsize,
    kind: Kind,
}

enum Kind {
    /// A mapping owned by the region.
    Arena { advised: bool },
    /// A heap array (a boxed `Vec<T>`), kept only to be freed with the region.
    Heap(#[allow(dead_code)] Box<dyn std::any::Any + Send + Sync>),
}

// SAFETY: the memory is plain data owned by the region; once arrays are
// handed out it is only read.
unsafe impl Send for Region {}
// SAFETY: as above; shared access is read-only.
unsafe impl Sync for Region {}

impl Region {
    /// An arena of at least `bytes` bytes, rounded up to whole huge pages
    /// and starting on a 2 MiB boundary (so every 2 MiB of it can be one
    /// huge page), advised `MADV_HUGEPAGE` if `advise`. `None` when the OS
    /// refuses.
    #[cfg(unix)]
    fn arena(bytes: usize, advise: bool) -> Option<Region> {
        let capacity = bytes.max(1).checked_next_multiple_of(HUGE_PAGE)?;
        // Over-map by one huge page, then cut the unaligned head and tail off.
        let map_len = capacity.checked_add(HUGE_PAGE)?;
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let start = (p as usize).next_multiple_of(HUGE_PAGE);
        let head = start - p as usize;
        let tail = map_len - head - capacity;
        // SAFETY: both ranges lie inside the mapping just made and outside
        // the part kept.
        unsafe {
            if head > 0 {
                libc::munmap(p, head);
            }
            if tail > 0 {
                libc::munmap((start + capacity) as *mut libc::c_void, tail);
            }
        }
        let advised = advise && advise_huge(start as *mut libc::c_void, capacity);
        Some(Region {
            base: NonNull::new(start as *mut u8)?,
            capacity: AtomicUsize::new(capacity),
            kind: Kind::Arena { advised },
        })
    }

    #[cfg(not(unix))]
    fn arena(_bytes: usize, _advise: bool) -> Option<Region> {
        None
    }

    /// Whether this is an arena (not one heap array).
    pub fn is_arena(&self) -> bool {
        matches!(self.kind, Kind::Arena { .. })
    }

    /// Bytes mapped (whole huge pages) or held.
    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    /// Whether the arena was advised `MADV_HUGEPAGE`.
    pub fn advised(&self) -> bool {
        matches!(self.kind, Kind::Arena { advised: true })
    }

    /// Unmap an arena's whole huge pages past its first `used` bytes (no
    /// array is there).
    fn trim(&self, used: usize) {
        let keep = used.max(1).next_multiple_of(HUGE_PAGE);
        let capacity = self.capacity();
        if self.is_arena() && keep < capacity {
            #[cfg(unix)]
            // SAFETY: `keep..capacity` is inside the mapping, page-aligned,
            // and holds no array (all lie below `used`).
            unsafe {
                libc::munmap(self.base.as_ptr().add(keep).cast(), capacity - keep);
            }
            self.capacity.store(keep, Ordering::Relaxed);
        }
    }
}

/// Alignment of an array of `T` in an arena: its own (index lines are
/// 64-byte aligned by their type; bytes need none), so little is lost
/// between arrays.
fn align<T>() -> usize {
    std::mem::align_of::<T>()
}

/// Copy `src` into the arena `region` at the first suitably aligned offset
/// at or after `at` (where no array has been handed out yet); the array and
/// where it ends, or `None` if it does not fit.
fn copy_in<T: Pod>(region: &Arc<Region>, at: usize, src: &[T]) -> Option<(Frozen<T>, usize)> {
    let off = at.next_multiple_of(align::<T>());
    let end = off.checked_add(std::mem::size_of_val(src))?;
    if !region.is_arena() || end > region.capacity() {
        return None;
    }
    // SAFETY: `off..end` is inside the mapping (checked above) and, by the
    // caller, not part of any array handed out, so nothing reads it during
    // the copy; `src` is a live array elsewhere.
    unsafe {
        std::ptr::copy_nonoverlapping(
            src.as_ptr().cast::<u8>(),
            region.base.as_ptr().add(off),
            std::mem::size_of_val(src),
        );
    }
    Some((view(region, off, src.len())?, end))
}

/// The `len` elements at `off` of the arena `region`, which an earlier
/// `copy_in` wrote.
fn view<T: Pod>(region: &Arc<Region>, off: usize, len: usize) -> Option<Frozen<T>> {
    let end = off.checked_add(len.checked_mul(std::mem::size_of::<T>())?)?;
    if !region.is_arena()
        || end > region.capacity()
        || !off.is_multiple_of(std::mem::align_of::<T>())
    {
        return None;
    }
    // SAFETY: `off..end` is inside the mapping and aligned for `T` (the base
    // is 2 MiB-aligned), and was initialised by `copy_in`.
    let ptr = unsafe { NonNull::new_unchecked(region.base.as_ptr().add(off).cast::<T>()) };
    Some(Frozen {
        ptr,
        len,
        home: Some(region.clone()),
    })
}

#[cfg(target_os = "linux")]
fn advise_huge(p: *mut libc::c_void, len: usize) -> bool {
    // SAFETY: advice on a mapping this process owns; it changes no contents.
    unsafe { libc::madvise(p, len, libc::MADV_HUGEPAGE) == 0 }
}

#[cfg(all(unix, not(target_os = "linux")))]
fn advise_huge(_p: *mut libc::c_void, _len: usize) -> bool {
    false
}

impl Drop for Region {
    fn drop(&mut self) {
        #[cfg(unix)]
        if self.is_arena() {
            // SAFETY: the mapping was made by `Region::arena` with this
            // length (or trimmed to it) and no array points into it any more
            // (each holds an `Arc` of the region).
            unsafe {
                libc::munmap(self.base.as_ptr().cast(), self.capacity());
            }
        }
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("arena", &self.is_arena())
            .field("capacity", &self.capacity())
            .field("advised", &self.advised())
            .finish()
    }
}

/// Plain-data element types an arena may hold: `Copy`, no pointers, no drop.
pub trait Pod: Copy + Send + Sync + 'static {}
impl Pod for u8 {}
impl Pod for u32 {}
impl Pod for u64 {}
impl Pod for (u64, u8) {}

/// An immutable array on the heap or in an arena. Cloning shares it.
pub struct Frozen<T: Pod> {
    /// First element (dangling when empty); valid for `len` reads while
    /// `home` is held.
    ptr: NonNull<T>,
    len: usize,
    /// `None` only when empty.
    home: Option<Arc<Region>>,
    // (The elements are owned through `home`.)
}

// SAFETY: the elements are `Send + Sync` plain data and never mutated; the
// home is an `Arc`.
unsafe impl<T: Pod> Send for Frozen<T> {}
// SAFETY: as above.
unsafe impl<T: Pod> Sync for Frozen<T> {}

impl<T: Pod> Frozen<T> {
    /// The array: in the arena `build_in_arena` set up on this thread if
    /// there is one and it fits, else on the heap.
    pub fn from_vec(mut v: Vec<T>) -> Frozen<T> {
        if v.is_empty() {
            return Frozen::default();
        }
        let placed = TARGET.with_borrow_mut(|target| {
            let bump = target.as_mut()?;
            let (array, end) = copy_in(&bump.arena, bump.used, &v)?;
            bump.used = end;
            Some(array)
        });
        if let Some(array) = placed {
            return array;
        }
        v.shrink_to_fit();
        let len = v.len();
        // Moving the `Vec` into the box leaves its buffer where it is.
        let ptr = NonNull::from(&mut v[0]);
        let home = Region {
            base: ptr.cast(),
            capacity: AtomicUsize::new(std::mem::size_of_val(v.as_slice())),
            kind: Kind::Heap(Box::new(v)),
        };
        Frozen {
            ptr,
            len,
            home: Some(Arc::new(home)),
        }
    }

    /// The elements.
    #[inline(always)]
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `ptr` points at `len` initialised elements (or dangles with
        // `len == 0`) kept alive by `home`, and nothing writes them.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Bytes the elements take.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(self.as_slice())
    }

    /// The arena holding the array, if it is in one.
    pub fn arena(&self) -> Option<&Arc<Region>> {
        self.home.as_ref().filter(|r| r.is_arena())
    }

    /// Whether both are the same array (not merely equal elements).
    pub fn same(&self, other: &Frozen<T>) -> bool {
        self.ptr == other.ptr && self.len == other.len
    }
}

impl<T: Pod> Default for Frozen<T> {
    fn default() -> Self {
        Frozen {
            ptr: NonNull::dangling(),
            len: 0,
            home: None,
        }
    }
}

impl<T: Pod> Clone for Frozen<T> {
    fn clone(&self) -> Self {
        Frozen {
            ptr: self.ptr,
            len: self.len,
            home: self.home.clone(),
        }
    }
}

impl<T: Pod> Deref for Frozen<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Pod> fmt::Debug for Frozen<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frozen")
            .field("len", &self.len)
            .field("in_arena", &self.arena().is_some())
            .finish()
    }
}

/// Where a store's array bytes live (see `Snapshot::arena_usage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArenaUsage {
    /// Array bytes on the heap.
    pub heap: usize,
    /// Array bytes in arenas (each array counted once).
    pub in_arenas: usize,
    /// Bytes mapped by the arenas those arrays are in.
    pub arena_capacity: usize,
}

impl ArenaUsage {
    /// Whether packing again would pay: more than an eighth of the arrays
    /// are on the heap (rebuilt since the last pack), or more than a quarter
    /// of the arenas' memory holds arrays nothing uses any more.
    pub fn wants_repack(&self) -> bool {
        let total = self.heap + self.in_arenas;
        total >= MIN_PACK_BYTES
            && (self.heap * 8 > total
                || self.arena_capacity.saturating_sub(self.in_arenas) * 4 > self.arena_capacity)
    }
}

/// Moves arrays into an arena. Used twice by `pack`: first only to add up
/// the bytes needed (nothing changes), then to copy.
pub struct Packer {
    arena: Option<Arc<Region>>,
    used: usize,
    /// Arrays already placed, by address and length: an array shared by two
    /// sets is copied once and stays shared. (No array is allocated while
    /// packing, so an address freed meanwhile cannot come back as another.)
    placed: FxHashMap<(usize, usize), usize>,
    usage: ArenaUsage,
    arenas: FxHashMap<usize, usize>,
}

impl Packer {
    fn measuring() -> Packer {
        Packer {
            arena: None,
            used: 0,
            placed: FxHashMap::default(),
            usage: ArenaUsage::default(),
            arenas: FxHashMap::default(),
        }
    }

    /// Replace `a` by its copy in the arena (while measuring: count it and
    /// leave it). The heap copy is freed when nothing else holds it.
    pub fn place<T: Pod>(&mut self, a: &mut Frozen<T>) {
        if a.len == 0 {
            return;
        }
        let key = (a.ptr.as_ptr() as usize, a.bytes());
        if let Some(&off) = self.placed.get(&key) {
            // Shared with an array placed before: point at the same copy.
            if let Some(array) = self
                .arena
                .as_ref()
                .and_then(|arena| view(arena, off, a.len))
            {
                *a = array;
            }
            return;
        }
        let bytes = a.bytes();
        match a.arena() {
            Some(arena) => {
                self.usage.in_arenas += bytes;
                self.arenas
                    .insert(Arc::as_ptr(arena) as usize, arena.capacity());
            }
            None => self.usage.heap += bytes,
        }
        let off = self.used.next_multiple_of(align::<T>());
        self.used = off + bytes;
        self.placed.insert(key, off);
        if let Some(arena) = &self.arena {
            // The measuring pass sized the arena for every array, so this
            // fits; were it not to, the array would stay on the heap.
            if let Some((array, _)) = copy_in(arena, off, a.as_slice()) {
                *a = array;
            }
        }
    }
}

thread_local! {
    /// Where [`Frozen::from_vec`] puts arrays on this thread (see
    /// [`build_in_arena`]).
    static TARGET: RefCell<Option<Bump>> = const { RefCell::new(None) };
}

/// An arena being filled front to back.
struct Bump {
    arena: Arc<Region>,
    used: usize,
}

/// Puts back the previous target when dropped (also on a panic).
struct Restore(Option<Bump>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        if let Some(bump) = TARGET.replace(previous) {
            bump.arena.trim(bump.used);
        }
    }
}

/// Run `f` with every array [`Frozen::from_vec`] makes on this thread
/// placed straight into one new arena (unless the arena is switched off or
/// the mapping fails: then on the heap). Nothing is copied twice and no heap
/// copy is freed afterwards, so unlike `pack` this leaves no small blocks
/// pinning heap pages (loading a snapshot file: 2.30 against 2.38 bytes per
/// tuple resident). `reserve` bytes of address space are mapped; only what
/// is written becomes resident, and the whole huge pages past the last array
/// are unmapped when `f` returns. Arrays that do not fit go on the heap.
pub fn build_in_arena<R>(reserve: usize, f: impl FnOnce() -> R) -> R {
    let setting = huge_pages();
    let arena = (setting != HugePages::Off)
        .then(|| Region::arena(reserve, setting == HugePages::On))
        .flatten();
    let Some(arena) = arena else {
        return f();
    };
    let _restore = Restore(TARGET.replace(Some(Bump {
        arena: Arc::new(arena),
        used: 0,
    })));
    f()
}

/// Run `f` with its arrays on the heap even inside [`build_in_arena`]: for
/// temporaries, which would leave dead bytes in the arena.
pub fn on_heap<R>(f: impl FnOnce() -> R) -> R {
    let _restore = Restore(TARGET.take());
    f()
}

/// Where the arrays `survey` reports live (nothing is copied).
pub fn usage<S: ?Sized>(src: &S, survey: impl Fn(&S, &mut Packer)) -> ArenaUsage {
    let mut m = Packer::measuring();
    survey(src, &mut m);
    let mut usage = m.usage;
    usage.arena_capacity = m.arenas.values().sum();
    usage
}

/// Move every array of `target` into one new arena: `survey` shows the
/// arrays to a measuring [`Packer`] without changing anything, then `place`
/// hands each one to a copying `Packer` (in place: nothing but the arrays
/// is reallocated, so no small block allocated now is left pinning heap
/// pages once the heap copies are freed). Returns false, changing nothing,
/// when the arrays total less than `min_bytes`, the arena is switched off,
/// or the mapping fails.
pub fn pack<S: ?Sized>(
    target: &mut S,
    min_bytes: usize,
    survey: impl Fn(&S, &mut Packer),
    place: impl FnOnce(&mut S, &mut Packer),
) -> bool {
    let setting = huge_pages();
    if setting == HugePages::Off {
        return false;
    }
    let mut m = Packer::measuring();
    survey(target, &mut m);
    if m.used < min_bytes.max(1) {
        return false;
    }
    let Some(arena) = Region::arena(m.used, setting == HugePages::On) else {
        return false;
    };
    let mut p = Packer {
        arena: Some(Arc::new(arena)),
        ..Packer::measuring()
    };
    place(target, &mut p);
    true
}

/// Hand memory malloc holds free back to the OS. glibc keeps freed small
/// and medium blocks resident; after `pack` dropped the heap copies of a
/// whole store (hundreds of MB in blocks of a few KB) that would double the
/// resident size. A no-op with other C libraries.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Hint the CPU to start loading the cache line at `p` (no effect on
/// correctness; a no-op off x86-64). Lets a lookup that must read two
/// independent sets overlap their cache misses.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unused_unsafe)]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct Three(Frozen<u32>, Frozen<u64>, Frozen<u32>);

    fn place(t: &mut Three, p: &mut Packer) {
        p.place(&mut t.0);
        p.place(&mut t.1);
        p.place(&mut t.2);
    }

    fn survey(t: &Three, p: &mut Packer) {
        place(&mut t.clone(), p);
    }

    #[test]
    fn packs_shares_and_reports() {
        let a = Frozen::from_vec((0..1000u32).collect());
        let b = Frozen::from_vec((0..3000u64).map(|x| x * 7).collect());
        let t = Three(a.clone(), b, a);
        let u = usage(&t, survey);
        assert_eq!(u.heap, 4000 + 24_000, "the shared array counts once");
        assert_eq!(u.in_arenas, 0);
        if huge_pages() == HugePages::Off {
            return;
        }
        let mut packed = t.clone();
        assert!(
            !pack(&mut packed, 1 << 30, survey, place),
            "below the minimum"
        );
        assert!(packed.0.same(&t.0) && packed.0.arena().is_none());
        assert!(pack(&mut packed, 0, survey, place), "mapping");
        assert_eq!(&*packed.0, &*t.0);
        assert_eq!(&*packed.1, &*t.1);
        assert!(packed.0.same(&packed.2), "shared stays shared");
        assert!(!packed.0.same(&t.0));
        let arena = packed.0.arena().expect("in the arena");
        assert_eq!(arena.capacity(), HUGE_PAGE);
        assert_eq!(packed.1.as_ptr() as usize % 8, 0, "aligned for u64");
        assert!(arena.is_arena() && arena.advised() == (huge_pages() == HugePages::On));
        let u = usage(&packed, survey);
        assert_eq!((u.heap, u.in_arenas), (0, 28_000));
        assert_eq!(u.arena_capacity, HUGE_PAGE);
        drop(t);
        let copy = packed.clone();
        drop(packed);
        assert_eq!(
            copy.1[2999],
            2999 * 7,
            "the arena lives while an array does"
        );
    }

    #[test]
    fn builds_straight_into_an_arena() {
        let (a, b, c) = build_in_arena(3 * HUGE_PAGE, || {
            let a = Frozen::from_vec(vec![7u64; 1000]);
            let b = on_heap(|| Frozen::from_vec(vec![1u32, 2, 3]));
            let c = Frozen::from_vec(vec![5u8; 3 * HUGE_PAGE]);
            (a, b, c)
        });
        assert!(b.arena().is_none(), "on_heap keeps temporaries out");
        assert_eq!(&*b, &[1, 2, 3]);
        assert_eq!(a[999], 7);
        assert_eq!(c.len(), 3 * HUGE_PAGE);
        if huge_pages() == HugePages::Off {
            return;
        }
        let arena = a.arena().expect("in the arena");
        assert!(c.arena().is_none(), "what does not fit goes on the heap");
        assert_eq!(arena.capacity(), HUGE_PAGE, "unused huge pages unmapped");
        let d = Frozen::from_vec(vec![1u8]);
        assert!(d.arena().is_none(), "outside the call: heap");
    }

    #[test]
    fn repack_policy() {
        let mut u = ArenaUsage {
            heap: 0,
            in_arenas: 100 << 20,
            arena_capacity: 102 << 20,
        };
        assert!(!u.wants_repack());
        u.heap = 20 << 20;
        assert!(u.wants_repack(), "a sixth on the heap");
        u.heap = 0;
        u.in_arenas = 70 << 20;
        assert!(u.wants_repack(), "a third of the arena dead");
        u = ArenaUsage {
            heap: 1 << 20,
            ..ArenaUsage::default()
        };
        assert!(!u.wants_repack(), "small stores stay on the heap");
    }
}
