//! Link layers: from a captured frame to the network-layer bytes and their EtherType.
//!
//! Ethernet (VLAN tags included) is left to etherparse; Linux cooked captures (SLL v1 and
//! v2), BSD NULL/loopback in both byte orders and raw IP are read here, because
//! etherparse's SLL parser refuses the ARPHRD_LOOPBACK (772) captures MQTTset was
//! recorded on, and pcap-parser reads the NULL family little-endian only.

/// The link types iotids reads (libpcap's `LINKTYPE_*` numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkType {
    /// `LINKTYPE_NULL` (0): a 4-byte address family in the capturing host's byte order.
    Null,
    /// `LINKTYPE_ETHERNET` (1).
    Ethernet,
    /// `LINKTYPE_RAW` (101), `LINKTYPE_IPV4` (228), `LINKTYPE_IPV6` (229): an IP packet.
    Raw,
    /// `LINKTYPE_LOOP` (108): OpenBSD loopback, the address family big-endian.
    Loop,
    /// `LINKTYPE_LINUX_SLL` (113): Linux cooked capture v1, a 16-byte header.
    LinuxSll,
    /// `LINKTYPE_LINUX_SLL2` (276): Linux cooked capture v2, a 20-byte header.
    LinuxSll2,
    /// Any other number: its packets are counted as unsupported, not decoded.
    Other(i32),
}

impl LinkType {
    /// The link type of libpcap's number `n`.
    pub fn from_number(n: i32) -> LinkType {
        match n {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            101 | 228 | 229 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            n => LinkType::Other(n),
        }
    }

    /// Its name, as tshark's `-T fields -e frame.protocols` would start.
    pub fn name(self) -> String {
        match self {
            LinkType::Null => "null".into(),
            LinkType::Ethernet => "ethernet".into(),
            LinkType::Raw => "raw IP".into(),
            LinkType::Loop => "loop".into(),
            LinkType::LinuxSll => "Linux cooked v1".into(),
            LinkType::LinuxSll2 => "Linux cooked v2".into(),
            LinkType::Other(n) => format!("link type {n}"),
        }
    }
}

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// What lies under the link header of a non-Ethernet frame: the network layer's bytes and
/// their EtherType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network<'a> {
    pub ether_type: u16,
    pub payload: &'a [u8],
}

/// Why a frame's link header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("{link} header needs {need} bytes, the frame has {have}")]
    Short {
        link: &'static str,
        need: usize,
        have: usize,
    },
    #[error("address family {family} is neither IPv4 (2) nor IPv6 (10, 24, 28, 30)")]
    Family { family: u32 },
    #[error("raw IP packet of version {version}")]
    IpVersion { version: u8 },
    #[error("{} frames are not read here", link.name())]
    Unsupported { link: LinkType },
}

/// Address families of IPv6 on the systems that write NULL/LOOP captures (Linux 10,
/// NetBSD/OpenBSD 24, FreeBSD 28, macOS 30).
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

/// The network layer of a frame of `link`.
///
/// # Errors
///
/// The frame is shorter than its link header, or names a family or IP version that is
/// neither IPv4 nor IPv6; Ethernet (which etherparse reads with its VLAN tags) and
/// unknown link types are [`LinkError::Unsupported`].
pub fn network(link: LinkType, frame: &[u8]) -> Result<Network<'_>, LinkError> {
    let short = |link, need| LinkError::Short {
        link,
        need,
        have: frame.len(),
    };
    match link {
        LinkType::Null | LinkType::Loop => {
            let head: [u8; 4] = frame
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| short("NULL/loopback", 4))?;
            // NULL is in the writer's byte order: a family is a small number, so the order
            // that gives one below 256 is the right one. LOOP is always big-endian.
            let family = match link {
                LinkType::Loop => u32::from_be_bytes(head),
                _ => {
                    let le = u32::from_le_bytes(head);
                    if le < 256 {
                        le
                    } else {
                        u32::from_be_bytes(head)
                    }
                }
            };
            let ether_type = match family {
                2 => ETHERTYPE_IPV4,
                f if AF_INET6.contains(&f) => ETHERTYPE_IPV6,
                family => return Err(LinkError::Family { family }),
            };
            Ok(Network {
                ether_type,
                payload: &frame[4..],
            })
        }
        LinkType::LinuxSll => {
            // Packet type, ARPHRD type, address length, 8 address bytes, protocol.
            let protocol = frame
                .get(14..16)
                .ok_or_else(|| short("Linux cooked v1", 16))?;
            Ok(Network {
                ether_type: u16::from_be_bytes([protocol[0], protocol[1]]),
                payload: &frame[16..],
            })
        }
        LinkType::LinuxSll2 => {
            // Protocol first, then reserved, interface index, ARPHRD type, packet type,
            // address length and 8 address bytes.
            if frame.len() < 20 {
                return Err(short("Linux cooked v2", 20));
            }
            Ok(Network {
                ether_type: u16::from_be_bytes([frame[0], frame[1]]),
                payload: &frame[20..],
            })
        }
        LinkType::Raw => {
            let first = *frame.first().ok_or_else(|| short("raw IP", 1))?;
            let ether_type = match first >> 4 {
                4 => ETHERTYPE_IPV4,
                6 => ETHERTYPE_IPV6,
                version => return Err(LinkError::IpVersion { version }),
            };
            Ok(Network {
                ether_type,
                payload: frame,
            })
        }
        LinkType::Ethernet | LinkType::Other(_) => Err(LinkError::Unsupported { link }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_reads_the_family_in_either_byte_order() {
        let ip = [0x45u8, 0, 0, 20];
        for head in [[2u8, 0, 0, 0], [0, 0, 0, 2]] {
            let frame = [&head[..], &ip[..]].concat();
            let n = network(LinkType::Null, &frame).unwrap();
            assert_eq!((n.ether_type, n.payload), (ETHERTYPE_IPV4, &ip[..]));
        }
        for head in [[30u8, 0, 0, 0], [0, 0, 0, 24], [10, 0, 0, 0]] {
            let n = network(LinkType::Null, &head).unwrap();
            assert_eq!((n.ether_type, n.payload.len()), (ETHERTYPE_IPV6, 0));
        }
        // LOOP is big-endian whatever the bytes look like.
        let n = network(LinkType::Loop, &[0, 0, 0, 2]).unwrap();
        assert_eq!(n.ether_type, ETHERTYPE_IPV4);
        assert_eq!(
            network(LinkType::Loop, &[2, 0, 0, 0]).unwrap_err(),
            LinkError::Family {
                family: 0x0200_0000
            }
        );
        assert_eq!(
            network(LinkType::Null, &[7, 0, 0, 0]).unwrap_err(),
            LinkError::Family { family: 7 }
        );
        assert_eq!(
            network(LinkType::Null, &[2, 0]).unwrap_err().to_string(),
            "NULL/loopback header needs 4 bytes, the frame has 2"
        );
    }

    #[test]
    fn cooked_headers_give_their_protocol_whatever_the_hardware_type() {
        // MQTTset's SLL v1 header: outgoing (4), ARPHRD_LOOPBACK (772), 6-byte address.
        let mut v1 = vec![0, 4, 0x03, 0x04, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
        v1.extend([0x45, 0]);
        let n = network(LinkType::LinuxSll, &v1).unwrap();
        assert_eq!((n.ether_type, n.payload), (ETHERTYPE_IPV4, &[0x45, 0][..]));
        let mut v2 = vec![0x86, 0xdd, 0, 0, 0, 0, 0, 1, 0x03, 0x04, 0, 6];
        v2.extend([0; 8]);
        v2.push(0x60);
        let n = network(LinkType::LinuxSll2, &v2).unwrap();
        assert_eq!((n.ether_type, n.payload), (ETHERTYPE_IPV6, &[0x60][..]));
        assert!(matches!(
            network(LinkType::LinuxSll, &v1[..15]),
            Err(LinkError::Short {
                need: 16,
                have: 15,
                ..
            })
        ));
        assert!(matches!(
            network(LinkType::LinuxSll2, &v2[..19]),
            Err(LinkError::Short {
                need: 20,
                have: 19,
                ..
            })
        ));
    }

    #[test]
    fn raw_ip_is_told_by_its_version() {
        assert_eq!(
            network(LinkType::Raw, &[0x45]).unwrap().ether_type,
            ETHERTYPE_IPV4
        );
        assert_eq!(
            network(LinkType::Raw, &[0x60]).unwrap().ether_type,
            ETHERTYPE_IPV6
        );
        assert_eq!(
            network(LinkType::Raw, &[0x50]).unwrap_err(),
            LinkError::IpVersion { version: 5 }
        );
        assert!(network(LinkType::Raw, &[]).is_err());
        assert_eq!(
            network(LinkType::Other(147), &[0]).unwrap_err().to_string(),
            "link type 147 frames are not read here"
        );
    }

    #[test]
    fn link_numbers() {
        for (n, l) in [
            (0, LinkType::Null),
            (1, LinkType::Ethernet),
            (101, LinkType::Raw),
            (228, LinkType::Raw),
            (229, LinkType::Raw),
            (108, LinkType::Loop),
            (113, LinkType::LinuxSll),
            (276, LinkType::LinuxSll2),
            (147, LinkType::Other(147)),
        ] {
            assert_eq!(LinkType::from_number(n), l);
        }
    }
}
