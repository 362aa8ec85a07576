//! The simulated network: which hosts exist, which ports and names they use. Flows
//! draw their endpoints and their per-flow choices (MQTT topic, DNS name) from here,
//! so the addresses stay consistent across protocols: the broker that MQTT sensors
//! publish to is the host MQTT brute-forcers attack.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// An IPv4 address.
pub(crate) type Ip = [u8; 4];

pub(crate) const GATEWAY: Ip = [192, 168, 0, 1];
pub(crate) const BROKER: Ip = [192, 168, 0, 128];
pub(crate) const WEB_SERVERS: [Ip; 2] = [[192, 168, 0, 128], [192, 168, 0, 101]];
pub(crate) const PLCS: [Ip; 4] = [
    [192, 168, 0, 152],
    [192, 168, 0, 153],
    [192, 168, 0, 154],
    [192, 168, 0, 155],
];
pub(crate) const ATTACKERS: [Ip; 5] = [
    [192, 168, 0, 170],
    [192, 168, 0, 171],
    [192, 168, 0, 174],
    [192, 168, 0, 176],
    [192, 168, 0, 178],
];

/// An IoT device: 192.168.0.102-127 or .129-150.
pub(crate) fn device(rng: &mut ChaCha8Rng) -> Ip {
    let octet = rng.random_range(102..=149u8);
    [192, 168, 0, if octet >= 128 { octet + 1 } else { octet }]
}

/// A DDoS bot (compromised host outside the device range): 192.168.0.180-254.
pub(crate) fn bot(rng: &mut ChaCha8Rng) -> Ip {
    [192, 168, 0, rng.random_range(180..=254)]
}

/// A DDoS or scan victim: a server or a device.
pub(crate) fn victim(rng: &mut ChaCha8Rng) -> Ip {
    match rng.random_range(0..4) {
        0 => BROKER,
        1 => pick(rng, &WEB_SERVERS),
        2 => pick(rng, &PLCS),
        _ => device(rng),
    }
}

/// A client's source port.
pub(crate) fn ephemeral(rng: &mut ChaCha8Rng) -> u16 {
    rng.random_range(1024..=65535)
}

/// One element of a non-empty table, uniformly.
pub(crate) fn pick<T: Copy>(rng: &mut ChaCha8Rng, table: &[T]) -> T {
    table[rng.random_range(0..table.len())]
}

pub(crate) const BACKDOOR_PORTS: [u16; 6] = [4444, 31337, 5554, 6667, 12345, 1234];
pub(crate) const RANSOMWARE_PORTS: [u16; 6] = [445, 4445, 5555, 9999, 7777, 8443];
pub(crate) const FLOOD_TCP_PORTS: [u16; 6] = [80, 80, 80, 1883, 443, 8080];
pub(crate) const FLOOD_UDP_PORTS: [u16; 6] = [53, 123, 1900, 5353, 161, 5683];
/// Ports nmap's OS detection probes.
pub(crate) const PROBE_PORTS: [u16; 5] = [22, 80, 1883, 502, 443];

/// Names the devices resolve.
pub(crate) const DNS_NAMES: [&str; 8] = [
    "broker.hivemq.com",
    "iot.eclipse.org",
    "time.google.com",
    "pool.ntp.org",
    "api.thingspeak.com",
    "mqtt.eclipseprojects.io",
    "firmware.vendor-iot.com",
    "_mqtt._tcp.local",
];

/// Topics the MQTT sensors publish to, one per sensor flow.
pub(crate) const TOPICS: [&str; 10] = [
    "Temperature_and_Humidity",
    "Heart_Rate",
    "Water_Level",
    "Soil_Moisture",
    "Flame_Sensor",
    "pH_Sensor",
    "Distance",
    "IR_Receiver",
    "Sound_Sensor",
    "Ultrasonic",
];
