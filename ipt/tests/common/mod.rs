//! What nfr-ipt's integration tests share: the seeded PRNG of the corruption and traffic suites,
//! the path of `tests/data`, and whether the kernel can be asked here (root, the tool, a network
//! namespace; the tests that need it are ignored otherwise, see `tests/gate.rs`). Each test file
//! includes it with `mod common;` and uses a subset, hence `dead_code` is allowed.

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

/// Ok when the kernel oracle can run: `tool --version` works and `ip_tables` answers in a private
/// network namespace (root); else why not.
#[cfg(feature = "kernel")]
pub fn oracle(tool: &str) -> Result<(), String> {
    use nfr_ipt::kernel;
    let have_tool = std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let why = if have_tool {
        match kernel::with_private_netns(|| kernel::get_info("filter")) {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => format!("ip_tables not usable in a private netns: {e}"),
            Err(e) => format!("cannot create a private network namespace (need root): {e}"),
        }
    } else {
        format!("{tool} not found")
    };
    Err(why)
}
