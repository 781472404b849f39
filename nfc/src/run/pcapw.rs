//! A classic pcap writer (libpcap format 2.4, microsecond timestamps, little endian) for `--write-accepted` and
//! `--write-dropped`: frames are written as captured, with the link type of the first frame; frames of another
//! link type (possible in pcapng) are counted and left out.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context as _;

pub struct PcapWriter {
    out: BufWriter<File>,
    path: String,
    linktype: Option<u16>,
    pub written: u64,
    pub other_linktype: u64,
}

impl PcapWriter {
    pub fn create(path: &Path) -> anyhow::Result<PcapWriter> {
        let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(PcapWriter {
            out: BufWriter::new(f),
            path: path.display().to_string(),
            linktype: None,
            written: 0,
            other_linktype: 0,
        })
    }

    fn header(&mut self, linktype: u16) -> std::io::Result<()> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&262_144u32.to_le_bytes());
        h.extend_from_slice(&u32::from(linktype).to_le_bytes());
        self.out.write_all(&h)
    }

    /// Writes one frame (`ts_ns`: capture time).
    pub fn write(
        &mut self,
        linktype: u16,
        ts_ns: u64,
        orig_len: u32,
        data: &[u8],
    ) -> anyhow::Result<()> {
        match self.linktype {
            None => {
                self.header(linktype)
                    .with_context(|| format!("writing {}", self.path))?;
                self.linktype = Some(linktype);
            }
            Some(l) if l != linktype => {
                self.other_linktype += 1;
                return Ok(());
            }
            Some(_) => {}
        }
        let caplen = data.len().min(262_144);
        let mut r = Vec::with_capacity(16 + caplen);
        r.extend_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
        r.extend_from_slice(&(((ts_ns % 1_000_000_000) / 1000) as u32).to_le_bytes());
        r.extend_from_slice(&(caplen as u32).to_le_bytes());
        r.extend_from_slice(&orig_len.max(caplen as u32).to_le_bytes());
        r.extend_from_slice(data.get(..caplen).unwrap_or(data));
        self.out
            .write_all(&r)
            .with_context(|| format!("writing {}", self.path))?;
        self.written += 1;
        Ok(())
    }

    /// Flushes; an empty file still gets a header (Ethernet) so that readers open it.
    pub fn finish(mut self) -> anyhow::Result<(u64, u64)> {
        if self.linktype.is_none() {
            self.header(1)
                .with_context(|| format!("writing {}", self.path))?;
        }
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path))?;
        Ok((self.written, self.other_linktype))
    }
}
