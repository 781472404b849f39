//! A classic pcap file (libpcap format 2.4, microsecond timestamps, little endian; the bytes come from
//! `nfr_runtime::pcap`) for `--write-accepted` and `--write-dropped`: frames are written as captured, with the
//! link type of the first frame; frames of another link type (possible in pcapng) are counted and left out.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context as _;
use nfr_runtime::pcap::{pcap_header, pcap_record};

/// The snapshot length written in the header; longer frames are cut to it.
const SNAPLEN: u32 = 262_144;

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
        self.out.write_all(&pcap_header(linktype, SNAPLEN))
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
        let caplen = data.len().min(SNAPLEN as usize);
        let r = pcap_record(ts_ns / 1000, orig_len, data.get(..caplen).unwrap_or(data));
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
