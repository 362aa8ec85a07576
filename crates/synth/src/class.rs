//! The 15 classes of Edge-IIoTset and their row counts in the real dataset. The
//! counts set the generated class mix (`quotas`); which flows make up each class is
//! traffic's business (`traffic::class_kinds`).

/// The 15 classes in the order of the Edge-IIoTset paper's Table 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[rustfmt::skip]
pub(crate) enum Class {
    Normal, DdosUdp, DdosIcmp, SqlInjection, Password, VulnerabilityScanner, DdosTcp,
    DdosHttp, Uploading, Backdoor, PortScanning, Xss, Ransomware, Mitm, Fingerprinting,
}

pub(crate) const NCLASSES: usize = 15;

/// Class, name, and row count in the real dataset (the paper's Table 1).
pub(crate) const CLASSES: [(Class, &str, u64); NCLASSES] = [
    (Class::Normal, "Normal", 1_615_643),
    (Class::DdosUdp, "DDoS_UDP", 121_568),
    (Class::DdosIcmp, "DDoS_ICMP", 116_436),
    (Class::SqlInjection, "SQL_injection", 51_203),
    (Class::Password, "Password", 50_153),
    (Class::VulnerabilityScanner, "Vulnerability_scanner", 50_110),
    (Class::DdosTcp, "DDoS_TCP", 50_062),
    (Class::DdosHttp, "DDoS_HTTP", 49_911),
    (Class::Uploading, "Uploading", 37_634),
    (Class::Backdoor, "Backdoor", 24_862),
    (Class::PortScanning, "Port_Scanning", 22_564),
    (Class::Xss, "XSS", 15_915),
    (Class::Ransomware, "Ransomware", 10_925),
    (Class::Mitm, "MITM", 1_214),
    (Class::Fingerprinting, "Fingerprinting", 1_001),
];

impl Class {
    /// The canonical name, as the `Attack_type` column spells it.
    pub(crate) fn name(self) -> &'static str {
        CLASSES[self as usize].1
    }
}
