//! Reading capture files: legacy pcap (microsecond or nanosecond, either byte order) and
//! pcapng (several sections and interfaces, each with its link type and timestamp
//! resolution), streamed through a fixed buffer with pcap-parser.

use std::fs::File;
use std::path::{Path, PathBuf};

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError, create_reader};

use crate::link::LinkType;

/// Bytes of the read buffer; a block larger than this (a frame over 1 MiB) is an error.
const BUFFER: usize = 1 << 20;

/// One captured frame, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// 1 for the file's first packet, as tshark's `frame.number`.
    pub number: u64,
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Nanoseconds into that second.
    pub nanos: u32,
    /// The link type of the interface it was captured on.
    pub link: LinkType,
    /// The captured bytes (fewer than `original_len` when the snap length cut it).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub original_len: u32,
}

/// A capture file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a pcap or pcapng file ({reason})", path.display())]
    Format { path: PathBuf, reason: String },
    #[error("{}: byte {offset}, after packet {packet}: {reason}", path.display())]
    Block {
        path: PathBuf,
        offset: u64,
        packet: u64,
        reason: String,
    },
    #[error("{}: packet {packet} names interface {interface}, the section describes {described}", path.display())]
    Interface {
        path: PathBuf,
        packet: u64,
        interface: u32,
        described: usize,
    },
}

/// An interface of a pcapng section: its link type and how its timestamps are counted.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link: LinkType,
    /// Timestamp units per second.
    resolution: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset: i64,
}

/// A capture file read packet by packet.
pub struct CaptureReader {
    path: PathBuf,
    inner: Box<dyn PcapReaderIterator + Send>,
    /// Legacy pcap: the link type and whether timestamps are in nanoseconds.
    legacy: Option<(LinkType, bool)>,
    /// pcapng: the interfaces of the current section.
    interfaces: Vec<Interface>,
    packets: u64,
    offset: u64,
}

impl CaptureReader {
    /// Opens `path`, telling pcap from pcapng by its first bytes.
    ///
    /// # Errors
    ///
    /// The file cannot be opened, or begins with neither format's magic number.
    pub fn open(path: &Path) -> Result<CaptureReader, ReadError> {
        let file = File::open(path).map_err(|source| ReadError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let inner = create_reader(BUFFER, file).map_err(|e| ReadError::Format {
            path: path.to_path_buf(),
            reason: match e {
                PcapError::Eof => "the file is empty".into(),
                PcapError::HeaderNotRecognized => "unknown magic number".into(),
                e => format!("{e:?}"),
            },
        })?;
        Ok(CaptureReader {
            path: path.to_path_buf(),
            inner,
            legacy: None,
            interfaces: Vec::new(),
            packets: 0,
            offset: 0,
        })
    }

    /// The path it reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Packets read so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Calls `f` on every packet in file order.
    ///
    /// # Errors
    ///
    /// A block the reader cannot parse (its byte offset and the last good packet named), a
    /// packet of an interface its section did not describe, or `f`'s own error.
    pub fn for_each<E: From<ReadError>>(
        &mut self,
        mut f: impl FnMut(&Packet<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        loop {
            let (used, packet) = match self.inner.next() {
                Ok((used, block)) => {
                    let packet = match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            self.legacy = Some((
                                LinkType::from_number(h.network.0),
                                h.is_nanosecond_precision(),
                            ));
                            None
                        }
                        PcapBlockOwned::Legacy(b) => {
                            let (link, nanosecond) =
                                self.legacy.unwrap_or((LinkType::Ethernet, false));
                            self.packets += 1;
                            Some(Packet {
                                number: self.packets,
                                seconds: i64::from(b.ts_sec),
                                nanos: if nanosecond {
                                    b.ts_usec
                                } else {
                                    b.ts_usec * 1000
                                },
                                link,
                                data: b.data,
                                original_len: b.origlen,
                            })
                        }
                        PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                            self.interfaces.clear();
                            None
                        }
                        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                            self.interfaces.push(Interface {
                                link: LinkType::from_number(idb.linktype.0),
                                resolution: idb.ts_resolution().unwrap_or(1_000_000),
                                offset: idb.ts_offset(),
                            });
                            None
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            self.packets += 1;
                            let Some(&i) = self.interfaces.get(epb.if_id as usize) else {
                                return Err(ReadError::Interface {
                                    path: self.path.clone(),
                                    packet: self.packets,
                                    interface: epb.if_id,
                                    described: self.interfaces.len(),
                                }
                                .into());
                            };
                            let (seconds, nanos) = timestamp(epb.ts_high, epb.ts_low, i);
                            Some(Packet {
                                number: self.packets,
                                seconds,
                                nanos,
                                link: i.link,
                                data: &epb.data[..(epb.caplen as usize).min(epb.data.len())],
                                original_len: epb.origlen,
                            })
                        }
                        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                            // No timestamp and always the first interface.
                            self.packets += 1;
                            let link = self
                                .interfaces
                                .first()
                                .map_or(LinkType::Ethernet, |i| i.link);
                            Some(Packet {
                                number: self.packets,
                                seconds: 0,
                                nanos: 0,
                                link,
                                data: &spb.data[..(spb.origlen as usize).min(spb.data.len())],
                                original_len: spb.origlen,
                            })
                        }
                        PcapBlockOwned::NG(_) => None,
                    };
                    (used, packet)
                }
                Err(PcapError::Eof) => return Ok(()),
                Err(PcapError::Incomplete(_)) => {
                    if let Err(e) = self.inner.refill() {
                        let reason = describe(&e);
                        return Err(self.block_error(reason).into());
                    }
                    continue;
                }
                Err(e) => {
                    let reason = describe(&e);
                    return Err(self.block_error(reason).into());
                }
            };
            if let Some(p) = packet {
                f(&p)?;
            }
            self.inner.consume(used);
            self.offset += used as u64;
        }
    }

    fn block_error(&self, reason: String) -> ReadError {
        ReadError::Block {
            path: self.path.clone(),
            offset: self.offset,
            packet: self.packets,
            reason,
        }
    }
}

/// What went wrong with a block, for people.
fn describe(e: &PcapError<&[u8]>) -> String {
    match e {
        PcapError::UnexpectedEof | PcapError::Incomplete(_) => {
            "the file ends inside a block (cut short?)".into()
        }
        PcapError::BufferTooSmall => format!("a block larger than {BUFFER} bytes"),
        PcapError::ReadError => "read error".into(),
        PcapError::NomError(_, kind) => format!("malformed block ({kind:?})"),
        e => format!("{e:?}"),
    }
}

/// A pcapng timestamp (64 bits in `resolution` units since the epoch, plus the
/// interface's offset in seconds) as seconds and nanoseconds.
fn timestamp(high: u32, low: u32, i: Interface) -> (i64, u32) {
    let units = (u64::from(high) << 32) | u64::from(low);
    let seconds = (units / i.resolution) as i64 + i.offset;
    let frac = units % i.resolution;
    let nanos = (u128::from(frac) * 1_000_000_000 / u128::from(i.resolution)) as u32;
    (seconds, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(nanosecond: bool, link: u32, frames: &[(u32, u32, &[u8], u32)]) -> Vec<u8> {
        let magic: u32 = if nanosecond { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut out = Vec::new();
        out.extend(magic.to_le_bytes());
        out.extend(2u16.to_le_bytes());
        out.extend(4u16.to_le_bytes());
        out.extend([0; 8]);
        out.extend(65535u32.to_le_bytes());
        out.extend(link.to_le_bytes());
        for (s, frac, data, orig) in frames {
            out.extend(s.to_le_bytes());
            out.extend(frac.to_le_bytes());
            out.extend((data.len() as u32).to_le_bytes());
            out.extend(orig.to_le_bytes());
            out.extend(*data);
        }
        out
    }

    /// A packet's number, seconds, nanoseconds, link type, bytes and original length.
    type Read = (u64, i64, u32, LinkType, Vec<u8>, u32);

    fn read(bytes: &[u8]) -> Result<Vec<Read>, ReadError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pcap");
        std::fs::write(&path, bytes).unwrap();
        let mut r = CaptureReader::open(&path)?;
        let mut out = Vec::new();
        r.for_each(|p| {
            out.push((
                p.number,
                p.seconds,
                p.nanos,
                p.link,
                p.data.to_vec(),
                p.original_len,
            ));
            Ok::<_, ReadError>(())
        })?;
        Ok(out)
    }

    #[test]
    fn legacy_pcap_in_micro_and_nanoseconds() {
        let frames: [(u32, u32, &[u8], u32); 2] = [(10, 5, b"ab", 2), (11, 999_999, b"cde", 60)];
        let us = read(&legacy(false, 113, &frames)).unwrap();
        assert_eq!(
            us,
            vec![
                (1, 10, 5_000, LinkType::LinuxSll, b"ab".to_vec(), 2),
                (2, 11, 999_999_000, LinkType::LinuxSll, b"cde".to_vec(), 60),
            ]
        );
        let ns = read(&legacy(true, 0, &frames)).unwrap();
        assert_eq!((ns[0].2, ns[1].2, ns[0].3), (5, 999_999, LinkType::Null));
    }

    #[test]
    fn bad_files_name_the_file_and_the_place() {
        let e = read(b"not a capture at all").unwrap_err().to_string();
        assert!(
            e.ends_with("c.pcap: not a pcap or pcapng file (unknown magic number)"),
            "{e}"
        );
        let e = read(b"").unwrap_err().to_string();
        assert!(
            e.ends_with("not a pcap or pcapng file (the file is empty)"),
            "{e}"
        );
        // A file cut inside its second frame: the first packet is read, then an error at
        // the second frame's byte offset.
        let whole = legacy(false, 1, &[(1, 0, b"abcd", 4), (2, 0, b"efgh", 4)]);
        let cut = &whole[..whole.len() - 2];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.pcap");
        std::fs::write(&path, cut).unwrap();
        let mut r = CaptureReader::open(&path).unwrap();
        let mut seen = 0;
        let e = r
            .for_each(|_| {
                seen += 1;
                Ok::<_, ReadError>(())
            })
            .unwrap_err();
        assert_eq!(seen, 1);
        assert!(
            matches!(
                e,
                ReadError::Block {
                    offset: 44,
                    packet: 1,
                    ..
                }
            ),
            "{e}"
        );
    }

    /// A pcapng block: type, total length, body padded to 4 bytes, total length.
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut padded = body.to_vec();
        padded.resize(body.len().div_ceil(4) * 4, 0);
        let len = (padded.len() + 12) as u32;
        let mut out = kind.to_le_bytes().to_vec();
        out.extend(len.to_le_bytes());
        out.extend(padded);
        out.extend(len.to_le_bytes());
        out
    }

    fn section() -> Vec<u8> {
        let mut body = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        body.extend(1u16.to_le_bytes());
        body.extend(0u16.to_le_bytes());
        body.extend((-1i64).to_le_bytes());
        block(0x0a0d_0d0a, &body)
    }

    fn interface(link: u16, tsresol: Option<u8>) -> Vec<u8> {
        let mut body = link.to_le_bytes().to_vec();
        body.extend([0, 0]);
        body.extend(65535u32.to_le_bytes());
        if let Some(r) = tsresol {
            body.extend(9u16.to_le_bytes());
            body.extend(1u16.to_le_bytes());
            body.extend([r, 0, 0, 0]);
            body.extend([0, 0, 0, 0]);
        }
        block(1, &body)
    }

    fn enhanced(interface: u32, units: u64, data: &[u8]) -> Vec<u8> {
        let mut body = interface.to_le_bytes().to_vec();
        body.extend(((units >> 32) as u32).to_le_bytes());
        body.extend((units as u32).to_le_bytes());
        body.extend((data.len() as u32).to_le_bytes());
        body.extend((data.len() as u32 + 10).to_le_bytes());
        body.extend(data);
        block(6, &body)
    }

    #[test]
    fn pcapng_with_two_interfaces_of_other_link_types_and_resolutions() {
        let mut file = section();
        file.extend(interface(1, None)); // Ethernet, microseconds (the default)
        file.extend(interface(113, Some(9))); // Linux cooked v1, nanoseconds
        file.extend(enhanced(1, 1_500_000_000_123_456_789, b"xyz"));
        file.extend(enhanced(0, 1_500_000_000_654_321, b"abcde"));
        let packets = read(&file).unwrap();
        assert_eq!(
            packets,
            vec![
                (
                    1,
                    1_500_000_000,
                    123_456_789,
                    LinkType::LinuxSll,
                    b"xyz".to_vec(),
                    13
                ),
                (
                    2,
                    1_500_000_000,
                    654_321_000,
                    LinkType::Ethernet,
                    b"abcde".to_vec(),
                    15
                ),
            ]
        );
        // A new section forgets the interfaces of the last: a packet naming one is an
        // error that names it.
        file.extend(section());
        file.extend(interface(0, None));
        file.extend(enhanced(1, 0, b"q"));
        let e = read(&file).unwrap_err().to_string();
        assert!(
            e.ends_with("c.pcap: packet 3 names interface 1, the section describes 1"),
            "{e}"
        );
    }

    #[test]
    fn pcapng_timestamps_follow_the_interface_resolution() {
        let us = Interface {
            link: LinkType::Ethernet,
            resolution: 1_000_000,
            offset: 0,
        };
        let units: u64 = 1_278_798_210_035_265;
        assert_eq!(
            timestamp((units >> 32) as u32, units as u32, us),
            (1_278_798_210, 35_265_000)
        );
        let ns = Interface {
            resolution: 1_000_000_000,
            offset: 5,
            ..us
        };
        assert_eq!(timestamp(0, 1_500_000_001, ns), (6, 500_000_001));
    }
}
