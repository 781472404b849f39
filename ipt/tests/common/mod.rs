//! What nfr-ipt's integration tests share: the seeded PRNG of the corruption and traffic suites,
//! the paths of `tests/data` and of the public corpus (`../shared/corpus`, never committed), and
//! the one rule for kernel-oracle tests — skip with a printed reason when the kernel can't be
//! asked here (not root, tool missing, no network namespace), but fail instead when
//! `NFC_REQUIRE_ORACLE=1`. Each test file includes it with `mod common;` and uses a subset,
//! hence `dead_code` is allowed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A small deterministic PRNG (xorshift64*), so the random suites are reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// `ipt/tests/data`: the hand-written iptables-save rulesets.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// `../shared/corpus/<rel>` (relative to the workspace root) if that directory exists.
pub fn corpus(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus")
        .join(rel);
    p.is_dir().then_some(p)
}

/// An oracle test (`what`) can't run, because of `why`: prints the skip, or panics when
/// `NFC_REQUIRE_ORACLE=1` so that CI can't pass without the kernel.
pub fn oracle_unavailable(what: &str, why: &str) {
    if std::env::var("NFC_REQUIRE_ORACLE").as_deref() == Ok("1") {
        panic!("kernel oracle required (NFC_REQUIRE_ORACLE=1) but unavailable for {what}: {why}");
    }
    eprintln!("SKIP {what}: {why}");
}

/// Whether the kernel oracle test `what` can run: `tool --version` works and `ip_tables` answers
/// in a private network namespace (root). Otherwise see [`oracle_unavailable`].
#[cfg(feature = "kernel")]
pub fn oracle(what: &str, tool: &str) -> bool {
    use nfr_ipt::kernel;
    let have_tool = std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let why = if have_tool {
        match kernel::with_private_netns(|| kernel::get_info("filter")) {
            Ok(Ok(_)) => return true,
            Ok(Err(e)) => format!("ip_tables not usable in a private netns: {e}"),
            Err(e) => format!("cannot create a private network namespace (need root): {e}"),
        }
    } else {
        format!("{tool} not found")
    };
    oracle_unavailable(what, &why);
    false
}
