//! Heap bytes per conntrack entry in a SYN flood, measured by a counting allocator: the table (slab, bucket array,
//! side tables) must stay near the entry itself, unlimited (`nf_conntrack_max=0`) or bounded at the default max.
//! Peak RSS of the 2*10^6-SYN flood is in docs/PERFORMANCE.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use nfr_runtime::ct::{Conntrack, Settings};
use nfr_runtime::wire::build;
use nfr_runtime::wire::tcp_flags as F;

mod common;
use common::{ip, pass};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// One measurement at a time (tests run on threads of one process).
static ONE: Mutex<()> = Mutex::new(());

/// `syns` SYNs from distinct sources into a new table; returns it and the heap bytes it holds.
fn flood(max: u32, syns: u32) -> (Conntrack, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    let mut ct = Conntrack::new(Settings {
        max,
        checksum: false,
        ..Settings::default()
    });
    let server = ip(0x0a00_0001);
    let mut syn = build::tcp(ip(0x0b00_0000), server, 1, 80, 7, 0, F::SYN, 1024, &[], b"");
    for i in 0..syns {
        syn[12..16].copy_from_slice(&(0x0b00_0000 + (i >> 8)).to_be_bytes());
        syn[20..22].copy_from_slice(&((i & 0xff) as u16 + 1024).to_be_bytes());
        pass(&mut ct, &syn, u64::from(i));
    }
    drop(ct.drain_events());
    let held = LIVE.load(Ordering::Relaxed).saturating_sub(base);
    (ct, held)
}

#[test]
fn an_unlimited_table_holds_little_more_than_its_entries() {
    let _one = ONE.lock();
    let syns = 300_000;
    let (ct, held) = flood(0, syns);
    assert_eq!(ct.count(), syns);
    let per = held / syns as usize;
    println!("unlimited: {per} B per entry ({held} B for {syns})");
    // the 128 B entry, the slab's doubling (at most 2x) and the fixed bucket array; listing text, per-entry side
    // tables or a copy kept past growth would break it
    assert!(per <= 2 * 128 + 32, "{per} B per entry");
}

#[test]
fn a_bounded_table_stops_growing_at_the_max() {
    let _one = ONE.lock();
    let max = 16_384;
    let (ct, held) = flood(max, 200_000);
    assert!(ct.count() <= max && ct.count() > max - 64, "{}", ct.count());
    let per = held / max as usize;
    println!("max {max}: {per} B per entry ({held} B)");
    // the default bucket array (262,144 heads, 5 B each) is most of it: 1.3 MB
    assert!(
        held <= 262_144 * 5 + max as usize * 2 * 128 + (1 << 16),
        "{held} B"
    );
}
