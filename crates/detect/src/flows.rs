//! The online flow table: per flow (the ingest's flow id: same endpoints and ports in
//! either direction, as the model's windows are keyed), its endpoints as first seen,
//! packet and byte counts each way and its start, for EVE's `flow` object, and its alert
//! thresholds (one [`ClassAlerts`] per class alerted on); bounded, with idle eviction: a
//! flow's state, thresholds included, goes with it, so memory stays bounded.

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
    /// Alert state per decided class alerted on in this flow (few: a flow's windows are
    /// judged one or two classes).
    pub alerts: Vec<ClassAlerts>,
}

/// One (flow, class)'s alerts: Suricata's `threshold: type limit, track by_flow, count 1,
/// seconds N` state, and what the report shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassAlerts {
    /// The decided class (an index into the engine's decision classes).
    pub class: u16,
    /// Packet time (nanoseconds since 1970) of the last EVE line written.
    pub window_start: i128,
    /// Packets judged this class since the last line (the next line's
    /// `packets_since_last` counts these and its own).
    pub since_last: u64,
    /// EVE lines written.
    pub lines: u64,
    /// Packets judged this class (written or suppressed).
    pub judged: u64,
    /// First and last packet judged this class.
    pub first: (i64, u32),
    pub last: (i64, u32),
}

/// Nanoseconds since 1970 of a packet time.
pub fn nanos(t: (i64, u32)) -> i128 {
    i128::from(t.0) * 1_000_000_000 + i128::from(t.1)
}

impl Flow {
    /// Counts a packet judged `class` at `time` and says whether it gets an EVE line: the
    /// first of the flow's packets judged `class`, then the first at least `interval`
    /// seconds after the last line (0: every packet). Returns the packets judged `class`
    /// since the previous line, this one included, when it does.
    pub fn judge(&mut self, class: u16, time: (i64, u32), interval: u64) -> Option<u64> {
        let t = nanos(time);
        let i = match self.alerts.iter().position(|a| a.class == class) {
            Some(i) => i,
            None => {
                self.alerts.push(ClassAlerts {
                    class,
                    window_start: i128::MIN,
                    since_last: 0,
                    lines: 0,
                    judged: 0,
                    first: time,
                    last: time,
                });
                self.alerts.len() - 1
            }
        };
        let a = &mut self.alerts[i];
        a.judged += 1;
        a.since_last += 1;
        a.last = a.last.max(time);
        a.first = a.first.min(time);
        let due = a.lines == 0
            || interval == 0
            || t.saturating_sub(a.window_start) >= i128::from(interval) * 1_000_000_000;
        if !due {
            return None;
        }
        a.window_start = t;
        a.lines += 1;
        Some(std::mem::take(&mut a.since_last))
    }

    /// Packets judged an alert class in this flow.
    pub fn alert_packets(&self) -> u64 {
        self.alerts.iter().map(|a| a.judged).sum()
    }
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
    /// Flows ever seen by IP protocol: TCP, UDP, ICMP, ICMPv6 (EVE stats' `flow.tcp`...).
    pub by_protocol: [u64; 4],
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
            by_protocol: [0; 4],
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

    /// The flows held, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&u32, &Flow)> {
        self.flows.iter()
    }

    /// Counts a packet of `len` bytes at `time` in flow `key`, created from `ends` if new;
    /// returns the flow, and adds the flows evicted (idle, or to make room) to `evicted`
    /// with their keys.
    pub fn packet(
        &mut self,
        key: u32,
        ends: Option<&Endpoints>,
        time: (i64, u32),
        len: u64,
        evicted: &mut Vec<(u32, Flow)>,
    ) -> &mut Flow {
        if time.0 >= self.swept.saturating_add(self.idle_seconds.max(1)) {
            self.sweep(time.0, evicted);
        }
        if !self.flows.contains_key(&key) {
            if self.flows.len() >= self.capacity {
                // Room: the least recently seen flow goes.
                if let Some((&old, _)) = self.flows.iter().min_by_key(|(k, f)| (f.last_seen, **k))
                    && let Some(f) = self.flows.remove(&old)
                {
                    evicted.push((old, f));
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
            if let Some(i) = [6u8, 17, 1, 58].iter().position(|p| *p == protocol) {
                self.by_protocol[i] += 1;
            }
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
                    alerts: Vec::new(),
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
    fn sweep(&mut self, now: i64, evicted: &mut Vec<(u32, Flow)>) {
        self.swept = now;
        let limit = now.saturating_sub(self.idle_seconds);
        let before = evicted.len();
        evicted.extend(self.flows.extract_if(|_, f| f.last_seen < limit));
        self.evicted += (evicted.len() - before) as u64;
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
        let keys = |ev: &[(u32, Flow)]| {
            let mut k: Vec<u32> = ev.iter().map(|(k, _)| *k).collect();
            k.sort();
            k
        };
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
        assert_eq!(keys(&ev), [1]);
        assert_eq!(
            ev[0].1.pkts_toserver, 2,
            "the evicted flow's state goes with it"
        );
        // 61 s later both others are idle.
        ev.clear();
        t.packet(4, Some(&ends(5, 1, 2, 80)), (170, 0), 1, &mut ev);
        assert_eq!(keys(&ev), [2, 3]);
        assert_eq!((t.len(), t.seen, t.evicted, t.peak), (1, 4, 3, 2));
        assert_eq!(t.by_protocol, [4, 0, 0, 0]);
    }

    #[test]
    fn thresholds_one_line_per_flow_and_class_per_interval() {
        let mut t = FlowTable::new(4, 600);
        let mut ev = Vec::new();
        let f = t.packet(1, Some(&ends(1, 1000, 2, 80)), (100, 0), 60, &mut ev);
        // A flood: a packet every 100 ms for 10 s (100 packets, 100.0 to 109.9 s), the
        // ones at whole seconds judged class 1, the others class 0; a 3 s interval.
        let mut lines = Vec::new();
        for i in 0..100u32 {
            let time = (100 + i64::from(i / 10), (i % 10) * 100_000_000);
            let class = if i % 10 == 0 { 1 } else { 0 };
            if let Some(n) = f.judge(class, time, 3) {
                lines.push((class, time.0, n));
            }
        }
        // Class 0 (90 packets): lines at 100.1 s, 103.1 s, 106.1 s, 109.1 s, each counting
        // the packets since the previous line; class 1 (10 packets, one per second) at
        // 100, 103, 106, 109.
        let zero: Vec<_> = lines.iter().filter(|l| l.0 == 0).collect();
        assert_eq!(
            zero,
            [&(0, 100, 1), &(0, 103, 27), &(0, 106, 27), &(0, 109, 27)]
        );
        let one: Vec<_> = lines.iter().filter(|l| l.0 == 1).collect();
        assert_eq!(
            one,
            [&(1, 100, 1), &(1, 103, 3), &(1, 106, 3), &(1, 109, 3)]
        );
        // Class 1 came first (packet 0), so class 0 is the second entry.
        let a1 = &f.alerts[0];
        assert_eq!(
            (a1.class, a1.judged, a1.lines, a1.since_last),
            (1, 10, 4, 0)
        );
        let a0 = &f.alerts[1];
        assert_eq!(
            (a0.class, a0.judged, a0.lines, a0.since_last),
            (0, 90, 4, 8)
        );
        assert_eq!(
            (a0.first, a0.last),
            ((100, 100_000_000), (109, 900_000_000))
        );
        assert_eq!(f.alert_packets(), 100);
        // Interval 0: every packet.
        let g = t.packet(2, Some(&ends(3, 1, 2, 80)), (100, 0), 60, &mut ev);
        let n = (0..50)
            .filter(|i| g.judge(0, (100, *i), 0) == Some(1))
            .count();
        assert_eq!(n, 50);
    }
}
