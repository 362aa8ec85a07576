//! BPF filters (tcpdump's expressions) compiled by libpcap and run on captured frames,
//! one program per link type, the way a capture with that filter would have kept them.

use rustc_hash::FxHashMap;

use crate::link::LinkType;

/// A filter expression compiled for each link type it meets.
pub struct Filter {
    expression: String,
    programs: FxHashMap<i32, pcap::BpfProgram>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("expression", &self.expression)
            .finish_non_exhaustive()
    }
}

/// libpcap's `DLT_*` number for a link type, as `pcap_open_dead` takes it (raw IP is
/// `DLT_RAW`, 12, not the file format's `LINKTYPE_RAW`, 101, which libpcap refuses).
pub fn link_number(link: LinkType) -> i32 {
    match link {
        LinkType::Null => 0,
        LinkType::Ethernet => 1,
        LinkType::Raw => 12,
        LinkType::Loop => 108,
        LinkType::LinuxSll => 113,
        LinkType::LinuxSll2 => 276,
        LinkType::Other(n) => n,
    }
}

impl Filter {
    /// Checks `expression` by compiling it for Ethernet.
    ///
    /// # Errors
    ///
    /// libpcap's message for an expression it cannot compile.
    pub fn new(expression: &str) -> Result<Filter, String> {
        let mut f = Filter {
            expression: expression.to_string(),
            programs: FxHashMap::default(),
        };
        f.program(link_number(LinkType::Ethernet))?;
        Ok(f)
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    fn program(&mut self, link: i32) -> Result<&pcap::BpfProgram, String> {
        if !self.programs.contains_key(&link) {
            let dead = pcap::Capture::dead(pcap::Linktype(link)).map_err(|e| e.to_string())?;
            let p = dead
                .compile(&self.expression, true)
                .map_err(|e| e.to_string())?;
            self.programs.insert(link, p);
        }
        self.programs
            .get(&link)
            .ok_or_else(|| "no program".to_string())
    }

    /// Whether the frame `data` of link type `link` passes.
    ///
    /// # Errors
    ///
    /// The expression does not compile for this link type (libpcap's message: e.g. an
    /// Ethernet address filter on a raw IP capture).
    pub fn matches(&mut self, link: LinkType, data: &[u8]) -> Result<bool, String> {
        Ok(self.program(link_number(link))?.filter(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raw IPv4 TCP from 10.0.0.1:1000 to 10.0.0.2:`dport`, no payload.
    fn tcp(dport: u16) -> Vec<u8> {
        let mut f = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        f.extend(1000u16.to_be_bytes());
        f.extend(dport.to_be_bytes());
        f.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        f
    }

    #[test]
    fn a_port_filter_keeps_its_port_on_any_link_type() {
        let mut f = Filter::new("tcp port 1883").unwrap();
        assert!(f.matches(LinkType::Raw, &tcp(1883)).unwrap());
        assert!(!f.matches(LinkType::Raw, &tcp(80)).unwrap());
        let mut eth = vec![0u8; 12];
        eth.extend([0x08, 0x00]);
        eth.extend(tcp(1883));
        assert!(f.matches(LinkType::Ethernet, &eth).unwrap());
        assert!(Filter::new("tcp port").unwrap_err().contains("syntax"));
    }
}
