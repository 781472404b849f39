//! The iptables side of the CLI: `nfc compile --emit ipt|ipt-hex` (Hir → iptables blob files / an annotated
//! hex dump), `nfc verify BLOB` (the kernel's translate_table checks), `nfc decompile BLOB` (iptables-save or
//! `.nfr` text), `nfc import iptables-save FILE` (iptables-save → `.nfr`) and `nfc load FILE` (IPT_SO_SET_REPLACE
//! into the current network namespace).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use nfr_compiler::lower::ipt::{
    lower_ipt_table, shared_recent_lists, table_to_nfr_among, tables_to_nfr,
};

use crate::{ColorChoice, Outcome, front};

/// Check and lower a file to iptables tables (`table` filters by iptables or nft table name). `Ok(None)` when
/// diagnostics were printed.
fn lower_file(
    file: &Path,
    table: Option<&str>,
    color: ColorChoice,
) -> anyhow::Result<Option<Vec<nfr_ipt::Table>>> {
    let checked = front::check_file(file)?;
    if !checked.diagnostics.is_empty() {
        eprint!("{}", checked.render(color.enabled()));
    }
    let Some(hir) = &checked.hir else {
        return Ok(None);
    };
    let mut out = Vec::new();
    let mut diags = Vec::new();
    let mut seen = false;
    for t in &hir.tables {
        let ipt_name = match nfr_compiler::lower::ipt::table_mapping(hir, t.id) {
            nfr_compiler::lower::ipt::IptMapping::Maps { table, .. } => {
                Some(nfr_compiler::lower::ipt::ipt_table_name(table))
            }
            nfr_compiler::lower::ipt::IptMapping::No(_) => None,
        };
        if let Some(want) = table
            && want != t.name
            && Some(want) != ipt_name
        {
            continue;
        }
        seen = true;
        match lower_ipt_table(hir, t.id) {
            Ok(x) => out.push(x),
            Err(d) => diags.extend(d),
        }
    }
    if let Some(want) = table
        && !seen
    {
        bail!("{} has no table `{want}`", file.display());
    }
    if !diags.is_empty() {
        eprint!(
            "{}",
            nfr_compiler::diag::render(&diags, &checked.sources, color.enabled())
        );
        return Ok(None);
    }
    Ok(Some(out))
}

/// `nfc compile FILE --emit ipt [-o PREFIX]`: one `PREFIX.<table>.replace.bin` per table (the `ipt_replace` header
/// + entries of the oracle's blob format), PREFIX defaulting to FILE without `.nfr`.
pub fn emit_blobs(
    file: &Path,
    table: Option<&str>,
    output: Option<&Path>,
    color: ColorChoice,
) -> anyhow::Result<Outcome> {
    let Some(tables) = lower_file(file, table, color)? else {
        return Ok(Outcome::Diagnostics);
    };
    let prefix = match output {
        Some(o) => o.to_path_buf(),
        None => file.with_extension(""),
    };
    let mut msg = String::new();
    for t in &tables {
        let blob = nfr_ipt::encode(t).with_context(|| format!("encoding table {}", t.name))?;
        let path = PathBuf::from(format!("{}.{}.replace.bin", prefix.display(), t.name));
        std::fs::write(&path, &blob).with_context(|| format!("cannot write {}", path.display()))?;
        let entries = nfr_ipt::entry_map(t).len();
        let _ = writeln!(
            msg,
            "{}: table {} ({} entries, {} bytes)",
            path.display(),
            t.name,
            entries,
            blob.len() - nfr_ipt::layout::IPT_REPLACE_SIZE
        );
    }
    front::print_stdout(&msg)?;
    Ok(Outcome::Ok)
}

/// `nfc compile FILE --emit ipt-hex`: an annotated hex dump of every table.
pub fn emit_hex(file: &Path, table: Option<&str>, color: ColorChoice) -> anyhow::Result<Outcome> {
    let Some(tables) = lower_file(file, table, color)? else {
        return Ok(Outcome::Diagnostics);
    };
    let mut s = String::new();
    for t in &tables {
        s.push_str(&hex_dump(t)?);
    }
    front::print_stdout(&s)?;
    Ok(Outcome::Ok)
}

fn hex_line(s: &mut String, indent: &str, bytes: &[u8]) {
    for chunk in bytes.chunks(16) {
        let h: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(s, "{indent}{}", h.join(" "));
    }
}

fn ip4(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

fn cname(b: &[u8]) -> String {
    let end = b.iter().position(|x| *x == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// The hex dump: header fields, then entry by entry (offset, chain, role, `ipt_ip` fields, each match and the
/// target with name, revision and size, then the bytes).
pub fn hex_dump(t: &nfr_ipt::Table) -> anyhow::Result<String> {
    let (hdr, entries) = nfr_ipt::encode_parts(t)?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# table {} valid_hooks 0x{:02x} num_entries {} size {}",
        t.name, hdr.valid_hooks, hdr.num_entries, hdr.size
    );
    let _ = writeln!(
        s,
        "# hook_entry {:?} underflow {:?}",
        hdr.hook_entry
            .map(|x| x as i64)
            .map(|x| if x == 0xffff_ffff { -1 } else { x }),
        hdr.underflow
            .map(|x| x as i64)
            .map(|x| if x == 0xffff_ffff { -1 } else { x })
    );
    let raws = nfr_ipt::blob::walk_entries(&entries)?;
    let labels = nfr_ipt::entry_map(t);
    for (i, e) in raws.iter().enumerate() {
        let role = labels.get(i).map_or(String::new(), |l| {
            let what = match &l.role {
                nfr_ipt::EntryRole::Rule(n) => format!("rule {}", n + 1),
                nfr_ipt::EntryRole::Policy => "policy".into(),
                nfr_ipt::EntryRole::Return => "return".into(),
                nfr_ipt::EntryRole::ChainHead => "chain head".into(),
                nfr_ipt::EntryRole::TableEnd => "table end".into(),
            };
            format!("{} {what}", if l.chain.is_empty() { "-" } else { &l.chain })
        });
        let h = &e.hdr;
        let ip = &h.ip;
        let _ = writeln!(
            s,
            "@{:<6} entry {i}: {role} (target_offset {}, next_offset {})",
            e.offset, h.target_offset, h.next_offset
        );
        let _ = writeln!(
            s,
            "  ip: src {}/{} dst {}/{} in {:?} out {:?} proto {} flags 0x{:02x} invflags 0x{:02x}",
            ip4(ip.src),
            ip4(ip.smsk),
            ip4(ip.dst),
            ip4(ip.dmsk),
            cname(&ip.iniface),
            cname(&ip.outiface),
            ip.proto,
            ip.flags,
            ip.invflags
        );
        for (name, rev, data) in &e.matches {
            let _ = writeln!(
                s,
                "  match {name} rev {rev} size {}",
                data.len() + nfr_ipt::layout::XT_HDR_SIZE
            );
        }
        let tname = if e.target_name.is_empty() {
            match e.std_verdict() {
                Some(-1) => "standard DROP".to_string(),
                Some(-2) => "standard ACCEPT".to_string(),
                Some(-4) => "standard QUEUE".to_string(),
                Some(-5) => "standard RETURN".to_string(),
                Some(v) => format!("standard -> {v}"),
                None => "standard".to_string(),
            }
        } else if let Some(n) = e.error_name() {
            format!("ERROR {n:?}")
        } else {
            e.target_name.clone()
        };
        let _ = writeln!(
            s,
            "  target {tname} rev {} size {}",
            e.target_revision,
            e.target_data.len() + nfr_ipt::layout::XT_HDR_SIZE
        );
        let end = (e.offset + usize::from(h.next_offset)).min(entries.len());
        hex_line(&mut s, "    ", entries.get(e.offset..end).unwrap_or(&[]));
    }
    Ok(s)
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// An `ipt_replace` blob file (96-byte header + entries).
    blob: PathBuf,
}

/// `nfc verify BLOB`: run the translate_table checks; print `OK` with a summary, or the errno, offset and reason
/// (exit 1).
pub fn verify(a: VerifyArgs) -> anyhow::Result<Outcome> {
    let blob = crate::source::read_capped(&a.blob, crate::source::MAX_BLOB_BYTES)?;
    match nfr_ipt::verify(&blob) {
        Ok(v) => {
            let users = nfr_ipt::decode(&blob).map_or(0, |t| t.user_chains.len());
            front::print_stdout(&format!(
                "{}: OK: table {} valid_hooks 0x{:02x}, {} entries, {} bytes, {} user chains, jump stack {}\n",
                a.blob.display(),
                v.name,
                v.valid_hooks,
                v.entries.len(),
                v.size,
                users,
                v.stacksize
            ))?;
            Ok(Outcome::Ok)
        }
        Err(e) => {
            front::print_stdout(&format!("{}\n", rejection(&a.blob, &e)))?;
            Ok(Outcome::Diagnostics)
        }
    }
}

/// `FILE: rejected: ERRNO (errno N) at WHERE: REASON`, as `nfc verify` prints a blob translate_table refuses.
fn rejection(blob: &Path, e: &nfr_ipt::VerifyError) -> String {
    let at = e
        .offset
        .map_or("header".to_string(), |o| format!("entry at offset {o}"));
    format!(
        "{}: rejected: {:?} (errno {}) at {at}: {}",
        blob.display(),
        e.errno,
        e.errno.code(),
        e.reason
    )
}

/// Output of `nfc decompile`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum DecompileFormat {
    /// iptables-save text.
    #[default]
    Save,
    /// An `.nfr` ruleset.
    Nfr,
}

#[derive(clap::Args, Debug)]
pub struct DecompileArgs {
    /// An `ipt_replace` blob file.
    blob: PathBuf,
    /// Print as iptables-save text or as `.nfr`.
    #[arg(long, value_enum, default_value_t)]
    format: DecompileFormat,
}

/// `nfc decompile BLOB [--format save|nfr]`.
pub fn decompile(a: DecompileArgs) -> anyhow::Result<Outcome> {
    let blob = crate::source::read_capped(&a.blob, crate::source::MAX_BLOB_BYTES)?;
    // only what the kernel would load is printed: a blob translate_table refuses has no meaning to show
    if let Err(e) = nfr_ipt::verify(&blob) {
        eprintln!(
            "nfc: {} (not decompiled; the kernel would refuse this blob)",
            rejection(&a.blob, &e)
        );
        return Ok(Outcome::Diagnostics);
    }
    let t = nfr_ipt::decode(&blob)
        .map_err(|e| anyhow::anyhow!("{}: not a table blob: {e}", a.blob.display()))?;
    let text = match a.format {
        DecompileFormat::Save => nfr_ipt::save(&t, false),
        DecompileFormat::Nfr => tables_to_nfr(std::slice::from_ref(&t))
            .map_err(|e| anyhow::anyhow!("{}: no .nfr form: {e}", a.blob.display()))?,
    };
    front::print_stdout(&text)?;
    Ok(Outcome::Ok)
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The iptables-save / iptables-restore file to import.
    file: PathBuf,
}

/// `nfc import iptables-save FILE`: print the `.nfr` form, or report every line (and every rule) that cannot be
/// imported, as `FILE:LINE: what` (exit 1).
pub fn import(a: ImportArgs) -> anyhow::Result<Outcome> {
    let text = front::read_source(&a.file)?;
    let file = a.file.display();
    if !text.lines().any(|l| l.trim_start().starts_with('*')) {
        anyhow::bail!("{file}: not iptables-save text (no `*filter`-style table line)");
    }
    let (tables, errors) = nfr_ipt::parse_save_all(&text);
    let mut bad: Vec<String> = errors
        .iter()
        .map(|e| format!("{file}:{}: {}", e.line, e.message))
        .collect();
    // A rule that cannot be imported is reported at its `-A` line.
    let lines = rule_lines(&text, &errors.iter().map(|e| e.line).collect::<Vec<_>>());
    let mut nfr = String::new();
    let shared = shared_recent_lists(&tables);
    for (i, t) in tables.iter().enumerate() {
        match table_to_nfr_among(t, &shared) {
            Ok(x) => {
                if i > 0 {
                    nfr.push('\n');
                }
                nfr.push_str(&x);
            }
            Err(e) => bad.extend(e.lines().map(|l| {
                let at = l.split_once(": ").and_then(|(head, _)| {
                    let (chain, n) = head.rsplit_once(" rule ")?;
                    let n: usize = n.parse().ok()?;
                    lines
                        .get(&(t.name.clone(), chain.to_string()))?
                        .get(n.checked_sub(1)?)
                        .copied()
                });
                match at {
                    Some(line) => format!("{file}:{line}: {l}"),
                    None => format!("{file}: {l}"),
                }
            })),
        }
    }
    if !bad.is_empty() {
        for l in &bad {
            eprintln!("{l}");
        }
        eprintln!(
            "{file}: {} line(s) or rule(s) cannot be imported",
            bad.len()
        );
        return Ok(Outcome::Diagnostics);
    }
    front::print_stdout(&nfr)?;
    Ok(Outcome::Ok)
}

/// The line numbers of the `-A CHAIN` lines of iptables-save text, per (table, chain), in order
/// (a rule's number in its chain is its place there), without the lines `skip` (those that did
/// not parse, so are no rules).
fn rule_lines(
    text: &str,
    skip: &[usize],
) -> std::collections::HashMap<(String, String), Vec<usize>> {
    let mut out: std::collections::HashMap<(String, String), Vec<usize>> = Default::default();
    let mut table = String::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim_start();
        if let Some(t) = l.strip_prefix('*') {
            table = t.trim().to_string();
            continue;
        }
        // `[pkts:bytes] -A CHAIN ...` (iptables-save -c) or `-A CHAIN ...`
        let l = match l.strip_prefix('[') {
            Some(rest) => rest.split_once(']').map_or("", |(_, r)| r.trim_start()),
            None => l,
        };
        let mut w = l.split_whitespace();
        if let (Some("-A" | "--append"), Some(chain)) = (w.next(), w.next())
            && !skip.contains(&(i + 1))
        {
            out.entry((table.clone(), chain.to_string()))
                .or_default()
                .push(i + 1);
        }
    }
    out
}

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// The `.nfr` file to compile and load.
    file: PathBuf,
    /// Only this table (iptables or nft name).
    #[arg(long)]
    table: Option<String>,
    /// Colours in diagnostics.
    #[arg(long, value_enum, default_value_t)]
    color: ColorChoice,
}

/// `nfc load FILE`: compile to iptables tables and install each with IPT_SO_SET_REPLACE in the current network
/// namespace (root). As iptables-restore without `-c`: the old counters come back to us and are dropped, the new
/// table starts at zero.
pub fn load(a: LoadArgs) -> anyhow::Result<Outcome> {
    let Some(tables) = lower_file(&a.file, a.table.as_deref(), a.color)? else {
        return Ok(Outcome::Diagnostics);
    };
    let mut failed = false;
    for t in &tables {
        let blob = nfr_ipt::encode(t)?;
        let n = nfr_ipt::entry_map(t).len();
        let old = nfr_ipt::kernel::get_info(&t.name)
            .map(|i| i.num_entries)
            .ok();
        match nfr_ipt::kernel::load(&blob) {
            Ok(()) => front::print_stdout(&format!(
                "table {}: IPT_SO_SET_REPLACE -> OK ({n} entries, {} bytes{})\n",
                t.name,
                blob.len() - nfr_ipt::layout::IPT_REPLACE_SIZE,
                old.map_or(String::new(), |o| format!("; replaced {o} entries"))
            ))?,
            Err(e)
                if std::io::Error::from_raw_os_error(e.errno).kind()
                    == std::io::ErrorKind::PermissionDenied =>
            {
                anyhow::bail!(
                    "cannot load table {}: {e}: nfc load needs root (CAP_NET_ADMIN in this network namespace)",
                    t.name
                );
            }
            Err(e) => {
                failed = true;
                front::print_stdout(&format!("table {}: {e}\n", t.name))?;
            }
        }
    }
    Ok(if failed {
        Outcome::Diagnostics
    } else {
        Outcome::Ok
    })
}
