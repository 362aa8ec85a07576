//! Per-flow timing features, derived from the packet time column while a file is read.
//!
//! The packet fields of Edge-IIoTset-style tables carry no timing, and the time column
//! itself (`frame.time`) is an identifier: its absolute value names the capture, not the
//! attack. What an attack changes is the *rhythm* of a flow: a brute-force client
//! reconnects at once, a slow DoS holds the line open and trickles. So with
//! [`crate::IngestOptions::flow_timing`], ingest parses the time of every packet before
//! the column is dropped and adds two numeric columns that carry no absolute time:
//!
//! * [`IAT_COLUMN`]: microseconds since the previous packet of the same flow (the flow
//!   key of [`crate::Dataset::flows`]), 0 for a flow's first packet;
//! * [`INDEX_COLUMN`]: packets of the flow before this one, in file order (0 for the
//!   first packet, so it also marks the first packet's inter-arrival time as "none"),
//!   counted up to a cap ([`crate::IngestOptions::flow_index_cap`]; the command line's
//!   [`DEFAULT_INDEX_CAP`]): a detector that starts in the middle of a long connection
//!   (a restart, a capture cut, the later part of a capture read on its own) counts it
//!   from 0, so uncounted it would take a sensor's 2,000th packet for a new connection's
//!   first; capped, it agrees again after the cap's packets;
//! * [`HOST_IAT_COLUMN`]: microseconds since the previous packet between the same two
//!   hosts, whatever the ports: for the first packet of a connection, how soon after the
//!   last connection between them it came (a brute-force client reconnects at once, a
//!   sensor keeps one connection open). It groups by the addresses as the flow key does
//!   and, like it, encodes none of them.
//!
//! Times are rounded to whole microseconds (the resolution of a pcap), so a capture
//! written with another clock resolution is not told apart by its digits.
//!
//! Both are computed over the file in order while blocks are appended, so a file read in
//! batches (streaming prediction) gets the same values as a whole-file read. Rejected
//! rows are not packets of any flow; duplicates are (they are removed after reading).
//!
//! A time that cannot be parsed never stops the read and never becomes a silent zero:
//! the packet's inter-arrival time is missing (NaN, imputed with the training median and
//! counted in the column's missing cells), the next packet of the flow measures from the
//! last readable time, and [`TimingReport`] counts them and keeps the first few with
//! line, column and value.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::table::Reject;

/// Microseconds since the previous packet of the same flow.
pub const IAT_COLUMN: &str = "flow.iat_us";
/// Packets of the same flow before this one.
pub const INDEX_COLUMN: &str = "flow.index";
/// Microseconds since the previous packet between the same two hosts (any ports).
pub const HOST_IAT_COLUMN: &str = "host.iat_us";
/// The cap of [`INDEX_COLUMN`] the command line asks for (`--flow-index-cap`). Chosen on
/// the development protocol (README "A flow's packet count, capped"): a federation's
/// validation rows, the later part of each capture read on their own, restart every long
/// connection's count at 0, and so does a test file cut from a capture.
pub const DEFAULT_INDEX_CAP: u32 = 32;

/// `index` (a flow's packets before this one) counted up to `cap` (`None`: uncapped).
pub fn capped_index(index: f32, cap: Option<u32>) -> f32 {
    match cap {
        Some(c) => index.min(c as f32),
        None => index,
    }
}
/// The derived columns, in the order they are appended to the table.
pub const DERIVED_COLUMNS: [&str; 3] = [IAT_COLUMN, INDEX_COLUMN, HOST_IAT_COLUMN];

/// Unparseable times kept for display.
const SHOWN_PROBLEMS: usize = 20;
const NS_PER_SEC: i64 = 1_000_000_000;
const DAY_NS: i64 = 86_400 * NS_PER_SEC;

/// A parsed packet time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// Nanoseconds since 1970-01-01 00:00:00 UTC.
    Absolute(i64),
    /// Nanoseconds since midnight; the date was lost (Edge-IIoTset's `frame.time`, cut
    /// at its comma: `" 2021 22:49:20.400794000 "`).
    TimeOfDay(i64),
}

impl Stamp {
    /// Nanoseconds from `earlier` to `self`; `None` when one has a date and the other
    /// not. Two times of day are taken to be less than 12 hours apart, so a difference
    /// across midnight comes out right (and 23:59:59 after 00:00:02 is 3 s backwards).
    pub fn since(self, earlier: Stamp) -> Option<i64> {
        match (self, earlier) {
            (Stamp::Absolute(a), Stamp::Absolute(b)) => Some(a - b),
            (Stamp::TimeOfDay(a), Stamp::TimeOfDay(b)) => {
                let d = a - b;
                Some(if d < -DAY_NS / 2 {
                    d + DAY_NS
                } else if d > DAY_NS / 2 {
                    d - DAY_NS
                } else {
                    d
                })
            }
            _ => None,
        }
    }
}

/// Parses a packet time in the forms the supported datasets write:
///
/// * tshark's `frame.time`: `Jun 12, 2020 09:40:01.290201000 UTC` (MQTTset, Edge-IIoTset
///   captures), with any time-zone abbreviation; known ones (UTC, GMT, CET, CEST, EET,
///   EEST, WET, WEST, BST, EST, EDT, CST, CDT, MST, MDT, PST, PDT, JST) are converted to
///   UTC so a daylight-saving change inside a flow is right; an unknown one is taken as
///   UTC (differences within a flow only need one consistent clock);
/// * Edge-IIoTset's broken `frame.time`: `2021 22:49:20.400794000` (year and time of day;
///   the month and day went to another field), a [`Stamp::TimeOfDay`];
/// * ISO 8601: `2020-06-12 09:40:01.29`, `2020-06-12T09:40:01Z`;
/// * epoch seconds: `1591954801.290201` (tshark `-t e`, BoT-IoT's `stime`).
///
/// Fractions up to nanoseconds; surrounding spaces are ignored. `None` for anything else,
/// and for the absent placeholders (`0`, `0.0`, empty: Edge-IIoTset's MITM file has
/// `0.0` for most of its times), which are no time at all.
pub fn parse_time(raw: &[u8]) -> Option<Stamp> {
    if crate::value::is_absent(raw) {
        return None;
    }
    let s = std::str::from_utf8(raw).ok()?.trim();
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (secs, frac) = split_fraction(s)?;
        let secs: i64 = secs.parse().ok()?;
        return Some(Stamp::Absolute(
            secs.checked_mul(NS_PER_SEC)?.checked_add(frac)?,
        ));
    }
    let tokens: Vec<&str> = s.split_ascii_whitespace().collect();
    match tokens.as_slice() {
        // Jun 12, 2020 09:40:01.290201000 [UTC]
        [mon, day, year, clock, rest @ ..] if rest.len() <= 1 && month(mon).is_some() => {
            let day: u32 = day.strip_suffix(',').unwrap_or(day).parse().ok()?;
            let date = civil_days(year.parse().ok()?, month(mon)?, day)?;
            let offset = match rest {
                [tz] => zone_offset_secs(tz)?,
                _ => 0,
            };
            absolute(date, clock_ns(clock)?, offset)
        }
        // 2021 22:49:20.400794000 (the date lost) or 2020-06-12 09:40:01[Z]
        [first, clock, rest @ ..] if rest.len() <= 1 => {
            let offset = match rest {
                [tz] => zone_offset_secs(tz)?,
                _ => 0,
            };
            if first.len() == 4 && first.bytes().all(|b| b.is_ascii_digit()) && rest.is_empty() {
                Some(Stamp::TimeOfDay(clock_ns(clock)?))
            } else {
                absolute(iso_date(first)?, clock_ns(clock)?, offset)
            }
        }
        // 2020-06-12T09:40:01.29Z
        [one] => {
            let (date, clock) = one.split_once('T')?;
            let clock = clock.strip_suffix('Z').unwrap_or(clock);
            absolute(iso_date(date)?, clock_ns(clock)?, 0)
        }
        _ => None,
    }
}

fn absolute(days: i64, clock_ns: i64, offset_secs: i64) -> Option<Stamp> {
    Some(Stamp::Absolute(
        days.checked_mul(DAY_NS)?
            .checked_add(clock_ns)?
            .checked_sub(offset_secs * NS_PER_SEC)?,
    ))
}

/// `"12.5"` -> `("12", 500_000_000)`: the integer part and the fraction in nanoseconds.
fn split_fraction(s: &str) -> Option<(&str, i64)> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut ns = 0i64;
    for i in 0..9 {
        let d = frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        ns = ns * 10 + d;
    }
    Some((int, ns))
}

/// `HH:MM:SS[.fffffffff]` -> nanoseconds since midnight.
fn clock_ns(s: &str) -> Option<i64> {
    let mut parts = s.splitn(3, ':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    let two = |p: &str| -> Option<i64> {
        (p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let (h, m) = (two(h)?, two(m)?);
    let (sec, frac) = split_fraction(sec)?;
    let sec = two(sec)?;
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some((h * 3600 + m * 60 + sec) * NS_PER_SEC + frac)
}

/// `YYYY-MM-DD` -> days since 1970-01-01.
fn iso_date(s: &str) -> Option<i64> {
    let mut parts = s.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    civil_days(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

fn month(s: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(s))
        .map(|i| i as u32 + 1)
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`); `None` for an impossible month or day.
fn civil_days(y: i64, m: u32, d: u32) -> Option<i64> {
    const DAYS_IN: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&m) || d == 0 || d > DAYS_IN[m as usize - 1] {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if m == 2 && d == 29 && !leap {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Seconds east of UTC of a time-zone abbreviation; an unknown alphabetic one is UTC.
fn zone_offset_secs(tz: &str) -> Option<i64> {
    let hours = match tz {
        "UTC" | "GMT" | "Z" | "WET" => 0,
        "CET" | "WEST" | "BST" => 1,
        "CEST" | "EET" => 2,
        "EEST" => 3,
        "EST" => -5,
        "EDT" => -4,
        "CST" => -6,
        "CDT" => -5,
        "MST" => -7,
        "MDT" => -6,
        "PST" => -8,
        "PDT" => -7,
        "JST" => 9,
        _ if tz.len() <= 6 && tz.bytes().all(|b| b.is_ascii_alphabetic()) => 0,
        _ => return None,
    };
    Some(hours * 3600)
}

/// What the timing features saw: how many times were read, and every problem counted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimingReport {
    /// The time column the features come from.
    pub column: String,
    /// Rows whose time was parsed.
    pub parsed: u64,
    /// Rows whose time could not be parsed: their inter-arrival time is missing (NaN).
    pub unparsed: u64,
    /// Rows whose time was before the previous packet of their flow (capture reordering):
    /// their inter-arrival time is 0.
    pub backwards: u64,
    /// Rows whose time was before the previous packet between the same hosts: their
    /// host inter-arrival time is 0.
    #[serde(default)]
    pub host_backwards: u64,
    /// Rows whose time and the flow's previous one cannot be compared (one has a date,
    /// the other only a time of day): their inter-arrival time is missing (NaN).
    pub incomparable: u64,
    /// The first unparseable times: line, and a reason naming the column and the value.
    pub first_problems: Vec<Reject>,
    /// [`INDEX_COLUMN`] counted up to this many packets (`None`: uncapped, as in reads
    /// before the cap existed).
    #[serde(default)]
    pub index_cap: Option<u32>,
}

impl TimingReport {
    /// Records an unparseable `value` of the time column at `line`.
    pub(crate) fn unparsed_at(&mut self, line: u64, value: &[u8]) {
        self.unparsed += 1;
        if self.first_problems.len() < SHOWN_PROBLEMS {
            let v = String::from_utf8_lossy(value);
            self.first_problems.push(Reject {
                line,
                reason: format!(
                    "column `{}`: cannot read the time `{}` (expected e.g. `Jun 12, 2020 09:40:01.290201000 UTC`, `2021 22:49:20.400794000`, `2020-06-12 09:40:01` or epoch seconds); its inter-arrival time is missing",
                    self.column,
                    v.chars().take(80).collect::<String>()
                ),
            });
        }
    }
}

/// What a table's timing features were computed from, row by row: each packet's time
/// and its host pair's key (the flow is [`crate::Dataset::flows`]). Kept by a read with
/// the timing features (not by an endless stream), so the features can be computed again
/// over some of the rows alone ([`crate::Dataset::retime`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimingSource {
    /// Each row's time (`None`: unparseable).
    pub stamps: Vec<Option<Stamp>>,
    /// Each row's direction-free key of its two hosts.
    pub host_pairs: Vec<u64>,
}

impl TimingSource {
    /// The given rows' sources, in the given order.
    pub fn subset(&self, rows: &[usize]) -> TimingSource {
        TimingSource {
            stamps: rows.iter().map(|&r| self.stamps[r]).collect(),
            host_pairs: rows.iter().map(|&r| self.host_pairs[r]).collect(),
        }
    }

    /// The [`DERIVED_COLUMNS`] of these rows read in order as a file of their own, as
    /// ingest computes them (`flows`: each row's flow; `index_cap`: [`capped_index`]).
    pub fn features(&self, flows: &[u32], index_cap: Option<u32>) -> [Vec<f32>; 3] {
        let (mut clock, mut hosts) = (FlowClock::default(), FlowClock::default());
        let (mut report, mut host_report) = (TimingReport::default(), TimingReport::default());
        let mut out: [Vec<f32>; 3] = Default::default();
        for ((&flow, &stamp), &pair) in flows.iter().zip(&self.stamps).zip(&self.host_pairs) {
            let (iat, index) = clock.next(u64::from(flow), stamp, &mut report);
            let (host_iat, _) = hosts.next(pair, stamp, &mut host_report);
            out[0].push(iat);
            out[1].push(capped_index(index, index_cap));
            out[2].push(host_iat);
        }
        out
    }
}

/// The keys to forget of a table bounded to `max` keys (at least 1), given each key with
/// its last use: none while it holds at most `max`; past it, the least recently used, down
/// to three quarters of `max` (at least the one used last stays). Streaming state of
/// flows and host pairs is bounded by it.
pub(crate) fn least_recently_used(
    uses: impl ExactSizeIterator<Item = (u64, u64)>,
    max: usize,
) -> Vec<u64> {
    let max = max.max(1);
    let len = uses.len();
    if len <= max {
        return Vec::new();
    }
    let mut by_use: Vec<(u64, u64)> = uses.map(|(k, used)| (used, k)).collect();
    by_use.sort_unstable();
    let drop = len - (max * 3 / 4).max(1);
    by_use.into_iter().take(drop).map(|(_, k)| k).collect()
}

/// Per-flow (or per host pair) state of the timing features over a file read in order.
#[derive(Debug, Default)]
pub struct FlowClock {
    /// Per key: the last readable time, the packets seen, and the key's last use (a
    /// counter of calls), to forget the least recently used under a bound.
    flows: FxHashMap<u64, (Option<Stamp>, u32, u64)>,
    tick: u64,
}

impl FlowClock {
    /// Keys held.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Forgets `key`: its next packet is a first one (inter-arrival 0, index 0).
    pub fn forget(&mut self, key: u64) {
        self.flows.remove(&key);
    }

    /// Keeps at most `max` keys (at least 1): past it, the least recently used are
    /// forgotten, down to three quarters of `max`.
    fn bound(&mut self, max: usize) {
        for k in least_recently_used(self.flows.iter().map(|(k, v)| (*k, v.2)), max) {
            self.forget(k);
        }
    }

    /// [`FlowClock::next`] keeping at most `max` keys (see [`FlowClock::bound`]).
    pub fn next_bounded(
        &mut self,
        flow: u64,
        stamp: Option<Stamp>,
        report: &mut TimingReport,
        max: usize,
    ) -> (f32, f32) {
        let out = self.next(flow, stamp, report);
        self.bound(max);
        out
    }

    /// The features of the next packet of `flow`, whose time is `stamp` (`None`:
    /// unparseable, already counted): (microseconds since the flow's previous packet,
    /// packets of the flow before this one). Counts reordering and incomparable times.
    pub fn next(
        &mut self,
        flow: u64,
        stamp: Option<Stamp>,
        report: &mut TimingReport,
    ) -> (f32, f32) {
        self.tick += 1;
        let (last, seen, used) = self.flows.entry(flow).or_insert((None, 0, 0));
        *used = self.tick;
        let first = *seen == 0;
        let index = *seen as f32;
        *seen = seen.saturating_add(1);
        let iat = match (stamp, *last) {
            (None, _) => f32::NAN,
            (Some(_), None) if first => 0.0,
            // Earlier packets of the flow had no readable time.
            (Some(_), None) => f32::NAN,
            (Some(now), Some(before)) => match now.since(before) {
                None => {
                    report.incomparable += 1;
                    f32::NAN
                }
                Some(d) if d < 0 => {
                    report.backwards += 1;
                    0.0
                }
                // Whole microseconds, rounded.
                Some(d) => ((d + 500) / 1_000) as f32,
            },
        };
        if stamp.is_some() {
            *last = stamp;
        }
        (iat, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_capped_only_when_a_cap_is_given() {
        assert_eq!(capped_index(0.0, Some(32)), 0.0);
        assert_eq!(capped_index(31.0, Some(32)), 31.0);
        assert_eq!(capped_index(2_000.0, Some(32)), 32.0);
        assert_eq!(capped_index(2_000.0, None), 2_000.0);
        assert_eq!(capped_index(5.0, Some(0)), 0.0);
    }

    const S: i64 = NS_PER_SEC;

    #[test]
    fn tshark_frame_time_in_utc() {
        // 2020-06-12 is day 18425 since 1970-01-01 (2020-01-01 is 18262, + 163 days).
        let day = 18_425 * 86_400 * S;
        let clock = (9 * 3600 + 40 * 60 + 1) * S + 290_201_000;
        assert_eq!(
            parse_time(b"Jun 12, 2020 09:40:01.290201000 UTC"),
            Some(Stamp::Absolute(day + clock))
        );
        // CEST is UTC+2: the same wall clock is two hours earlier in UTC.
        assert_eq!(
            parse_time(b"Jun 12, 2020 09:40:01.290201000 CEST"),
            Some(Stamp::Absolute(day + clock - 2 * 3600 * S))
        );
        // Edge-IIoTset's leading space and CET; 2021-11-14 is day 18945.
        assert_eq!(
            parse_time(b" Nov 14, 2021 18:04:41.498226000 CET"),
            Some(Stamp::Absolute(
                18_945 * 86_400 * S + (18 * 3600 + 4 * 60 + 41) * S + 498_226_000 - 3600 * S
            ))
        );
        // No zone, short fraction.
        assert_eq!(
            parse_time(b"Jan 1, 1970 00:00:01.5"),
            Some(Stamp::Absolute(S + S / 2))
        );
    }

    #[test]
    fn broken_edge_iiotset_time_is_a_time_of_day() {
        assert_eq!(
            parse_time(b" 2021 22:49:20.400794000 "),
            Some(Stamp::TimeOfDay(
                (22 * 3600 + 49 * 60 + 20) * S + 400_794_000
            ))
        );
    }

    #[test]
    fn iso_and_epoch_times() {
        let t = Stamp::Absolute(18_425 * 86_400 * S + (9 * 3600 + 40 * 60 + 1) * S + 290_000_000);
        assert_eq!(parse_time(b"2020-06-12 09:40:01.29"), Some(t));
        assert_eq!(parse_time(b"2020-06-12T09:40:01.290Z"), Some(t));
        assert_eq!(
            parse_time(b"1591954801.290201"),
            Some(Stamp::Absolute(1_591_954_801 * S + 290_201_000))
        );
        assert_eq!(parse_time(b"7"), Some(Stamp::Absolute(7 * S)));
    }

    #[test]
    fn bad_times_are_refused() {
        for bad in [
            &b""[..],
            b"   ",
            b"0",
            b"0.0",
            b"yesterday",
            b"Jun 31, 2020 09:40:01 UTC",
            b"Feb 29, 2021 09:40:01 UTC",
            b"Jun 12, 2020 24:00:00 UTC",
            b"Jun 12, 2020 09:4:01 UTC",
            b"2020-06-12 09:40:01.1234567890",
            b"1.2.3",
            b"Jun 12, 2020 09:40:01 +0200",
        ] {
            assert_eq!(parse_time(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert!(
            parse_time(b"Feb 29, 2020 00:00:00 UTC").is_some(),
            "a leap day"
        );
    }

    #[test]
    fn differences_across_midnight_and_kinds() {
        let before = Stamp::TimeOfDay(DAY_NS - S);
        let after = Stamp::TimeOfDay(2 * S);
        assert_eq!(after.since(before), Some(3 * S), "wraps at midnight");
        assert_eq!(
            before.since(after),
            Some(-3 * S),
            "backwards across midnight"
        );
        assert_eq!(
            Stamp::TimeOfDay(5 * S).since(Stamp::TimeOfDay(2 * S)),
            Some(3 * S)
        );
        assert_eq!(Stamp::Absolute(5).since(Stamp::TimeOfDay(1)), None);
    }

    #[test]
    fn flow_clock_measures_each_flow_separately() {
        let mut clock = FlowClock::default();
        let mut r = TimingReport::default();
        let at = |us: i64| Some(Stamp::Absolute(us * 1_000));
        // Flows A B A A(unreadable) A B A(backwards).
        assert_eq!(clock.next(0, at(1_000), &mut r), (0.0, 0.0));
        assert_eq!(clock.next(1, at(1_500), &mut r), (0.0, 0.0));
        assert_eq!(clock.next(0, at(1_250), &mut r), (250.0, 1.0));
        let (iat, index) = clock.next(0, None, &mut r);
        assert!(iat.is_nan());
        assert_eq!(index, 2.0);
        assert_eq!(
            clock.next(0, at(4_250), &mut r),
            (3_000.0, 3.0),
            "from the last readable time"
        );
        assert_eq!(clock.next(1, at(1_500), &mut r), (0.0, 1.0));
        assert_eq!(clock.next(0, at(4_000), &mut r), (0.0, 4.0));
        assert_eq!(r.backwards, 1);
        assert_eq!(r.incomparable, 0);
    }

    #[test]
    fn unreadable_first_time_leaves_the_next_gap_missing() {
        let mut clock = FlowClock::default();
        let mut r = TimingReport::default();
        assert!(clock.next(3, None, &mut r).0.is_nan());
        assert!(clock.next(3, Some(Stamp::Absolute(9)), &mut r).0.is_nan());
        assert_eq!(
            clock.next(3, Some(Stamp::Absolute(2_009)), &mut r),
            (2.0, 2.0)
        );
    }

    use proptest::prelude::*;

    /// Days from 1970-01-01, counted the slow way: a reference for `civil_days`.
    fn days_by_counting(y: i64, m: u32, d: u32) -> i64 {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month_days = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut days = 0;
        for year in 1970..y {
            days += if leap(year) { 366 } else { 365 };
        }
        for month in 1..m {
            days += month_days(y, month);
        }
        days + i64::from(d) - 1
    }

    /// A valid date and time: (year, month, day, hour, minute, second, nanoseconds).
    fn moment() -> impl Strategy<Value = (i64, u32, u32, i64, i64, i64, i64)> {
        (
            1970i64..2100,
            1u32..=12,
            1u32..=31,
            0i64..24,
            0i64..60,
            0i64..60,
            0i64..1_000_000_000,
        )
            .prop_filter("a real date", |&(y, m, d, ..)| {
                let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
                let max = match m {
                    2 if leap => 29,
                    2 => 28,
                    4 | 6 | 9 | 11 => 30,
                    _ => 31,
                };
                d <= max
            })
    }

    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// tshark's form, ISO 8601 and epoch seconds of one moment are the same stamp,
        /// the one counted independently; a zone shifts it by its offset.
        #[test]
        fn every_form_of_a_moment_agrees((y, m, d, h, mi, s, ns) in moment()) {
            let want = (days_by_counting(y, m, d) * 86_400 + h * 3600 + mi * 60 + s) * S + ns;
            let clock = format!("{h:02}:{mi:02}:{s:02}.{ns:09}");
            let tshark = format!("{} {d}, {y} {clock} UTC", MONTHS[m as usize - 1]);
            let iso = format!("{y}-{m:02}-{d:02} {clock}");
            let iso_t = format!("{y}-{m:02}-{d:02}T{clock}Z");
            let epoch = format!("{}.{:09}", want / S, want % S);
            for text in [&tshark, &iso, &iso_t, &epoch] {
                prop_assert_eq!(parse_time(text.as_bytes()), Some(Stamp::Absolute(want)), "{}", text);
            }
            let cet = format!("{} {d}, {y} {clock} CET", MONTHS[m as usize - 1]);
            prop_assert_eq!(parse_time(cet.as_bytes()), Some(Stamp::Absolute(want - 3600 * S)));
            // Edge-IIoTset's broken form keeps the time of day only.
            let broken = format!(" {y} {clock} ");
            prop_assert_eq!(
                parse_time(broken.as_bytes()),
                Some(Stamp::TimeOfDay((h * 3600 + mi * 60 + s) * S + ns))
            );
        }

        /// Differences between two parsed moments are antisymmetric, and between two
        /// times of day never more than half a day.
        #[test]
        fn differences_are_consistent(a in moment(), b in moment()) {
            let stamp = |(y, m, d, h, mi, s, ns): (i64, u32, u32, i64, i64, i64, i64)| {
                parse_time(format!("{y}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{ns:09}").as_bytes())
            };
            let (Some(sa), Some(sb)) = (stamp(a), stamp(b)) else {
                return Err(TestCaseError::fail("a valid moment did not parse"));
            };
            prop_assert_eq!(sa.since(sb).map(|x| -x), sb.since(sa));
            let tod = |(_, _, _, h, mi, s, ns): (i64, u32, u32, i64, i64, i64, i64)| {
                Stamp::TimeOfDay((h * 3600 + mi * 60 + s) * S + ns)
            };
            let gap = tod(a).since(tod(b));
            prop_assert!(gap.is_some_and(|g| g.abs() <= DAY_NS / 2), "{:?}", gap);
        }

        /// Any bytes: no panic, and a stamp only from text with a digit in it.
        #[test]
        fn any_bytes_are_read_or_refused(
            bytes in proptest::collection::vec(
                prop_oneof![any::<u8>(), proptest::sample::select(b"0123456789 :.-TZ,JunUTC".to_vec())],
                0..40,
            )
        ) {
            if parse_time(&bytes).is_some() {
                prop_assert!(bytes.iter().any(u8::is_ascii_digit));
            }
        }
    }
}
