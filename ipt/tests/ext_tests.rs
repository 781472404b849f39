//! iptables' own extension tests (`iptables-ext-tests/*.t` from the shared corpus) for the
//! extensions nfc supports. Each OK rule is parsed into a one-rule table in the test's first
//! chain, encoded, verified, decoded and printed: the printed form must be the test's expected
//! iptables-save form. Each FAIL rule must be refused by `parse_rule` or `verify`. With the
//! kernel oracle, every OK rule is also added with `iptables-legacy -A` in a private network
//! namespace and the kernel's entry must equal ours byte for byte.
//!
//! Ignored when ../shared/corpus is absent (and the kernel part without the kernel oracle).

mod common;
#[path = "../../tests/gate.rs"]
mod gate;

use nfr_ipt::*;
use std::path::PathBuf;

const FILES: [&str; 34] = [
    "libxt_tcp.t",
    "libxt_udp.t",
    "libipt_icmp.t",
    "libxt_conntrack.t",
    "libipt_conntrack.t",
    "libxt_state.t",
    "libxt_multiport.t",
    "libxt_mark.t",
    "libxt_comment.t",
    "libxt_limit.t",
    "libxt_standard.t",
    "libipt_standard.t",
    "libipt_REJECT.t",
    "libipt_LOG.t",
    "libxt_MARK.t",
    "libxt_CONNMARK.t",
    "libxt_CT.t",
    "libxt_NOTRACK.t",
    "libipt_DNAT.t",
    "libipt_SNAT.t",
    "libipt_MASQUERADE.t",
    "libxt_REDIRECT.t",
    "libxt_NFQUEUE.t",
    "libxt_length.t",
    "libipt_iprange.t",
    "libxt_iprange.t",
    "libipt_ttl.t",
    "libxt_pkttype.t",
    "libxt_connmark.t",
    "libxt_dscp.t",
    "libxt_mac.t",
    "libxt_owner.t",
    "libipt_recent.t",
    "libxt_recent.t",
];

/// Lines where the corpus (newer iptables) expects something else than iptables 1.8.9 — the
/// version installed here and our reference — does: `Some(form)` is what 1.8.9's
/// iptables-legacy-save prints, `None` means 1.8.9 (or its kernel) refuses the rule. Each was
/// checked with iptables-legacy.
const IPTABLES_1_8_9: [(&str, usize, Option<&str>); 7] = [
    ("libxt_tcp.t", 10, Some("-p tcp -m tcp")),
    ("libxt_tcp.t", 16, Some("-p tcp -m tcp")),
    ("libxt_udp.t", 10, Some("-p udp -m udp")),
    ("libxt_udp.t", 16, Some("-p udp -m udp")),
    ("libipt_icmp.t", 13, Some("-p icmp -m icmp --icmp-type any")),
    ("libxt_NFQUEUE.t", 12, None),
    (
        "libxt_NFQUEUE.t",
        14,
        Some("-j NFQUEUE --queue-balance 4:65535"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    Ok,
    Fail,
    NoMatch,
}

#[derive(Debug, Clone)]
struct Case {
    line: usize,
    table: String,
    chain: String,
    rule: String,
    save: String,
    res: Res,
}

fn parse_t(text: &str) -> Vec<Case> {
    let mut out = Vec::new();
    let mut table = "filter".to_string();
    let mut chain = "INPUT".to_string();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim_end();
        if l.is_empty() || l.starts_with('#') || l.starts_with('@') || l.starts_with('%') {
            continue;
        }
        if let Some(c) = l.strip_prefix(':') {
            chain = c.split(',').next().unwrap_or("INPUT").to_string();
            continue;
        }
        if let Some(t) = l.strip_prefix('*') {
            table = t.to_string();
            continue;
        }
        let f: Vec<&str> = l.split(';').collect();
        if f.len() < 3 {
            continue;
        }
        let mut res = f[2];
        // RESULT holds for VARIANT only; the other backend (we are legacy) uses ALT_RESULT.
        if f.get(3).is_some_and(|v| *v != "LEGACY") {
            match f.get(4) {
                Some(alt) if *alt != "=" => res = alt,
                Some(_) => {}
                None => continue,
            }
        }
        let res = match res {
            "OK" => Res::Ok,
            "FAIL" => Res::Fail,
            "NOMATCH" => Res::NoMatch,
            _ => continue,
        };
        let save = if f[1] == "=" {
            f[0].to_string()
        } else {
            f[1].to_string()
        };
        out.push(Case {
            line: i + 1,
            table: table.clone(),
            chain: chain.clone(),
            rule: f[0].to_string(),
            save,
            res,
        });
    }
    out
}

/// Our processing of one case: Ok(printed save form) or Err(why it was refused).
fn ours(c: &Case) -> Result<(Rule, String), String> {
    let rule = parse_rule_str(&c.rule).map_err(|e| e.to_string())?;
    parse::check_chain_ifaces(&c.chain, &rule)?;
    let mut t = Table::new(&c.table).ok_or("unknown table")?;
    t.rules_mut(&c.chain).ok_or("no chain")?.push(rule);
    let blob = encode(&t).map_err(|e| e.to_string())?;
    verify(&blob).map_err(|e| e.to_string())?;
    let back = decode(&blob).map_err(|e| e.to_string())?;
    let hook = chain_name_hook(&c.chain).ok_or("no hook")?;
    let r = back
        .builtin(hook)
        .and_then(|b| b.rules.first())
        .ok_or("rule lost")?
        .clone();
    let printed = rule_spec(&r).trim_start().to_string();
    Ok((r, printed))
}

use nfr_ipt::save::rule_spec;

fn extension_tests_print_the_expected_save_form(dir: PathBuf) {
    let mut total = (0, 0);
    let mut failures = Vec::new();
    for f in FILES {
        let text = match std::fs::read_to_string(dir.join(f)) {
            Ok(t) => t,
            Err(_) => {
                eprintln!("SKIP {f}: not in the corpus");
                continue;
            }
        };
        let mut cases = parse_t(&text);
        for c in &mut cases {
            if let Some((_, _, form)) = IPTABLES_1_8_9
                .iter()
                .find(|(file, line, _)| *file == f && *line == c.line)
            {
                match form {
                    Some(form) => c.save = form.to_string(),
                    None => c.res = Res::Fail,
                }
            }
        }
        let (mut ok, mut n) = (0, 0);
        for c in &cases {
            n += 1;
            let r = ours(c);
            let good = match (c.res, &r) {
                (Res::Ok, Ok((_, printed))) => *printed == c.save,
                (Res::NoMatch, Ok(_)) => true,
                (Res::Fail, Err(_)) => true,
                _ => false,
            };
            if good {
                ok += 1;
            } else {
                failures.push(format!(
                    "{f}:{}: `{}` expected {:?} `{}`, got {:?}",
                    c.line,
                    c.rule,
                    c.res,
                    c.save,
                    r.map(|x| x.1)
                ));
            }
        }
        println!("{f}: {ok}/{n}");
        total.0 += ok;
        total.1 += n;
    }
    println!(
        "total: {}/{} rule lines as iptables expects",
        total.0, total.1
    );
    assert!(
        failures.is_empty(),
        "{} lines differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[cfg(feature = "kernel")]
fn extension_tests_match_the_kernel_bytes(dir: PathBuf) {
    use nfr_ipt::kernel;
    use std::process::Command;
    let mut failures = Vec::new();
    let mut total = (0, 0);
    for f in FILES {
        let Ok(text) = std::fs::read_to_string(dir.join(f)) else {
            continue;
        };
        let cases: Vec<Case> = parse_t(&text)
            .into_iter()
            .filter(|c| c.res != Res::Fail)
            .collect();
        let cs = cases.clone();
        // Add each rule with iptables-legacy in one namespace; read the table after each add.
        let kernel_rules = kernel::with_private_netns(move || {
            let mut out = Vec::new();
            for c in &cs {
                let words = parse::tokenize(&c.rule).unwrap_or_default();
                let st = Command::new("iptables-legacy")
                    .args(["-w", "-t", &c.table, "-F"])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false);
                let add = Command::new("iptables-legacy")
                    .args(["-w", "-t", &c.table, "-A", &c.chain])
                    .args(&words)
                    .output();
                let accepted = st && add.map(|o| o.status.success()).unwrap_or(false);
                let rule = if accepted {
                    kernel::get_replace_blob(&c.table)
                        .ok()
                        .and_then(|b| decode(&b).ok())
                        .and_then(|t| {
                            chain_name_hook(&c.chain)
                                .and_then(|h| t.builtin(h))
                                .and_then(|b| b.rules.first().cloned())
                        })
                } else {
                    None
                };
                let saved = Command::new("iptables-legacy-save")
                    .args(["-t", &c.table])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                let line = saved
                    .lines()
                    .find(|l| l.starts_with("-A "))
                    .map(str::to_string);
                out.push(rule.map(|r| (r, line)));
            }
            out
        })
        .unwrap();
        let (mut ok, mut n) = (0, 0);
        for (c, k) in cases.iter().zip(kernel_rules) {
            let Some((k, kline)) = k else {
                println!(
                    "  {f}:{}: iptables-legacy 1.8.9 refuses `{}` (newer syntax); skipped",
                    c.line, c.rule
                );
                continue;
            };
            n += 1;
            match ours(c) {
                Ok((r, printed)) if r == k => {
                    let want = kline.unwrap_or_default();
                    let got = format!("-A {} {printed}", c.chain);
                    if want.trim_end() == got.trim_end() {
                        ok += 1;
                    } else {
                        failures.push(format!(
                            "{f}:{}: save: ours `{got}`, iptables-legacy-save `{want}`",
                            c.line
                        ));
                    }
                }
                Ok((r, _)) => failures.push(format!(
                    "{f}:{}: `{}`: ours {r:?}\nkernel {k:?}",
                    c.line, c.rule
                )),
                Err(e) => failures.push(format!("{f}:{}: `{}`: we refuse it: {e}", c.line, c.rule)),
            }
        }
        println!(
            "{f}: {ok}/{n} rules byte-identical to the kernel's and saved like iptables-legacy-save"
        );
        total.0 += ok;
        total.1 += n;
    }
    println!("total: {}/{} rules byte-identical", total.0, total.1);
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn main() {
    let corpus = || gate::corpus("iptables-ext-tests");
    gate::run(vec![
        gate::needs(
            "extension_tests_print_the_expected_save_form",
            corpus,
            extension_tests_print_the_expected_save_form,
        ),
        #[cfg(feature = "kernel")]
        gate::needs(
            "extension_tests_match_the_kernel_bytes",
            move || {
                common::oracle("iptables-legacy")?;
                corpus()
            },
            extension_tests_match_the_kernel_bytes,
        ),
    ]);
}
