//! What every integration test of the `nfc` binary needs: the workspace root, running the built
//! `nfc`, temporary files that go away, the paths of `../shared` (corpus and kernel oracles), and
//! [`gate`], the one rule for tests that need them or the kernel's tools (ignored when absent,
//! failing when `NFC_REQUIRE_ORACLE=1`). Each test file includes it with `mod common;` and uses
//! a subset, hence `dead_code` is allowed.

#![allow(dead_code)]

#[path = "../../../tests/gate.rs"]
pub mod gate;
pub mod lab;

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

/// `shared/<rel>`: the public corpus and the kernel oracles, never committed (see [`gate`]).
pub fn shared(rel: &str) -> PathBuf {
    gate::shared().join(rel)
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

/// A fresh temporary directory `nfc-<name>-XXXX`, removed when dropped (also when the test
/// panics); it derefs to its path.
pub struct TmpDir(tempfile::TempDir);

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TmpDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

pub fn tmp_dir(name: &str) -> TmpDir {
    TmpDir(
        tempfile::Builder::new()
            .prefix(&format!("nfc-{name}-"))
            .tempdir()
            .expect("create a temporary directory"),
    )
}

/// A file holding `text` in its own [`TmpDir`], removed with it; it derefs to its path.
pub struct TmpFile {
    _dir: TmpDir,
    path: PathBuf,
}

impl std::ops::Deref for TmpFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TmpFile {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<OsStr> for TmpFile {
    fn as_ref(&self) -> &OsStr {
        self.path.as_os_str()
    }
}

pub fn tmp_file(name: &str, text: impl AsRef<[u8]>) -> TmpFile {
    let dir = tmp_dir("file");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a temporary file");
    TmpFile { _dir: dir, path }
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
