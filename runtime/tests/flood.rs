//! SYN flood into a bounded table: `nf_conntrack_max` holds, `early_drop` evicts only non-ASSURED entries, and
//! established (ASSURED) flows survive. 10^6 SYNs with `NFC_FLOOD_FULL=1` (release builds), 10^5 otherwise.

use nfr_runtime::ct::{Conntrack, CtInfo, Nfct, Settings};
use nfr_runtime::wire::build;
use nfr_runtime::wire::tcp_flags as F;
use nfr_vm::Verdict;

mod common;
use common::{establish, ip, pass};

#[test]
fn syn_flood_stays_bounded_and_keeps_assured() {
    let max = 65_536;
    let mut ct = Conntrack::new(Settings {
        max,
        buckets: 65_536,
        checksum: false,
        ..Settings::default()
    });
    let server = ip(0x0a00_0001);
    // 1000 established, ASSURED flows.
    let assured = 1000u32;
    for i in 0..assured {
        let c = ip(0xc0a8_0000 + i);
        let sp = 10_000 + (i % 50_000) as u16;
        let n = establish(&mut ct, c, sp, server, 443, 0);
        assert!(matches!(
            n,
            Nfct::Ct {
                ctinfo: CtInfo::Established,
                ..
            }
        ));
    }
    let syns: u32 = if std::env::var("NFC_FLOOD_FULL").is_ok() {
        1_000_000
    } else {
        100_000
    };
    let mut dropped = 0u64;
    let mut template = build::tcp(ip(0x0b00_0000), server, 1, 80, 7, 0, F::SYN, 1024, &[], b"");
    for i in 0..syns {
        // Rewrite source address and port in place (checksums are off).
        template[12..16].copy_from_slice(&(0x0b00_0000 + (i >> 8)).to_be_bytes());
        template[20..22].copy_from_slice(&((i & 0xff) as u16 + 1024).to_be_bytes());
        let (_, v) = pass(&mut ct, &template, u64::from(i) * 1000);
        if v == Verdict::Drop {
            dropped += 1;
        }
        assert!(
            ct.count() <= max,
            "table exceeded nf_conntrack_max at SYN {i}"
        );
    }
    let now = u64::from(syns) * 1000;
    let listing = ct.listing(now);
    let assured_left = listing.lines().filter(|l| l.contains("[ASSURED]")).count();
    let st = ct.stats();
    println!(
        "flood: {syns} SYNs, table {} / {max}, early_drop {}, dropped {dropped}, assured kept {assured_left}/{assured}",
        ct.count(),
        st.early_drop
    );
    assert_eq!(assured_left as u32, assured, "an ASSURED flow was evicted");
    assert!(
        st.early_drop >= u64::from(syns) - u64::from(max),
        "early_drop did not make room"
    );
    assert!(ct.count() <= max);
}
