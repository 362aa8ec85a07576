//! Decoding a captured frame down to its transport layer: the one checked entry point for
//! a packet's bytes.
//!
//! Decoding is lax, as tshark's dissectors are: a frame cut by the snap length or a header
//! that ends early keeps every layer decoded before the cut, and the cut is reported with
//! its layer ([`Decoded::problem`]) so the caller can count it by packet number.

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};

use crate::link::{self, LinkType};
use crate::reader::Packet;

/// The layer a decoding problem is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    Link,
    Network,
    Transport,
}

impl Layer {
    /// Its name for people.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Link => "link",
            Layer::Network => "network",
            Layer::Transport => "transport",
        }
    }
}

/// A decoded frame: etherparse's views of its layers, and where decoding stopped early.
#[derive(Debug, Clone)]
pub struct Decoded<'a> {
    /// The layers decoded (`None` where the frame holds none or decoding stopped).
    pub sliced: Option<LaxSlicedPacket<'a>>,
    /// A layer that could not be decoded and why; the layers above it are missing.
    pub problem: Option<(Layer, String)>,
}

/// The transport layer of a decoded frame, in short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP: ports and the 12-bit flags field (reserved bits included, as tshark prints
    /// `tcp.flags`).
    Tcp {
        src: u16,
        dst: u16,
        flags: u16,
    },
    Udp {
        src: u16,
        dst: u16,
    },
    Icmpv4 {
        kind: u8,
    },
    Icmpv6 {
        kind: u8,
    },
    /// IGMP or another protocol etherparse decodes but iotids does not read.
    Other,
}

/// Decodes `packet` from its link layer up.
pub fn decode<'a>(packet: &Packet<'a>) -> Decoded<'a> {
    let sliced = match packet.link {
        LinkType::Ethernet => {
            LaxSlicedPacket::from_ethernet(packet.data).map_err(|e| (Layer::Link, e.to_string()))
        }
        LinkType::Other(_) => Err((
            Layer::Link,
            link::LinkError::Unsupported { link: packet.link }.to_string(),
        )),
        link => link::network(link, packet.data)
            .map(|n| LaxSlicedPacket::from_ether_type(EtherType(n.ether_type), n.payload))
            .map_err(|e| (Layer::Link, e.to_string())),
    };
    match sliced {
        Ok(s) => {
            let problem = s.stop_err.as_ref().map(|(e, layer)| {
                let at = match layer {
                    etherparse::err::Layer::Ethernet2Header
                    | etherparse::err::Layer::VlanHeader
                    | etherparse::err::Layer::LinuxSllHeader
                    | etherparse::err::Layer::MacsecHeader => Layer::Link,
                    etherparse::err::Layer::TcpHeader
                    | etherparse::err::Layer::UdpHeader
                    | etherparse::err::Layer::Icmpv4
                    | etherparse::err::Layer::Icmpv6 => Layer::Transport,
                    _ => Layer::Network,
                };
                (at, e.to_string())
            });
            Decoded {
                sliced: Some(s),
                problem,
            }
        }
        Err(problem) => Decoded {
            sliced: None,
            problem: Some(problem),
        },
    }
}

/// A packet's network endpoints, as an alert names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoints {
    pub src: std::net::IpAddr,
    pub dst: std::net::IpAddr,
    /// Ports of TCP and UDP (0 for other protocols).
    pub src_port: u16,
    pub dst_port: u16,
    /// The IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...).
    pub protocol: u8,
}

impl Endpoints {
    /// The protocol as Suricata's EVE names it (`TCP`, `UDP`, `ICMP`, `IPv6-ICMP`, or
    /// the number).
    pub fn protocol_name(&self) -> String {
        match self.protocol {
            6 => "TCP".into(),
            17 => "UDP".into(),
            1 => "ICMP".into(),
            58 => "IPv6-ICMP".into(),
            n => n.to_string(),
        }
    }
}

impl Decoded<'_> {
    /// The outer IP header's addresses, the transport's ports and the protocol; `None`
    /// for a frame without IP (ARP, a frame cut before its IP header).
    pub fn endpoints(&self) -> Option<Endpoints> {
        let s = self.sliced.as_ref()?;
        let (src, dst, protocol) = match s.net.as_ref()? {
            LaxNetSlice::Ipv4(ip) => {
                let h = ip.header();
                (
                    std::net::IpAddr::from(h.source()),
                    std::net::IpAddr::from(h.destination()),
                    h.protocol().0,
                )
            }
            LaxNetSlice::Ipv6(ip) => {
                let h = ip.header();
                (
                    std::net::IpAddr::from(h.source()),
                    std::net::IpAddr::from(h.destination()),
                    ip.payload().ip_number.0,
                )
            }
            LaxNetSlice::Arp(_) => return None,
        };
        let (src_port, dst_port) = match self.transport() {
            Some(Transport::Tcp { src, dst, .. } | Transport::Udp { src, dst }) => (src, dst),
            _ => (0, 0),
        };
        Some(Endpoints {
            src,
            dst,
            src_port,
            dst_port,
            protocol,
        })
    }

    /// Whether the frame is an ARP packet.
    pub fn is_arp(&self) -> bool {
        matches!(
            self.sliced.as_ref().and_then(|s| s.net.as_ref()),
            Some(LaxNetSlice::Arp(_))
        )
    }

    /// The outer IPv4 header's source and destination, when the frame has one.
    pub fn ipv4(&self) -> Option<([u8; 4], [u8; 4])> {
        match self.sliced.as_ref()?.net.as_ref()? {
            LaxNetSlice::Ipv4(ip) => {
                let h = ip.header();
                Some((h.source(), h.destination()))
            }
            _ => None,
        }
    }

    /// The transport layer, when decoded.
    pub fn transport(&self) -> Option<Transport> {
        Some(match self.sliced.as_ref()?.transport.as_ref()? {
            TransportSlice::Tcp(t) => Transport::Tcp {
                src: t.source_port(),
                dst: t.destination_port(),
                flags: tcp_flags(t),
            },
            TransportSlice::Udp(u) => Transport::Udp {
                src: u.source_port(),
                dst: u.destination_port(),
            },
            TransportSlice::Icmpv4(i) => Transport::Icmpv4 { kind: i.type_u8() },
            TransportSlice::Icmpv6(i) => Transport::Icmpv6 { kind: i.type_u8() },
            _ => Transport::Other,
        })
    }
}

/// TCP's 12-bit flags field, reserved bits included, as tshark prints `tcp.flags`.
pub fn tcp_flags(t: &etherparse::TcpSlice<'_>) -> u16 {
    let b = t.slice();
    u16::from_be_bytes([b[12], b[13]]) & 0x0fff
}

/// The UDP datagram of a DNS message (port 53, or mDNS's 5353) with at least its 12-byte
/// header, and whether it is mDNS.
pub fn dns_message<'a>(d: &'a Decoded<'_>) -> Option<(&'a etherparse::UdpSlice<'a>, bool)> {
    let Some(TransportSlice::Udp(u)) = d.sliced.as_ref()?.transport.as_ref() else {
        return None;
    };
    let ports = [u.source_port(), u.destination_port()];
    let mdns = ports.contains(&5353);
    (u.payload().len() >= 12 && (mdns || ports.contains(&53))).then_some((u, mdns))
}

/// Where the IP header of `p` starts in its bytes, and whether it is IPv4; `None` when
/// the frame holds no IP header (ARP, an unknown link type, a frame cut before it).
pub fn ip_header_offset(p: &Packet<'_>) -> Option<(usize, bool)> {
    let d = decode(p);
    let net = d.sliced?.net?;
    let (start, v4) = match &net {
        etherparse::LaxNetSlice::Ipv4(ip) => (ip.header().slice().as_ptr(), true),
        etherparse::LaxNetSlice::Ipv6(ip) => (ip.header().slice().as_ptr(), false),
        etherparse::LaxNetSlice::Arp(_) => return None,
    };
    (start as usize)
        .checked_sub(p.data.as_ptr() as usize)
        .map(|o| (o, v4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_header_offsets() {
        let b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .single_vlan(7.try_into().unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 53);
        let mut v4 = Vec::new();
        b.write(&mut v4, b"x").unwrap();
        // Ethernet 14 + VLAN tag 4.
        assert_eq!(
            ip_header_offset(&packet(LinkType::Ethernet, &v4)),
            Some((18, true))
        );
        assert_eq!(v4[18 + 12..18 + 16], [10, 0, 0, 1]);
        let b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6([1; 16], [2; 16], 64)
            .udp(1000, 53);
        let mut v6 = Vec::new();
        b.write(&mut v6, b"x").unwrap();
        assert_eq!(
            ip_header_offset(&packet(LinkType::Ethernet, &v6)),
            Some((14, false))
        );
        let arp = [0u8; 14];
        assert_eq!(ip_header_offset(&packet(LinkType::Ethernet, &arp)), None);
    }

    fn packet(link: LinkType, data: &[u8]) -> Packet<'_> {
        Packet {
            number: 1,
            seconds: 0,
            nanos: 0,
            link,
            data,
            original_len: data.len() as u32,
        }
    }

    /// IPv4 (10.0.0.1 → 10.0.0.2) carrying a TCP SYN from port 40000 to 1883 with the
    /// reserved bit 0x800 set, 3 payload bytes.
    fn ipv4_tcp() -> Vec<u8> {
        let mut ip = vec![
            0x45, 0, 0, 43, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let tcp = [
            0x9c, 0x40, 0x07, 0x5b, 0, 0, 0, 1, 0, 0, 0, 0, 0x58, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ];
        ip.extend(tcp);
        ip.extend(b"abc");
        ip
    }

    #[test]
    fn every_link_type_reaches_the_same_tcp_header() {
        let ip = ipv4_tcp();
        let mut eth = vec![0u8; 12];
        eth.extend([0x08, 0x00]);
        eth.extend(&ip);
        // 802.1Q: TPID 0x8100, tag, then IPv4.
        let mut vlan = vec![0u8; 12];
        vlan.extend([0x81, 0x00, 0x00, 0x05, 0x08, 0x00]);
        vlan.extend(&ip);
        let mut sll = vec![0, 4, 0x03, 0x04, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
        sll.extend(&ip);
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 1, 0x03, 0x04, 4, 6];
        sll2.extend([0; 8]);
        sll2.extend(&ip);
        let mut null_be = vec![0, 0, 0, 2];
        null_be.extend(&ip);
        let want = Transport::Tcp {
            src: 40000,
            dst: 1883,
            flags: 0x0802,
        };
        for (link, frame) in [
            (LinkType::Ethernet, &eth),
            (LinkType::Ethernet, &vlan),
            (LinkType::LinuxSll, &sll),
            (LinkType::LinuxSll2, &sll2),
            (LinkType::Null, &null_be),
            (LinkType::Raw, &ip),
        ] {
            let d = decode(&packet(link, frame));
            assert_eq!(d.problem, None, "{link:?}");
            assert_eq!(d.transport(), Some(want), "{link:?}");
            assert_eq!(d.ipv4(), Some(([10, 0, 0, 1], [10, 0, 0, 2])));
            assert!(!d.is_arp());
        }
    }

    #[test]
    fn a_cut_frame_keeps_the_layers_before_the_cut() {
        let ip = ipv4_tcp();
        // Cut inside the TCP header: IPv4 decoded, the transport layer reported.
        let d = decode(&packet(LinkType::Raw, &ip[..30]));
        assert_eq!(d.ipv4(), Some(([10, 0, 0, 1], [10, 0, 0, 2])));
        assert_eq!(d.transport(), None);
        assert_eq!(d.problem.as_ref().map(|p| p.0), Some(Layer::Transport));
        // Cut in the payload (a snap length): everything decoded.
        let d = decode(&packet(LinkType::Raw, &ip[..41]));
        assert!(matches!(
            d.transport(),
            Some(Transport::Tcp { dst: 1883, .. })
        ));
        // Too short for an Ethernet header, or an unknown link type: the link layer.
        let d = decode(&packet(LinkType::Ethernet, &[0; 5]));
        assert_eq!(d.problem.as_ref().map(|p| p.0), Some(Layer::Link));
        assert!(d.sliced.is_none());
        let d = decode(&packet(LinkType::Other(147), &ip));
        assert_eq!(
            d.problem,
            Some((Layer::Link, "link type 147 frames are not read here".into()))
        );
    }

    #[test]
    fn arp_udp_and_icmp() {
        let mut arp = vec![0u8; 12];
        arp.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        arp.extend([0; 20]);
        let d = decode(&packet(LinkType::Ethernet, &arp));
        assert!(d.is_arp() && d.transport().is_none() && d.problem.is_none());
        let mut udp = vec![
            0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        udp.extend([0, 53, 0xe0, 0x3a, 0, 8, 0, 0]);
        let d = decode(&packet(LinkType::Raw, &udp));
        assert_eq!(
            d.transport(),
            Some(Transport::Udp {
                src: 53,
                dst: 57402
            })
        );
        let mut icmp = vec![
            0x45, 0, 0, 28, 0, 1, 0, 0, 64, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        icmp.extend([11, 0, 0, 0, 0, 0, 0, 0]);
        let d = decode(&packet(LinkType::Raw, &icmp));
        assert_eq!(d.transport(), Some(Transport::Icmpv4 { kind: 11 }));
    }
}
