//! Source loading for every command: `-` as standard input for any file argument (as `nft -f -`), a size cap
//! on any one file read whole, and `include` as nft resolves it — wildcard patterns, the `-I/--includepath`
//! directories, and only regular files (nft's `include-device` bogon: `include "/dev/zero"` would read
//! forever, a FIFO would block in open()). Captures are streamed, not read whole; a FIFO as the root file or
//! the capture is read like a pipe, so it blocks until a writer opens it, as `cat` would.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The largest ruleset, include or iptables-save file read whole (64 MiB: a million-rule ruleset is ~40 MB).
pub const MAX_SOURCE_BYTES: u64 = 64 << 20;

/// The largest iptables blob read whole (the kernel's own tables stay far below; 256 MiB).
pub const MAX_BLOB_BYTES: u64 = 256 << 20;

/// All sources of one ruleset together, the root and its includes (a diamond of includes, each file including
/// the next level's files twice, would otherwise grow exponentially within the depth limit).
pub const MAX_RULESET_BYTES: u64 = 256 << 20;

/// Most files one ruleset may include, counting repeats.
pub const MAX_INCLUDES: usize = 4096;

/// `-I/--includepath` directories, set once from the command line.
static INCLUDE_DIRS: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();

/// Sets the `-I` directories (once, before any ruleset is read).
pub fn set_include_dirs(dirs: Vec<PathBuf>) {
    let _ = INCLUDE_DIRS.set(dirs);
}

/// The `-I` directories, in command-line order.
pub fn include_dirs() -> Vec<PathBuf> {
    INCLUDE_DIRS.get().cloned().unwrap_or_default()
}

/// The argument that names standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// How a path is shown in messages and diagnostics (`<stdin>` for `-`).
pub fn display_name(path: &Path) -> String {
    if is_stdin(path) {
        "<stdin>".into()
    } else {
        path.display().to_string()
    }
}

/// A streaming reader of a file argument (`-`: standard input) and its size when it is a regular file.
pub fn open_stream(path: &Path) -> anyhow::Result<(Box<dyn Read + Send>, u64)> {
    if is_stdin(path) {
        return Ok((Box::new(std::io::stdin()), 0));
    }
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let meta = f
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?;
    anyhow::ensure!(!meta.is_dir(), "{} is a directory", path.display());
    let len = if meta.is_file() { meta.len() } else { 0 };
    // Unbuffered: the capture reader and `read_to_end` read large blocks themselves.
    Ok((Box::new(f), len))
}

/// Reads a whole file argument (`-`: standard input), refusing more than `cap` bytes.
pub fn read_capped(path: &Path, cap: u64) -> anyhow::Result<Vec<u8>> {
    let (r, _) = open_stream(path)?;
    let mut bytes = Vec::new();
    r.take(cap + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", display_name(path)))?;
    anyhow::ensure!(
        bytes.len() as u64 <= cap,
        "{} is larger than {cap} bytes, the limit for one file",
        display_name(path)
    );
    Ok(bytes)
}

/// UTF-8 text of a source, naming the file and the offset of the first bad byte otherwise.
pub fn utf8(name: &str, bytes: Vec<u8>) -> anyhow::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let bad = e.as_bytes()[valid.len()];
        // Both prefixes are valid UTF-8: the line and the column (in characters) of the bad byte.
        let text = std::str::from_utf8(valid).unwrap_or_default();
        let line = text.matches('\n').count() + 1;
        let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        anyhow::anyhow!(
            "{name}:{line}:{col}: not UTF-8 text (byte 0x{bad:02x}); rulesets are UTF-8"
        )
    })
}

/// Include resolution and reading for the checker (`nfr_compiler::check::Loader`).
pub struct Includes {
    /// `-I/--includepath` directories, searched in order for plain names.
    pub dirs: Vec<PathBuf>,
    /// Bytes of every source read so far, the root's included.
    pub total: u64,
    /// Files included so far.
    pub count: usize,
    /// A ruleset-wide limit was reported: further includes are dropped silently.
    pub spent: bool,
}

impl Includes {
    pub fn new(dirs: Vec<PathBuf>, root_bytes: usize) -> Includes {
        Includes {
            dirs,
            total: root_bytes as u64,
            count: 0,
            spent: false,
        }
    }
}

/// Whether a pattern has glob(3) wildcards.
fn has_wildcards(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// The directory of the file named `from` (`.` for `<stdin>` and bare names).
fn dir_of(from: &str) -> PathBuf {
    match Path::new(from).parent() {
        Some(d) if !d.as_os_str().is_empty() && from != "<stdin>" => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl nfr_compiler::check::Loader for Includes {
    fn resolve(&mut self, from: &str, inc: &str) -> Result<Vec<String>, String> {
        if self.spent {
            return Ok(Vec::new());
        }
        if inc.is_empty() {
            return Err("empty file name".into());
        }
        // nft: a path starting with `/`, `./` or `../` is taken as it is (nfc: relative to the including file);
        // any other name is searched in the include directories, and nfc's default directory is the
        // including file's (nft's is its compile-time DEFAULT_INCLUDE_PATH)
        let explicit = inc.starts_with('/') || inc.starts_with("./") || inc.starts_with("../");
        let mut bases: Vec<PathBuf> = Vec::new();
        if !explicit {
            bases.extend(self.dirs.iter().cloned());
        }
        bases.push(dir_of(from));
        let wild = has_wildcards(inc);
        let mut out = Vec::new();
        for base in &bases {
            let pattern =
                nfr_compiler::check::resolve::join_path(&format!("{}/x", base.display()), inc);
            if wild {
                // every directory's matches, each in alphabetical order (glob(3)); no match is no error
                out.extend(glob(&pattern));
            } else if Path::new(&pattern).exists() || base == bases.last().unwrap_or(base) {
                // the first directory holding the name; the last one names the missing file in the error
                out.push(pattern);
                break;
            }
        }
        Ok(out)
    }

    fn load(&mut self, path: &str) -> Result<String, String> {
        self.count += 1;
        if self.count > MAX_INCLUDES {
            self.spent = true;
            return Err(format!("more than {MAX_INCLUDES} includes in one ruleset"));
        }
        let meta = std::fs::metadata(path).map_err(|e| io_reason(&e))?;
        if !meta.is_file() {
            // checked before open(): opening a FIFO blocks until a writer comes
            return Err("not a regular file (includes must be regular files)".into());
        }
        if meta.len() > MAX_SOURCE_BYTES {
            return Err(format!(
                "the file is {} bytes, over the {MAX_SOURCE_BYTES}-byte limit for one file",
                meta.len()
            ));
        }
        let f = File::open(path).map_err(|e| io_reason(&e))?;
        let mut bytes = Vec::new();
        f.take(MAX_SOURCE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_reason(&e))?;
        if bytes.len() as u64 > MAX_SOURCE_BYTES {
            return Err(format!(
                "the file is over the {MAX_SOURCE_BYTES}-byte limit for one file"
            ));
        }
        self.total += bytes.len() as u64;
        if self.total > MAX_RULESET_BYTES {
            self.spent = true;
            return Err(format!(
                "the ruleset's files together pass {MAX_RULESET_BYTES} bytes"
            ));
        }
        String::from_utf8(bytes).map_err(|e| {
            format!(
                "the file is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            )
        })
    }
}

/// An io error without Rust's `(os error N)` suffix.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The files a glob(3) pattern matches (`*`, `?`, `[...]` in any component), sorted, without names starting
/// with `.` and without directories, as nft's include does.
pub fn glob(pattern: &str) -> Vec<String> {
    let abs = pattern.starts_with('/');
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let mut found = vec![if abs { "/".to_string() } else { String::new() }];
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for prefix in &found {
            let join = |name: &str| -> String {
                if prefix.is_empty() || prefix.ends_with('/') {
                    format!("{prefix}{name}")
                } else {
                    format!("{prefix}/{name}")
                }
            };
            if !has_wildcards(part) {
                next.push(join(part));
                continue;
            }
            let dir = if prefix.is_empty() {
                "."
            } else {
                prefix.as_str()
            };
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.') && wildmatch(part.as_bytes(), n.as_bytes()))
                .collect();
            names.sort();
            next.extend(names.iter().map(|n| join(n)));
        }
        if !last {
            next.retain(|p| Path::new(p).is_dir());
        }
        found = next;
    }
    found.retain(|p| Path::new(p).exists() && !Path::new(p).is_dir());
    found
}

/// fnmatch(3) on one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`/`[^x]`, `\` escapes.
fn wildmatch(p: &[u8], s: &[u8]) -> bool {
    // iterative with one backtrack point for the last `*`: linear-ish, never exponential
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                b'[' => {
                    if let Some((hit, len)) = class(&p[pi..], s[si])
                        && hit
                    {
                        pi += len;
                        si += 1;
                        continue;
                    } else if class(&p[pi..], s[si]).is_none() && s[si] == b'[' {
                        pi += 1;
                        si += 1;
                        continue;
                    }
                }
                b'\\' if pi + 1 < p.len() && p[pi + 1] == s[si] => {
                    pi += 2;
                    si += 1;
                    continue;
                }
                c if c == s[si] && c != b'\\' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A `[...]` class at the start of `p`: (whether `c` is in it, its length); None when unterminated.
fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let neg = matches!(p.get(i), Some(b'!' | b'^'));
    if neg {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == b']' && !first {
            return Some((hit != neg, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            hit |= p[i] <= c && c <= p[i + 2];
            i += 3;
        } else {
            hit |= p[i] == c;
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildmatch(b"*.nft", b"a.nft"));
        assert!(!wildmatch(b"*.nft", b"a.nfr"));
        assert!(wildmatch(b"r?.nft", b"r1.nft"));
        assert!(wildmatch(b"r[0-9].nft", b"r7.nft"));
        assert!(!wildmatch(b"r[!0-9].nft", b"r7.nft"));
        assert!(wildmatch(b"*", b"x"));
        assert!(wildmatch(b"a*b*c", b"aXXbYYc"));
        assert!(!wildmatch(b"a*b*c", b"aXXbYY"));
        assert!(wildmatch(b"\\*", b"*"));
        assert!(wildmatch(b"[", b"["));
        // no exponential backtracking
        let s = vec![b'a'; 200];
        assert!(!wildmatch(b"*a*a*a*a*a*a*a*a*b", &s));
    }

    #[test]
    fn dir_of_stdin_is_the_working_directory() {
        assert_eq!(dir_of("<stdin>"), PathBuf::from("."));
        assert_eq!(dir_of("r.nfr"), PathBuf::from("."));
        assert_eq!(dir_of("a/r.nfr"), PathBuf::from("a"));
    }
}
