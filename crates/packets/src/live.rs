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
    timeout: std::time::Duration,
}

/// How long [`Live::next`] sleeps between looks at a quiet interface.
pub const IDLE_STEP: std::time::Duration = std::time::Duration::from_millis(5);

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
    /// Opens `interface` (promiscuous off, whole frames, immediate mode: each packet
    /// handed over as it arrives), applies the BPF `filter` in the kernel, and waits at
    /// most `timeout_ms` in [`Live::next`].
    ///
    /// The handle is non-blocking and [`Live::next`] waits itself, in steps of
    /// [`IDLE_STEP`]: libpcap's own read timeout is not kept on Linux when nothing
    /// arrives (TPACKET_V3 waits on the kernel's block timer, which never retires an
    /// empty block), so on a quiet interface a blocking read never returned and Ctrl-C
    /// could not be acted on.
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
            .immediate_mode(true)
            .timeout(timeout_ms)
            .open()
            .map_err(other)?
            .setnonblock()
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
            timeout: std::time::Duration::from_millis(timeout_ms.max(0) as u64),
        })
    }

    /// The interface's link type.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// libpcap's counters (`pcap_stats`): packets the kernel received past the filter,
    /// dropped for lack of buffer room, dropped by the interface or its driver.
    ///
    /// # Errors
    ///
    /// libpcap's error.
    pub fn stats(&mut self) -> Result<(u64, u64, u64), LiveError> {
        let s = self
            .capture
            .stats()
            .map_err(|e| classify(&self.interface, &e.to_string()))?;
        Ok((
            u64::from(s.received),
            u64::from(s.dropped),
            u64::from(s.if_dropped),
        ))
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
        let start = std::time::Instant::now();
        loop {
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
                    return Ok(true);
                }
                // Non-blocking: nothing there yet.
                Err(pcap::Error::TimeoutExpired) => {
                    let waited = start.elapsed();
                    if waited >= self.timeout {
                        return Ok(false);
                    }
                    std::thread::sleep(IDLE_STEP.min(self.timeout - waited));
                }
                Err(e) => return Err(classify(&self.interface, &e.to_string()).into()),
            }
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
