//! The README's shell examples, run, so that the README cannot drift from what nfc does (trycmd's idea,
//! without its file layout): every fenced block that starts with `$ nfc ARGS` runs `nfc ARGS` from the
//! workspace root and must print the rest of the block (stdout, then stderr). In the expected text a line
//! `...` stands for any number of lines and `[..]` for any part of a line (timings). Every ```` ```sh ````
//! block's `nfc` lines run in a temporary directory with `nfc` on PATH and must exit 0; blocks that read
//! `../shared` are ignored without it (see `tests/gate.rs`), and `nfc bench` runs there with one round of
//! one pass (the timing is not what is checked).

mod common;

use common::{gate, root};
use std::path::PathBuf;

/// One example: its first line in the README (1-based), the commands, and the output expected (for `$`
/// blocks).
struct Example {
    line: usize,
    commands: Vec<String>,
    expected: Option<String>,
}

fn examples() -> Vec<Example> {
    let text = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i];
        if !fence.starts_with("```") {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        while j < lines.len() && !lines[j].starts_with("```") {
            j += 1;
        }
        let body = &lines[start..j.min(lines.len())];
        if fence == "```" && body.first().is_some_and(|l| l.starts_with("$ nfc ")) {
            out.push(Example {
                line: start + 1,
                commands: vec![body[0][2..].to_string()],
                expected: Some(body[1..].iter().map(|l| format!("{l}\n")).collect()),
            });
        } else if fence == "```sh" {
            out.push(Example {
                line: start + 1,
                commands: body.iter().map(|l| l.to_string()).collect(),
                expected: None,
            });
        }
        i = j + 1;
    }
    out
}

/// Whether `line` matches the expected `pattern` (`[..]` matches any text).
fn line_matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split("[..]");
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (k, p) in parts.iter().enumerate() {
        if k + 1 == parts.len() {
            return rest.ends_with(p);
        }
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether `got` matches `want` line for line, `...` standing for any number of lines.
fn text_matches(want: &[&str], got: &[&str]) -> bool {
    match want.split_first() {
        None => got.is_empty(),
        Some((&"...", rest)) => (0..=got.len()).any(|k| text_matches(rest, &got[k..])),
        Some((w, rest)) => {
            got.first().is_some_and(|g| line_matches(w, g)) && text_matches(rest, &got[1..])
        }
    }
}

/// A `$ nfc ...` example: same output.
fn output_example(command: String, expected: String) {
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let o = common::nfc(&args);
    let got = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let want: Vec<&str> = expected.lines().collect();
    let lines: Vec<&str> = got.lines().collect();
    assert!(
        text_matches(&want, &lines),
        "`{command}` no longer prints what the README says.\n--- README\n{expected}\n--- nfc\n{got}"
    );
}

/// A ```` ```sh ```` block: every line runs (in `sh`, in a temporary directory, `nfc` on PATH) and exits 0.
fn sh_example(commands: Vec<String>, shared: Option<PathBuf>) {
    let dir = common::tmp_dir("readme");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_nfc"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut script = String::from("set -e\n");
    for c in &commands {
        let c = match &shared {
            Some(s) => c.replace("../shared", &s.display().to_string()),
            None => c.clone(),
        };
        let c = if c.starts_with("nfc bench ") {
            format!("{c} --rounds 1 --passes 1")
        } else {
            c
        };
        script.push_str(&c);
        script.push('\n');
    }
    let o = std::process::Command::new("sh")
        .args(["-c", &script])
        .current_dir(&*dir)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .output()
        .expect("run sh");
    assert!(
        o.status.success(),
        "{script}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn main() {
    let mut trials = Vec::new();
    for ex in examples() {
        let name = format!("readme_line_{}", ex.line);
        match ex.expected {
            Some(expected) => {
                let command = ex.commands[0].clone();
                trials.push(gate::test(name, move || output_example(command, expected)));
            }
            // `cargo` lines are how to build and test, not examples of nfc.
            None if ex.commands.iter().any(|c| c.starts_with("cargo ")) => {}
            None if ex.commands.iter().any(|c| c.contains("../shared")) => {
                let commands = ex.commands;
                trials.push(gate::needs(
                    name,
                    || gate::corpus("classbench/song-filterset").map(|_| gate::shared()),
                    move |shared| sh_example(commands, Some(shared)),
                ));
            }
            None => {
                let commands = ex.commands;
                trials.push(gate::test(name, move || sh_example(commands, None)));
            }
        }
    }
    assert!(trials.len() >= 3, "the README's examples were not found");
    gate::run(trials);
}
