//! The online flow table: per flow (the ingest's flow id: same endpoints and ports in
//! either direction, as the model's windows are keyed), its endpoints as first seen,
//! packet and byte counts each way and its start, for EVE's `flow` object; bounded, with
//! idle eviction.

use std::net::IpAddr;

use rustc_hash::FxHashMap;

use iotids_packets::Endpoints;

/// One flow's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// EVE's `flow_id`: Suricata's layout (start seconds and microseconds in the high
    /// bits, a hash of the endpoints below), masked to 51 bits.
    pub id: u64,
    /// The endpoints of its first packet: the client sends `toserver`.
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
    pub protocol: u8,
    /// First packet's time (seconds, nanoseconds).
    pub start: (i64, u32),
    /// Last packet's time, seconds.
    pub last_seen: i64,
    pub pkts_toserver: u64,
    pub pkts_toclient: u64,
    pub bytes_toserver: u64,
    pub bytes_toclient: u64,
}

/// Flows by id, at most `capacity`, a flow idle longer than `idle_seconds` evicted.
#[derive(Debug)]
pub struct FlowTable {
    flows: FxHashMap<u32, Flow>,
    capacity: usize,
    idle_seconds: i64,
    /// Packet time of the last sweep for idle flows.
    swept: i64,
    /// Flows evicted so far (idle or for room).
    pub evicted: u64,
    /// Flows ever seen.
    pub seen: u64,
    /// Most flows held at once.
    pub peak: usize,
}

/// Suricata's `flow_id` of a flow starting at `start` with `hash`: `(sec & 0xFFFF) << 48
/// | (usec & 0xFFFF) << 32 | hash`, masked to 51 bits (`FlowGetId`, src/flow.h).
pub fn flow_id(start: (i64, u32), hash: u32) -> u64 {
    let sec = (start.0 as u64) & 0xFFFF;
    let usec = u64::from(start.1 / 1000) & 0xFFFF;
    ((sec << 48) | (usec << 32) | u64::from(hash)) & 0x0007_FFFF_FFFF_FFFF
}

impl FlowTable {
    /// A table of at most `capacity` flows (at least 1) evicting flows idle longer than
    /// `idle_seconds`.
    pub fn new(capacity: usize, idle_seconds: u64) -> FlowTable {
        FlowTable {
            flows: FxHashMap::default(),
            capacity: capacity.max(1),
            idle_seconds: idle_seconds as i64,
            swept: i64::MIN,
            evicted: 0,
            seen: 0,
            peak: 0,
        }
    }

    /// Flows held.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no flow is held.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Counts a packet of `len` bytes at `time` in flow `key`, created from `ends` if new;
    /// returns the flow and the flows evicted to make room (their keys).
    pub fn packet(
        &mut self,
        key: u32,
        ends: Option<&Endpoints>,
        time: (i64, u32),
        len: u64,
        evicted: &mut Vec<u32>,
    ) -> &Flow {
        if time.0 >= self.swept.saturating_add(self.idle_seconds.max(1)) {
            self.sweep(time.0, evicted);
        }
        if !self.flows.contains_key(&key) {
            if self.flows.len() >= self.capacity {
                // Room: the least recently seen flow goes.
                if let Some((&old, _)) = self.flows.iter().min_by_key(|(k, f)| (f.last_seen, **k)) {
                    self.flows.remove(&old);
                    evicted.push(old);
                    self.evicted += 1;
                }
            }
            let (client, server, protocol, hash) = match ends {
                Some(e) => (
                    (e.src, e.src_port),
                    (e.dst, e.dst_port),
                    e.protocol,
                    endpoint_hash(e),
                ),
                None => {
                    let none = IpAddr::from([0u8, 0, 0, 0]);
                    ((none, 0), (none, 0), 0, key)
                }
            };
            self.seen += 1;
            self.flows.insert(
                key,
                Flow {
                    id: flow_id(time, hash),
                    client,
                    server,
                    protocol,
                    start: time,
                    last_seen: time.0,
                    pkts_toserver: 0,
                    pkts_toclient: 0,
                    bytes_toserver: 0,
                    bytes_toclient: 0,
                },
            );
            self.peak = self.peak.max(self.flows.len());
        }
        let Some(f) = self.flows.get_mut(&key) else {
            unreachable!("inserted above")
        };
        f.last_seen = f.last_seen.max(time.0);
        let toserver = ends.is_none_or(|e| (e.src, e.src_port) == f.client);
        if toserver {
            f.pkts_toserver += 1;
            f.bytes_toserver += len;
        } else {
            f.pkts_toclient += 1;
            f.bytes_toclient += len;
        }
        f
    }

    /// Evicts the flows idle for longer than the timeout at `now`.
    fn sweep(&mut self, now: i64, evicted: &mut Vec<u32>) {
        self.swept = now;
        let limit = now.saturating_sub(self.idle_seconds);
        let before = self.flows.len();
        self.flows.retain(|k, f| {
            let keep = f.last_seen >= limit;
            if !keep {
                evicted.push(*k);
            }
            keep
        });
        self.evicted += (before - self.flows.len()) as u64;
    }
}

/// A hash of the endpoints the same both ways (Suricata's flow hash is too).
fn endpoint_hash(e: &Endpoints) -> u32 {
    let a = (e.src, e.src_port);
    let b = (e.dst, e.dst_port);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let text = format!("{}|{}|{}|{}|{}", lo.0, lo.1, hi.0, hi.1, e.protocol);
    xxhash_rust::xxh3::xxh3_64(text.as_bytes()) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(a: u8, pa: u16, b: u8, pb: u16) -> Endpoints {
        Endpoints {
            src: IpAddr::from([10, 0, 0, a]),
            dst: IpAddr::from([10, 0, 0, b]),
            src_port: pa,
            dst_port: pb,
            protocol: 6,
        }
    }

    #[test]
    fn flow_id_is_suricatas_layout() {
        // sec 0x1_0002 keeps 0x0002, usec 3 -> 3, hash 7.
        assert_eq!(
            flow_id((0x1_0002, 3_000), 7),
            (2 << 48 | 3 << 32 | 7) & ((1 << 51) - 1)
        );
        assert!(flow_id((i64::MAX, 999_999_999), u32::MAX) < 1 << 51);
    }

    #[test]
    fn counts_each_way_and_evicts_idle_and_least_recent_flows() {
        let mut t = FlowTable::new(2, 60);
        let mut ev = Vec::new();
        t.packet(1, Some(&ends(1, 1000, 2, 80)), (100, 0), 60, &mut ev);
        let f = t
            .packet(1, Some(&ends(2, 80, 1, 1000)), (101, 0), 1500, &mut ev)
            .clone();
        assert_eq!((f.pkts_toserver, f.pkts_toclient), (1, 1));
        assert_eq!((f.bytes_toserver, f.bytes_toclient), (60, 1500));
        assert_eq!(f.start, (100, 0));
        assert_eq!(
            f.id,
            t.packet(1, None, (102, 0), 1, &mut ev).id,
            "stable id"
        );
        t.packet(2, Some(&ends(3, 1, 2, 80)), (103, 0), 1, &mut ev);
        assert!(ev.is_empty());
        // Full: a third flow evicts the least recently seen (1 at 102 vs 2 at 103).
        t.packet(3, Some(&ends(4, 1, 2, 80)), (104, 0), 1, &mut ev);
        assert_eq!(ev, [1]);
        // 61 s later both others are idle.
        ev.clear();
        t.packet(4, Some(&ends(5, 1, 2, 80)), (170, 0), 1, &mut ev);
        ev.sort();
        assert_eq!(ev, [2, 3]);
        assert_eq!((t.len(), t.seen, t.evicted, t.peak), (1, 4, 3, 2));
    }
}
