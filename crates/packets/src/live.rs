//! Live capture from a network interface through libpcap (the `pcap` crate), packet by
//! packet as [`Packet`]s, numbered from 1 as a capture file's are.

use crate::link::LinkType;
use crate::reader::Packet;

/// Why an interface could not be captured on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    #[error("--interface {interface}: no such interface (interfaces here: {known})")]
    NoInterface { interface: String, known: String },
    #[error(
        "--interface {interface}: no permission to capture ({reason}); run as root, or give the binary the capabilities: sudo setcap cap_net_raw,cap_net_admin=eip $(command -v iotids)"
    )]
    Permission { interface: String, reason: String },
    #[error("--bpf `{filter}`: {reason}")]
    Filter { filter: String, reason: String },
    #[error("--interface {interface}: {reason}")]
    Capture { interface: String, reason: String },
}

/// An open interface.
pub struct Live {
    interface: String,
    capture: pcap::Capture<pcap::Active>,
    link: LinkType,
    packets: u64,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("interface", &self.interface)
            .field("link", &self.link)
            .field("packets", &self.packets)
            .finish_non_exhaustive()
    }
}

/// The interfaces libpcap lists, comma-separated.
fn interfaces() -> String {
    match pcap::Device::list() {
        Ok(list) if !list.is_empty() => list
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none found".into(),
    }
}

impl Live {
    /// Opens `interface` (promiscuous off, whole frames), reads packets with a
    /// `timeout_ms` wait (libpcap's buffer timeout: without immediate mode, which on Linux
    /// would block without end on a quiet interface), and applies the BPF `filter` in the
    /// kernel.
    ///
    /// # Errors
    ///
    /// No such interface (the known ones listed), no permission (with what to do), a
    /// filter libpcap cannot compile, any other libpcap error.
    pub fn open(interface: &str, filter: Option<&str>, timeout_ms: i32) -> Result<Live, LiveError> {
        let other = |e: pcap::Error| classify(interface, &e.to_string());
        let known = pcap::Device::list()
            .map(|l| l.iter().any(|d| d.name == interface))
            .unwrap_or(true);
        if !known {
            return Err(LiveError::NoInterface {
                interface: interface.into(),
                known: interfaces(),
            });
        }
        let mut capture = pcap::Capture::from_device(interface)
            .map_err(other)?
            .promisc(false)
            .snaplen(262_144)
            .timeout(timeout_ms)
            .open()
            .map_err(other)?;
        if let Some(f) = filter {
            capture.filter(f, true).map_err(|e| LiveError::Filter {
                filter: f.into(),
                reason: e.to_string(),
            })?;
        }
        let link = LinkType::from_number(capture.get_datalink().0);
        Ok(Live {
            interface: interface.into(),
            capture,
            link,
            packets: 0,
        })
    }

    /// The interface's link type.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// Packets read so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Waits for the next packet (at most the timeout) and calls `f` on it; `Ok(false)`
    /// when the timeout passed without one.
    ///
    /// # Errors
    ///
    /// libpcap's error (the interface went away).
    pub fn next<E: From<LiveError>>(
        &mut self,
        f: impl FnOnce(&Packet<'_>) -> Result<(), E>,
    ) -> Result<bool, E> {
        match self.capture.next_packet() {
            Ok(p) => {
                self.packets += 1;
                let packet = Packet {
                    number: self.packets,
                    seconds: p.header.ts.tv_sec,
                    nanos: (p.header.ts.tv_usec as u32).saturating_mul(1000),
                    link: self.link,
                    data: p.data,
                    original_len: p.header.len,
                };
                f(&packet)?;
                Ok(true)
            }
            Err(pcap::Error::TimeoutExpired) => Ok(false),
            Err(e) => Err(classify(&self.interface, &e.to_string()).into()),
        }
    }
}

fn classify(interface: &str, reason: &str) -> LiveError {
    let lower = reason.to_ascii_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        LiveError::Permission {
            interface: interface.into(),
            reason: reason.into(),
        }
    } else if lower.contains("no such device") {
        LiveError::NoInterface {
            interface: interface.into(),
            known: interfaces(),
        }
    } else {
        LiveError::Capture {
            interface: interface.into(),
            reason: reason.into(),
        }
    }
}
