//! Memory hints for the runtime's big flat arrays (the conntrack bucket heads and entry slab): transparent huge
//! pages and software prefetch. Neither changes what any code computes; they only change when memory arrives.
//!
//! A conntrack lookup touches random places of arrays that reach tens of megabytes (100K flows are 12.8 MB of
//! entries). With 4 KiB pages every such touch is also a TLB miss and a page walk; with 2 MiB pages the whole
//! table needs a handful of TLB entries. Linux gives anonymous memory huge pages at fault time only where the
//! process asked for them (`transparent_hugepage/enabled = madvise`, the common default), so the arrays are
//! allocated here: capacity first, `madvise(MADV_HUGEPAGE)` on it, then filled. Growth copies into a new advised
//! buffer instead of `realloc`, whose `mremap` would keep the old 4 KiB pages. The advice never changes contents;
//! elsewhere than Linux, or on a kernel without THP, it is a no-op.

/// The huge page size the advice is aligned to.
const HUGE: usize = 2 << 20;

/// Advises huge pages for the part of `v`'s buffer (its whole capacity) that covers whole 2 MiB pages.
pub(crate) fn advise<T>(v: &Vec<T>) {
    let bytes = v.capacity().saturating_mul(size_of::<T>());
    if bytes < HUGE {
        return;
    }
    let start = v.as_ptr() as usize;
    let first = start.next_multiple_of(HUGE);
    let end = (start + bytes) & !(HUGE - 1);
    if end > first {
        madvise_hugepage(first, end - first);
    }
}

/// A vector of `n` copies of `x` on advised memory.
pub(crate) fn filled<T: Clone>(n: usize, x: T) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    advise(&v);
    v.resize(n, x);
    v
}

/// Pushes `x`, growing (doubling) into a new advised buffer when `v` is full.
pub(crate) fn push<T>(v: &mut Vec<T>, x: T) {
    if v.len() == v.capacity() {
        let mut bigger = Vec::with_capacity(v.capacity().saturating_mul(2).max(1024));
        advise(&bigger);
        bigger.append(v);
        *v = bigger;
    }
    v.push(x);
}

/// Asks for the cache line holding `*r` to be fetched (into all cache levels) without waiting for it.
#[inline(always)]
pub(crate) fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: PREFETCHT0 is only a hint: it never faults and never reads into a register; `r` is a live
    // reference anyway.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(r).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn madvise_hugepage(addr: usize, len: usize) {
    // SAFETY: [addr, addr + len) lies inside one live allocation owned by the caller (a Vec buffer), and
    // MADV_HUGEPAGE is advice about how to back it: it neither unmaps nor changes the memory's contents. The
    // result is ignored on purpose (EINVAL without THP support: then 4 KiB pages stay, which is correct too).
    unsafe {
        libc::madvise(addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn madvise_hugepage(_addr: usize, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_keeps_contents_across_growth() {
        let mut v = Vec::new();
        for i in 0..100_000u32 {
            push(&mut v, i);
        }
        assert_eq!(v.len(), 100_000);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32));
    }

    #[test]
    fn filled_is_filled() {
        let v = filled(1 << 20, 0xffff_ffffu32);
        assert_eq!(v.len(), 1 << 20);
        assert!(v.iter().all(|&x| x == u32::MAX));
    }
}
