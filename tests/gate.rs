//! The one rule for tests that need what this repository does not hold: the public corpus in
//! `../shared/corpus`, the kernel oracles in `../shared/oracle`, or root with the kernel's tools
//! (`nft`, `iptables-legacy`, `conntrack`, `unshare -n`). Each such check is its own
//! libtest-mimic trial (libtest cannot ignore a test at run time): when what it needs is absent it
//! is reported as *ignored* with the reason, so the summary says what ran, and with
//! `NFC_REQUIRE_ORACLE=1` (set by `.ci/run`) it fails instead. `NFC_SHARED_DIR` points at another
//! `shared` directory; a missing one hides the corpus and the oracles.
//!
//! Test binaries of every crate include this file (`#[path = "../../tests/gate.rs"] mod gate;`:
//! it needs nothing but std and libtest-mimic), declare `harness = false` and build their `main`
//! from [`test`], [`needs`] and [`per_file`] trials.

#![allow(dead_code)]

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `shared` directory beside the workspace (or `$NFC_SHARED_DIR`).
pub fn shared() -> PathBuf {
    match std::env::var_os("NFC_SHARED_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

/// Whether `NFC_REQUIRE_ORACLE=1`: a missing corpus or oracle is then a failure.
pub fn require() -> bool {
    std::env::var("NFC_REQUIRE_ORACLE").as_deref() == Ok("1")
}

/// For a file whose trials all need what `why` (when set) says is missing: says so once on stderr (`SKIP`, or
/// `FAIL` with `NFC_REQUIRE_ORACLE=1`) and returns whether those trials are to be reported as ignored.
pub fn announce(why: Option<&str>) -> bool {
    if let Some(w) = why {
        let how = if require() {
            "FAIL (NFC_REQUIRE_ORACLE=1)"
        } else {
            "SKIP"
        };
        eprintln!("{how}: {w}");
    }
    why.is_some() && !require()
}

/// `shared/corpus/<rel>`, or why not (absent).
pub fn corpus(rel: &str) -> Result<PathBuf, String> {
    let p = shared().join("corpus").join(rel);
    if p.exists() {
        Ok(p)
    } else {
        Err(format!("../shared/corpus/{rel} not found"))
    }
}

/// `shared/oracle/<script>` when it exists, we are root and every one of `tools` is installed.
pub fn oracle_script(script: &str, tools: &[&str]) -> Result<PathBuf, String> {
    let p = shared().join("oracle").join(script);
    if !p.exists() {
        return Err(format!("../shared/oracle/{script} not found"));
    }
    root()?;
    have_tools(tools)?;
    Ok(p)
}

/// Ok when running as uid 0.
pub fn root() -> Result<(), String> {
    let uid = Command::new("id").arg("-u").output().ok();
    if uid.is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0") {
        Ok(())
    } else {
        Err("not root".into())
    }
}

/// Ok when `command -v` finds every one of `tools`.
pub fn have_tools(tools: &[&str]) -> Result<(), String> {
    for tool in tools {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Err(format!("{tool} not installed"));
        }
    }
    Ok(())
}

/// Ok when `unshare -n TOOL --version` runs: root, the tool, network namespaces.
pub fn netns_tool(tool: &str) -> Result<(), String> {
    root()?;
    let ok = Command::new("unshare")
        .args(["-n", tool, "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`unshare -n {tool}` does not work (tool missing or no network namespaces)"
        ))
    }
}

/// A test that needs nothing outside the repository; a panic fails it.
pub fn test(name: impl Into<String>, body: impl FnOnce() + Send + 'static) -> Trial {
    Trial::test(name, move || {
        body();
        Ok(())
    })
}

/// What a test body returns: nothing, or `Result<(), String>` whose `Err(why)` says that what the
/// test needs turned out unavailable half-way (a namespace that could not be set up): the test
/// is then ignored with `why` like one whose need failed up front.
pub trait Ran {
    fn unavailable(self) -> Option<String>;
}

impl Ran for () {
    fn unavailable(self) -> Option<String> {
        None
    }
}

impl Ran for Result<(), String> {
    fn unavailable(self) -> Option<String> {
        self.err()
    }
}

/// A test that needs what `need` finds (checked when the test runs, so listing stays cheap):
/// `Err(why)` makes it ignored with `why`, or failed under `NFC_REQUIRE_ORACLE=1`. A panic in
/// `body` fails it.
pub fn needs<T, R: Ran>(
    name: impl Into<String>,
    need: impl FnOnce() -> Result<T, String> + Send + 'static,
    body: impl FnOnce(T) -> R + Send + 'static,
) -> Trial {
    Trial::ignorable_test(name, move || {
        let why = match need() {
            Ok(v) => match body(v).unavailable() {
                None => return Ok(Completion::Completed),
                Some(why) => why,
            },
            Err(why) => why,
        };
        if require() {
            Err(Failed::from(format!(
                "required (NFC_REQUIRE_ORACLE=1) but unavailable: {why}"
            )))
        } else {
            Ok(Completion::ignored_with(why))
        }
    })
}

/// One trial per entry of `shared/corpus/<rel>` that `pick` keeps (named `prefix::<entry>`, in
/// order), each running `body` on its path; without the corpus, one trial `prefix` that is
/// ignored (or fails under `NFC_REQUIRE_ORACLE=1`).
pub fn per_file(
    prefix: &str,
    rel: &str,
    pick: impl Fn(&Path) -> bool,
    body: impl Fn(PathBuf) + Send + Sync + Clone + 'static,
) -> Vec<Trial> {
    let dir = match corpus(rel) {
        Ok(d) => d,
        Err(why) => return vec![needs(prefix, move || Err::<(), _>(why), |()| {})],
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    files.retain(|p| pick(p));
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = format!("{prefix}::{}", p.file_name().unwrap().to_string_lossy());
            let body = body.clone();
            test(name, move || body(p))
        })
        .collect()
}

/// Runs the trials as libtest would, with its command line (filters, `--ignored`, `--list`).
pub fn run(trials: Vec<Trial>) -> ! {
    libtest_mimic::run(&Arguments::from_args(), trials).exit()
}
