//! What every integration test of the `nfc` binary needs: the workspace root, running the built
//! `nfc`, the paths of `../shared` (corpus and kernel oracles), and the one rule for oracle tests —
//! skip with a printed reason when the kernel tools can't run here (not root, tool missing, no
//! network namespaces), but fail instead when `NFC_REQUIRE_ORACLE=1`. Each test file includes it
//! with `mod common;` and uses a subset, hence `dead_code` is allowed.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (the parent of `nfc/`); `nfc` runs from there.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `root/../shared/<rel>`: the public corpus and the kernel oracles, never committed.
pub fn shared(rel: &str) -> PathBuf {
    root().join("../shared").join(rel)
}

/// The built `nfc`, run from the workspace root without colours.
pub fn nfc_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nfc"));
    c.current_dir(root()).env("NO_COLOR", "1");
    c
}

/// Runs `nfc ARGS` (see [`nfc_command`]).
pub fn nfc(args: &[&str]) -> Output {
    nfc_command().args(args).output().expect("run nfc")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A fresh (emptied) temporary directory `nfc-<name>-<pid>`.
pub fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nfc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `Some("not root")` unless running as uid 0.
pub fn not_root() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok();
    uid.is_none_or(|o| String::from_utf8_lossy(&o.stdout).trim() != "0")
        .then(|| "not root".to_string())
}

/// The first of `tools` that `command -v` does not find.
pub fn missing_tool(tools: &[&str]) -> Option<String> {
    tools.iter().find_map(|tool| {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        (!ok).then(|| format!("{tool} not installed"))
    })
}

/// Why `unshare -n TOOL` can't run here (not root, tool missing, no network namespaces), if it can't.
pub fn netns_tool_unavailable(tool: &str) -> Option<String> {
    not_root().or_else(|| {
        let ok = Command::new("unshare")
            .args(["-n", tool, "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        (!ok).then(|| {
            format!("`unshare -n {tool}` does not work (tool missing or no network namespaces)")
        })
    })
}

/// `unshare -n ARGS` from the workspace root: ARGS in a private network namespace.
pub fn unshare_n<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Output {
    Command::new("unshare")
        .arg("-n")
        .args(args)
        .current_dir(root())
        .output()
        .expect("run unshare")
}

/// Whether the oracle test `what`, which runs `unshare -n TOOL`, can run (see [`oracle_ready`]).
pub fn netns_tool_ready(what: &str, tool: &str) -> bool {
    oracle_ready(what, netns_tool_unavailable(tool))
}

/// Why the oracle script `../shared/oracle/<script>` can't run here (script absent, not root, one
/// of `tools` missing), if it can't.
pub fn oracle_script_unavailable(script: &str, tools: &[&str]) -> Option<String> {
    if !shared("oracle").join(script).exists() {
        return Some(format!("../shared/oracle/{script} not found"));
    }
    not_root().or_else(|| missing_tool(tools))
}

/// Whether the oracle test `what` can run, given why it can't (`None`: it can). A skip prints its
/// reason; with `NFC_REQUIRE_ORACLE=1` it panics instead, so CI can't pass without the oracle.
pub fn oracle_ready(what: &str, unavailable: Option<String>) -> bool {
    let Some(why) = unavailable else {
        return true;
    };
    if std::env::var("NFC_REQUIRE_ORACLE").as_deref() == Ok("1") {
        panic!("kernel oracle required (NFC_REQUIRE_ORACLE=1) but unavailable for {what}: {why}");
    }
    println!("SKIP {what}: {why}");
    false
}
