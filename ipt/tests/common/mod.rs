//! What nfr-ipt's integration tests share: the seeded random numbers of the corruption and traffic suites,
//! the path of `tests/data`, and whether the kernel can be asked here (root, the tool, a network
//! namespace; the tests that need it are ignored otherwise, see `tests/gate.rs`). Each test file
//! includes it with `mod common;` and uses a subset, hence `dead_code` is allowed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Random numbers from proptest's ChaCha generator, seeded, so the random suites are reproducible.
pub struct Rng(proptest::test_runner::TestRng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        use proptest::test_runner::{RngAlgorithm, TestRng};
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        Rng(TestRng::from_seed(RngAlgorithm::ChaCha, &key))
    }

    pub fn next(&mut self) -> u64 {
        proptest::prelude::Rng::next_u64(&mut self.0)
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
