//! The running kernel's ip_tables through its socket options (the only module of nfr-ipt with
//! `unsafe`): `IPT_SO_GET_INFO` / `IPT_SO_GET_ENTRIES` to read a table, `IPT_SO_SET_REPLACE` to
//! load a blob (`load`), and `with_private_netns` to do either inside a fresh network namespace
//! that lives only as long as one thread. What `nfc load` uses; tests use it as the oracle.
//!
//! Needs CAP_NET_ADMIN (and CAP_SYS_ADMIN for the namespace). Errors carry the errno.
#![allow(unsafe_code)]

use crate::layout::*;
use std::fmt;

/// `IPT_SO_SET_REPLACE` / `IPT_SO_GET_INFO`.
pub const IPT_SO_SET_REPLACE: i32 = 64;
/// `IPT_SO_GET_INFO`.
pub const IPT_SO_GET_INFO: i32 = 64;
/// `IPT_SO_GET_ENTRIES`.
pub const IPT_SO_GET_ENTRIES: i32 = 65;

/// A failed kernel call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError {
    /// Which call failed.
    pub op: &'static str,
    /// The errno it returned.
    pub errno: i32,
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.op,
            std::io::Error::from_raw_os_error(self.errno)
        )
    }
}
impl std::error::Error for KernelError {}

fn last_err(op: &'static str) -> KernelError {
    KernelError {
        op,
        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
    }
}

/// `struct ipt_getinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub name: String,
    pub valid_hooks: u32,
    pub hook_entry: [u32; 5],
    pub underflow: [u32; 5],
    pub num_entries: u32,
    pub size: u32,
}

struct Sock(i32);

impl Sock {
    fn raw() -> Result<Sock, KernelError> {
        // SAFETY: plain socket(2) call with constant arguments; the fd is owned by `Sock`.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        if fd < 0 {
            Err(last_err("socket(AF_INET, SOCK_RAW)"))
        } else {
            Ok(Sock(fd))
        }
    }
    fn getsockopt(&self, opt: i32, buf: &mut [u8], op: &'static str) -> Result<usize, KernelError> {
        let mut len = buf.len() as libc::socklen_t;
        // SAFETY: `buf` is a valid, writable buffer of `len` bytes for the whole call and `len`
        // points to a live socklen_t; the kernel writes at most `len` bytes.
        let r = unsafe {
            libc::getsockopt(self.0, libc::SOL_IP, opt, buf.as_mut_ptr().cast(), &mut len)
        };
        if r < 0 {
            Err(last_err(op))
        } else {
            Ok(len as usize)
        }
    }
    fn setsockopt(&self, opt: i32, buf: &[u8], op: &'static str) -> Result<(), KernelError> {
        // SAFETY: `buf` is a valid readable buffer of `buf.len()` bytes for the whole call. Any
        // pointer inside it (the counters pointer of ipt_replace) is set by the caller to a live
        // buffer of the size it announces.
        let r = unsafe {
            libc::setsockopt(
                self.0,
                libc::SOL_IP,
                opt,
                buf.as_ptr().cast(),
                buf.len() as libc::socklen_t,
            )
        };
        if r < 0 { Err(last_err(op)) } else { Ok(()) }
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        // SAFETY: closing an fd this struct owns exactly once.
        unsafe {
            libc::close(self.0);
        }
    }
}

fn name_field(name: &str) -> Result<[u8; XT_TABLE_MAXNAMELEN], KernelError> {
    let b = name.as_bytes();
    if b.len() >= XT_TABLE_MAXNAMELEN {
        return Err(KernelError {
            op: "table name",
            errno: libc::EINVAL,
        });
    }
    let mut f = [0u8; XT_TABLE_MAXNAMELEN];
    f[..b.len()].copy_from_slice(b);
    Ok(f)
}

fn info_from(sock: &Sock, name: &str) -> Result<TableInfo, KernelError> {
    let mut buf = [0u8; 84];
    buf[..32].copy_from_slice(&name_field(name)?);
    sock.getsockopt(IPT_SO_GET_INFO, &mut buf, "getsockopt(IPT_SO_GET_INFO)")?;
    let g = |o: usize| le32(&buf, o).unwrap_or(0);
    let mut hook_entry = [0; 5];
    let mut underflow = [0; 5];
    for h in 0..5 {
        hook_entry[h] = g(36 + 4 * h);
        underflow[h] = g(56 + 4 * h);
    }
    Ok(TableInfo {
        name: name.to_string(),
        valid_hooks: g(32),
        hook_entry,
        underflow,
        num_entries: g(76),
        size: g(80),
    })
}

/// `IPT_SO_GET_INFO` for a table of the current network namespace (instantiates it).
pub fn get_info(name: &str) -> Result<TableInfo, KernelError> {
    info_from(&Sock::raw()?, name)
}

/// `IPT_SO_GET_INFO` + `IPT_SO_GET_ENTRIES`: the table's info and its entries exactly as the
/// kernel returns them (header-name bytes after the NUL are zero: the buffer is zero-filled).
pub fn get_entries(name: &str) -> Result<(TableInfo, Vec<u8>), KernelError> {
    let sock = Sock::raw()?;
    for _ in 0..5 {
        let info = info_from(&sock, name)?;
        let mut buf = vec![0u8; 40 + info.size as usize];
        buf[..32].copy_from_slice(&name_field(name)?);
        buf[32..36].copy_from_slice(&info.size.to_le_bytes());
        match sock.getsockopt(
            IPT_SO_GET_ENTRIES,
            &mut buf,
            "getsockopt(IPT_SO_GET_ENTRIES)",
        ) {
            Ok(_) => return Ok((info, buf.split_off(40))),
            Err(e) if e.errno == libc::EAGAIN => continue,
            Err(e) => return Err(e),
        }
    }
    Err(KernelError {
        op: "getsockopt(IPT_SO_GET_ENTRIES)",
        errno: libc::EAGAIN,
    })
}

/// The table as a complete `ipt_replace` blob (header from GET_INFO, `num_counters` =
/// num_entries), ready for `decode`/`verify`.
pub fn get_replace_blob(name: &str) -> Result<Vec<u8>, KernelError> {
    let (info, entries) = get_entries(name)?;
    let hdr = ReplaceHeader {
        name: name.as_bytes().to_vec(),
        valid_hooks: info.valid_hooks,
        num_entries: info.num_entries,
        size: info.size,
        hook_entry: info.hook_entry,
        underflow: info.underflow,
        num_counters: info.num_entries,
        counters: 0,
    };
    let mut out = hdr.encode();
    out.extend_from_slice(&entries);
    Ok(out)
}

/// Send one IPv4 packet (header included, `IP_HDRINCL`) from a raw socket of the current
/// network namespace, optionally with `SO_MARK`: it takes the local OUTPUT path. An `EPERM`
/// error means netfilter dropped it.
pub fn send_raw_ipv4(pkt: &[u8], mark: Option<u32>) -> Result<(), KernelError> {
    let dst: [u8; 4] = arr(pkt, 16).ok_or(KernelError {
        op: "ipv4 header",
        errno: libc::EINVAL,
    })?;
    let sock = Sock::raw()?;
    if let Some(m) = mark {
        // SAFETY: `m` is a live u32 for the duration of the call and its size is passed.
        let r = unsafe {
            libc::setsockopt(
                sock.0,
                libc::SOL_SOCKET,
                libc::SO_MARK,
                (&m as *const u32).cast(),
                std::mem::size_of::<u32>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(last_err("setsockopt(SO_MARK)"));
        }
    }
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `pkt` is readable for `pkt.len()` bytes and `sa` is a valid sockaddr_in whose
    // size is passed; both outlive the call.
    let r = unsafe {
        libc::sendto(
            sock.0,
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(last_err("sendto(raw)"))
    } else {
        Ok(())
    }
}

/// Send one Ethernet frame out of interface `ifname` with an `AF_PACKET` socket (no netfilter
/// hook on the way out; the peer receives it on its ingress path).
pub fn send_frame(ifname: &str, frame: &[u8]) -> Result<(), KernelError> {
    let name = std::ffi::CString::new(ifname).map_err(|_| KernelError {
        op: "ifname",
        errno: libc::EINVAL,
    })?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(last_err("if_nametoindex"));
    }
    let dst: [u8; 6] = arr(frame, 0).ok_or(KernelError {
        op: "ethernet header",
        errno: libc::EINVAL,
    })?;
    // SAFETY: plain socket(2) call; the fd is owned by `Sock` and closed on drop.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(last_err("socket(AF_PACKET)"));
    }
    let sock = Sock(fd);
    let mut addr = [0u8; 8];
    addr[..6].copy_from_slice(&dst);
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: 0,
        sll_ifindex: ifindex as i32,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: addr,
    };
    // SAFETY: `frame` is readable for `frame.len()` bytes and `sll` is a valid sockaddr_ll whose
    // size is passed; both outlive the call.
    let r = unsafe {
        libc::sendto(
            sock.0,
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(last_err("sendto(AF_PACKET)"))
    } else {
        Ok(())
    }
}

/// Load an `ipt_replace` blob with `IPT_SO_SET_REPLACE` into the current network namespace.
/// `num_counters` is replaced by the live table's entry count and the counters pointer by a
/// buffer of ours, unless `num_counters_override` is given (for tests).
pub fn load_with(blob: &[u8], num_counters_override: Option<u32>) -> Result<(), KernelError> {
    let hdr = ReplaceHeader::parse(blob).ok_or(KernelError {
        op: "ipt_replace header",
        errno: libc::EINVAL,
    })?;
    let name = String::from_utf8_lossy(&hdr.name).into_owned();
    let sock = Sock::raw()?;
    let n = match num_counters_override {
        Some(n) => n,
        None => info_from(&sock, &name)?.num_entries,
    };
    let mut counters = vec![0u8; 16 * (n as usize).max(1)];
    let mut b = blob.to_vec();
    b[84..88].copy_from_slice(&n.to_le_bytes());
    let ptr = counters.as_mut_ptr() as u64;
    b[88..96].copy_from_slice(&ptr.to_le_bytes());
    let r = sock.setsockopt(IPT_SO_SET_REPLACE, &b, "setsockopt(IPT_SO_SET_REPLACE)");
    drop(counters);
    r
}

/// Load a blob (see `load_with`).
pub fn load(blob: &[u8]) -> Result<(), KernelError> {
    load_with(blob, None)
}

/// Run `f` on a new thread that first moves itself into a fresh, private network namespace
/// (`unshare(CLONE_NEWNET)`). Processes `f` spawns inherit it; it disappears when the thread
/// and its children are gone. Never touches the caller's namespace.
pub fn with_private_netns<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, KernelError> {
    let h = std::thread::spawn(move || {
        // SAFETY: unshare(2) only changes this (new, dedicated) thread's network namespace.
        let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        if r < 0 {
            return Err(last_err("unshare(CLONE_NEWNET)"));
        }
        Ok(f())
    });
    h.join().map_err(|_| KernelError {
        op: "netns thread panicked",
        errno: 0,
    })?
}
