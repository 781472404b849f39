//! The FTP helper's parsing half (nf_conntrack_ftp.c): the per-master "sequence just after a newline" memory and
//! the command / reply patterns `PORT`, `EPRT` (original direction) and `227 `, `229 ` (reply direction), with the
//! kernel's exact `find_pattern` / `try_number` / `get_port` rules, each match with where its address/port text
//! sits (`matchoff`, `matchlen`) and its `enum nf_ct_ftp_type`; and `nf_nat_ftp_fmt_cmd`, the text the FTP NAT
//! helper writes there. The expectation half lives in `ct::Conntrack`, the NAT half in `ct::nat_helper`.

use std::net::Ipv6Addr;

/// `NUM_SEQ_TO_REMEMBER`.
const NUM_SEQ: usize = 2;

/// `struct nf_ct_ftp_master`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FtpInfo {
    pub seq_aft_nl: [[u32; NUM_SEQ]; 2],
    pub seq_aft_nl_num: [u8; 2],
}

fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl FtpInfo {
    /// `find_nl_seq`.
    pub fn find_nl_seq(&self, seq: u32, dir: usize) -> bool {
        let n = usize::from(self.seq_aft_nl_num[dir]);
        self.seq_aft_nl[dir].iter().take(n).any(|s| *s == seq)
    }

    /// `update_nl_seq`.
    pub fn update_nl_seq(&mut self, nl_seq: u32, dir: usize) {
        let n = usize::from(self.seq_aft_nl_num[dir]);
        if self.seq_aft_nl[dir].iter().take(n).any(|s| *s == nl_seq) {
            return;
        }
        if n < NUM_SEQ {
            self.seq_aft_nl[dir][n] = nl_seq;
            self.seq_aft_nl_num[dir] += 1;
        } else {
            let oldest = if before(self.seq_aft_nl[dir][0], self.seq_aft_nl[dir][1]) {
                0
            } else {
                1
            };
            if before(self.seq_aft_nl[dir][oldest], nl_seq) {
                self.seq_aft_nl[dir][oldest] = nl_seq;
            }
        }
    }
}

/// A parsed command: address (when the command carries one; IPv4 in the first 4 bytes) and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FtpCmd {
    pub addr: [u8; 16],
    pub port: u16,
}

/// `enum nf_ct_ftp_type`: which command or reply matched, which says how the NAT helper writes it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtpType {
    /// `PORT h1,h2,h3,h4,p1,p2`.
    Port,
    /// `227 ... (h1,h2,h3,h4,p1,p2)`.
    Pasv,
    /// `EPRT |1|a.b.c.d|port|` / `|2|v6|port|`.
    Eprt,
    /// `229 ... (|||port|)`.
    Epsv,
}

/// Outcome of matching a payload: no command, a command (with the offset and length of its address/port text
/// in the payload: `matchoff`, `matchlen`), or a partial / malformed one (the kernel drops it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtpMatch {
    None,
    Found {
        cmd: FtpCmd,
        ty: FtpType,
        off: usize,
        len: usize,
    },
    Partial,
}

/// `try_number`: fills `out`, returns the consumed length or 0.
fn try_number(data: &[u8], out: &mut [u32], sep: u8, term: u8) -> usize {
    out.iter_mut().for_each(|x| *x = 0);
    let n = out.len();
    let mut i = 0usize;
    for (len, &c) in data.iter().enumerate() {
        if i >= n {
            break;
        }
        if c.is_ascii_digit() {
            if let Some(x) = out.get_mut(i) {
                *x = x.wrapping_mul(10).wrapping_add(u32::from(c - b'0'));
            }
        } else if c == sep {
            i += 1;
        } else {
            if (c == term || term == 0) && i == n - 1 {
                return len;
            }
            return 0;
        }
    }
    0
}

/// `try_rfc959`: `h1,h2,h3,h4,p1,p2`.
fn try_rfc959(data: &[u8], cmd: &mut FtpCmd, term: u8) -> usize {
    let mut a = [0u32; 6];
    let len = try_number(data, &mut a, b',', term);
    if len == 0 {
        return 0;
    }
    let ip = (a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3];
    cmd.addr = [0; 16];
    cmd.addr[..4].copy_from_slice(&ip.to_be_bytes());
    cmd.port = ((a[4] << 8) | a[5]) as u16;
    len
}

/// `try_rfc1123`: skip to the first digit (moving `off` past what was skipped), then `try_rfc959` without a
/// terminator.
fn try_rfc1123(data: &[u8], cmd: &mut FtpCmd, off: &mut usize) -> usize {
    let Some(i) = data.iter().position(|c| c.is_ascii_digit()) else {
        return 0;
    };
    *off += i;
    try_rfc959(data.get(i..).unwrap_or(&[]), cmd, 0)
}

/// `get_port`: digits from `start` up to `delim`.
fn get_port(data: &[u8], start: usize, delim: u8, port: &mut u16) -> usize {
    let mut tmp: u16 = 0;
    for i in start..data.len() {
        let c = data.get(i).copied().unwrap_or(0);
        if c == delim {
            if tmp == 0 {
                break;
            }
            *port = tmp;
            return i + 1;
        } else if c.is_ascii_digit() {
            tmp = tmp.wrapping_mul(10).wrapping_add(u16::from(c - b'0'));
        } else {
            break;
        }
    }
    0
}

fn bad_delim(d: u8) -> bool {
    d.is_ascii_digit() || !(33..=126).contains(&d)
}

/// `try_eprt`: `|1|a.b.c.d|port|` or `|2|v6|port|`.
fn try_eprt(data: &[u8], cmd: &mut FtpCmd, ipv6: bool) -> usize {
    if data.len() <= 3 {
        return 0;
    }
    let d = data[0];
    if bad_delim(d) || data[2] != d {
        return 0;
    }
    if (!ipv6 && data[1] != b'1') || (ipv6 && data[1] != b'2') {
        return 0;
    }
    let rest = data.get(3..).unwrap_or(&[]);
    let length = if data[1] == b'1' {
        let mut a = [0u32; 4];
        let l = try_number(rest, &mut a, b'.', d);
        if l != 0 {
            let ip = (a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3];
            cmd.addr = [0; 16];
            cmd.addr[..4].copy_from_slice(&ip.to_be_bytes());
        }
        l
    } else {
        // in6_pton up to the delimiter.
        match rest.iter().position(|c| *c == d) {
            Some(end) => match std::str::from_utf8(rest.get(..end).unwrap_or(&[]))
                .ok()
                .and_then(|s| s.parse::<Ipv6Addr>().ok())
            {
                Some(a) => {
                    cmd.addr = a.octets();
                    end
                }
                None => 0,
            },
            None => 0,
        }
    };
    if length == 0 {
        return 0;
    }
    get_port(data, 3 + length + 1, d, &mut cmd.port)
}

/// `try_epsv_response`: `|||port|`.
fn try_epsv_response(data: &[u8], cmd: &mut FtpCmd) -> usize {
    if data.len() <= 3 {
        return 0;
    }
    let d = data[0];
    if bad_delim(d) || data[1] != d || data[2] != d {
        return 0;
    }
    get_port(data, 3, d, &mut cmd.port)
}

#[derive(Clone, Copy)]
enum Getnum {
    Rfc959,
    Eprt,
    Rfc1123,
    Epsv,
}

/// `find_pattern`: 1 with `numoff`/`numlen` set, 0 (no match) or -1 (partial).
#[allow(clippy::too_many_arguments)]
fn find_pattern(
    data: &[u8],
    pattern: &[u8],
    skip: u8,
    term: u8,
    numoff: &mut usize,
    numlen: &mut usize,
    cmd: &mut FtpCmd,
    g: Getnum,
    ipv6: bool,
) -> i32 {
    let plen = pattern.len();
    let dlen = data.len();
    if dlen <= plen {
        return if data.eq_ignore_ascii_case(pattern.get(..dlen).unwrap_or(&[])) {
            -1
        } else {
            0
        };
    }
    if !data
        .get(..plen)
        .is_some_and(|d| d.eq_ignore_ascii_case(pattern))
    {
        return 0;
    }
    let mut i = plen;
    if skip != 0 {
        loop {
            match data.get(i) {
                Some(c) if *c == skip => break,
                _ => {}
            }
            if i >= dlen - 1 {
                return -1;
            }
            i += 1;
        }
        i += 1;
    }
    let rest = data.get(i..).unwrap_or(&[]);
    *numoff = i;
    *numlen = match g {
        Getnum::Rfc959 => try_rfc959(rest, cmd, term),
        Getnum::Eprt => try_eprt(rest, cmd, ipv6),
        Getnum::Rfc1123 => try_rfc1123(rest, cmd, numoff),
        Getnum::Epsv => try_epsv_response(rest, cmd),
    };
    if *numlen == 0 {
        return -1;
    }
    1
}

/// Matches the `search[dir]` table against a payload. `cmd` must be pre-filled with the sender's address
/// (EPSV replies carry only a port).
pub fn match_command(payload: &[u8], dir: usize, ipv6: bool, mut cmd: FtpCmd) -> FtpMatch {
    let table: [(&[u8], u8, u8, Getnum, FtpType); 2] = if dir == 0 {
        [
            (b"PORT", b' ', b'\r', Getnum::Rfc959, FtpType::Port),
            (b"EPRT", b' ', b'\r', Getnum::Eprt, FtpType::Eprt),
        ]
    } else {
        [
            (b"227 ", 0, 0, Getnum::Rfc1123, FtpType::Pasv),
            (b"229 ", b'(', b')', Getnum::Epsv, FtpType::Epsv),
        ]
    };
    for (pat, skip, term, g, ty) in table {
        let (mut off, mut len) = (0, 0);
        match find_pattern(
            payload, pat, skip, term, &mut off, &mut len, &mut cmd, g, ipv6,
        ) {
            1 => return FtpMatch::Found { cmd, ty, off, len },
            -1 => return FtpMatch::Partial,
            _ => {}
        }
    }
    FtpMatch::None
}

/// `nf_nat_ftp_fmt_cmd`: the address/port text the NAT helper writes in place of the matched one (`%pI6` is
/// the full form: eight groups of four hex digits).
pub fn fmt_cmd(ty: FtpType, ipv6: bool, addr: &[u8; 16], port: u16) -> String {
    match ty {
        FtpType::Port | FtpType::Pasv => format!(
            "{},{},{},{},{},{}",
            addr[0],
            addr[1],
            addr[2],
            addr[3],
            port >> 8,
            port & 0xff
        ),
        FtpType::Eprt if !ipv6 => {
            format!("|1|{}.{}.{}.{}|{port}|", addr[0], addr[1], addr[2], addr[3])
        }
        FtpType::Eprt => {
            let g: Vec<String> = addr
                .chunks_exact(2)
                .map(|w| format!("{:02x}{:02x}", w[0], w[1]))
                .collect();
            format!("|2|{}|{port}|", g.join(":"))
        }
        FtpType::Epsv => format!("|||{port}|"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(a: [u8; 4]) -> FtpCmd {
        let mut addr = [0; 16];
        addr[..4].copy_from_slice(&a);
        FtpCmd { addr, port: 0 }
    }

    fn found(cmd: FtpCmd, ty: FtpType, off: usize, len: usize) -> FtpMatch {
        FtpMatch::Found { cmd, ty, off, len }
    }

    #[test]
    fn port_and_pasv() {
        let m = match_command(b"PORT 10,0,0,1,4,1\r\n", 0, false, base([0; 4]));
        let mut exp = base([10, 0, 0, 1]);
        exp.port = 1025;
        assert_eq!(m, found(exp, FtpType::Port, 5, 12));
        let m = match_command(
            b"227 Entering Passive Mode (199,233,217,249,221,90).\r\n",
            1,
            false,
            base([0; 4]),
        );
        let mut exp = base([199, 233, 217, 249]);
        exp.port = 221 * 256 + 90;
        // matchoff is the first digit (the text skipped to it is not part of the match), matchlen up to `)`.
        assert_eq!(m, found(exp, FtpType::Pasv, 27, 22));
        assert_eq!(
            match_command(b"port 1,2,3,4,5\r\n", 0, false, base([0; 4])),
            FtpMatch::Partial
        );
        assert_eq!(
            match_command(b"POR", 0, false, base([0; 4])),
            FtpMatch::Partial
        );
        assert_eq!(
            match_command(b"USER anonymous\r\n", 0, false, base([0; 4])),
            FtpMatch::None
        );
    }

    #[test]
    fn eprt_and_epsv() {
        let m = match_command(b"EPRT |1|132.235.1.2|6275|\r\n", 0, false, base([0; 4]));
        let mut exp = base([132, 235, 1, 2]);
        exp.port = 6275;
        assert_eq!(m, found(exp, FtpType::Eprt, 5, 20));
        let m = match_command(
            b"EPRT |2|2001:db8::1|5282|\r\n",
            0,
            true,
            FtpCmd {
                addr: [0; 16],
                port: 0,
            },
        );
        let FtpMatch::Found { cmd: c, .. } = m else {
            panic!("{m:?}")
        };
        assert_eq!(c.port, 5282);
        assert_eq!(
            Ipv6Addr::from(c.addr),
            "2001:db8::1".parse::<Ipv6Addr>().unwrap()
        );
        let m = match_command(
            b"229 Entering Extended Passive Mode (|||49374|)\r\n",
            1,
            false,
            base([9, 9, 9, 9]),
        );
        let mut exp = base([9, 9, 9, 9]);
        exp.port = 49374;
        assert_eq!(m, found(exp, FtpType::Epsv, 36, 9));
    }

    /// The NAT helper's text: what the match covered, written for the new address and port.
    #[test]
    fn nat_text_is_the_kernels() {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[198, 51, 100, 1]);
        assert_eq!(fmt_cmd(FtpType::Port, false, &a, 1025), "198,51,100,1,4,1");
        assert_eq!(
            fmt_cmd(FtpType::Pasv, false, &a, 50000),
            "198,51,100,1,195,80"
        );
        assert_eq!(
            fmt_cmd(FtpType::Eprt, false, &a, 6275),
            "|1|198.51.100.1|6275|"
        );
        assert_eq!(fmt_cmd(FtpType::Epsv, false, &a, 49374), "|||49374|");
        let v6 = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets();
        assert_eq!(
            fmt_cmd(FtpType::Eprt, true, &v6, 5282),
            "|2|2001:0db8:0000:0000:0000:0000:0000:0001|5282|"
        );
        // The span of each match is exactly the text fmt_cmd replaces.
        for (line, dir, ty) in [
            (&b"PORT 10,0,0,1,4,1\r\n"[..], 0, FtpType::Port),
            (b"EPRT |1|10.0.0.1|1025|\r\n", 0, FtpType::Eprt),
            (
                b"227 Entering Passive Mode (10,0,0,1,4,1).\r\n",
                1,
                FtpType::Pasv,
            ),
            (
                b"229 Entering Extended Passive Mode (|||1025|)\r\n",
                1,
                FtpType::Epsv,
            ),
        ] {
            let FtpMatch::Found { off, len, .. } = match_command(line, dir, false, base([0; 4]))
            else {
                panic!()
            };
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&[10, 0, 0, 1]);
            assert_eq!(
                &line[off..off + len],
                fmt_cmd(ty, false, &a, 1025).as_bytes()
            );
        }
    }

    #[test]
    fn nl_seq_memory() {
        let mut f = FtpInfo::default();
        assert!(!f.find_nl_seq(10, 0));
        f.update_nl_seq(10, 0);
        f.update_nl_seq(20, 0);
        f.update_nl_seq(30, 0);
        assert!(!f.find_nl_seq(10, 0));
        assert!(f.find_nl_seq(20, 0) && f.find_nl_seq(30, 0));
        assert!(!f.find_nl_seq(20, 1));
    }
}
