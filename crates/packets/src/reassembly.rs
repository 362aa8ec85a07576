//! Per-direction TCP reassembly with tshark's rules (TShark 4.0 defaults,
//! `packet-tcp.c`'s `desegment_tcp` and `tcp_dissect_pdus`).
//!
//! tshark does not reassemble a byte stream and then cut it into messages: it hands each
//! segment's payload to the application dissector, which reads as many whole PDUs as the
//! segment holds and says where an unfinished one starts and how many more bytes it needs
//! (or "one more segment"). TCP then keeps that unfinished PDU (a *multi-segment PDU*),
//! adds the following in-order segments to it, and hands the whole PDU to the dissector in
//! the frame whose segment completes it; the bytes of that segment after the PDU are
//! dissected in the same frame as fresh data. So the fields of a PDU that spans segments
//! are on the packet that completes it, and a segment holding several PDUs carries the
//! fields of all of them (tshark-fields.sh keeps each field's first occurrence).
//!
//! The analysis rules decide what is dissected at all (`tcp.no_subdissector_on_error`,
//! TRUE in 4.0): a segment that does not advance the direction's next expected sequence
//! number (a retransmission, an overlap or an out-of-order segment) is not handed to the
//! application dissector, though its new bytes still extend an unfinished PDU; a segment
//! after a gap (lost or not captured) is dissected from its own start, and a PDU with a
//! hole is never completed. A frame cut by the snap length is dissected without
//! reassembly, as far as its bytes go.
//!
//! Bounds: at most [`Limits::flows`] conversations are tracked (a conversation past that
//! is dissected segment by segment, without reassembly, and counted); an unfinished PDU
//! holds at most [`Limits::pdu_bytes`] bytes, and all flows together at most
//! [`Limits::total_bytes`] (a PDU past either is dropped at its end, counted, and the
//! stream stays in step after it). State is freed on RST and when both directions have
//! sent FIN. With [`Limits::out_of_order`] (tshark's `tcp.reassemble_out_of_order`, off
//! by default as in tshark) segments ahead of a gap are held, at most
//! [`Limits::out_of_order_bytes`] per direction, and dissected when the gap fills.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

/// How a dissector asks for more data after reading the bytes it was given (tshark's
/// `pinfo->desegment_offset` and `desegment_len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desegment {
    /// Everything was read (or the bytes are not the dissector's).
    Done,
    /// The PDU starting `offset` bytes into the data needs more bytes.
    More { offset: usize, more: More },
    /// The dissector threw an exception tshark does not catch inside the PDU loop (its
    /// length field ran off the captured bytes): the rest of the frame is not dissected
    /// and nothing is kept for reassembly.
    Abort,
}

/// How many more bytes an unfinished PDU needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum More {
    /// This many more bytes.
    Bytes(u32),
    /// At least one more segment, whatever its length (`DESEGMENT_ONE_MORE_SEGMENT`).
    OneMoreSegment,
    /// Everything up to the sender's FIN (`DESEGMENT_UNTIL_FIN`); the PDU is then
    /// dissected once more without reassembly.
    UntilFin,
}

/// An application dissector fed by the reassembler. `state` is the conversation's own
/// (kept as long as the reassembler tracks the conversation).
pub trait Dissect<S> {
    /// Dissects `data` (the captured bytes; `reported` is the length on the wire, larger
    /// when the snap length cut the frame). `can_desegment` is false when a request for
    /// more data will not be honoured (a cut frame, an untracked flow).
    fn dissect(
        &mut self,
        state: &mut S,
        data: &[u8],
        reported: usize,
        can_desegment: bool,
    ) -> Desegment;
}

/// The bounds of a [`Reassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Conversations tracked at once.
    pub flows: usize,
    /// Bytes one unfinished PDU may hold.
    pub pdu_bytes: usize,
    /// Bytes all unfinished PDUs and held segments may hold together.
    pub total_bytes: usize,
    /// Hold segments that arrive ahead of a gap until it fills (tshark: off).
    pub out_of_order: bool,
    /// Bytes of held segments per direction.
    pub out_of_order_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            flows: 1 << 16,
            pdu_bytes: 16 << 20,
            total_bytes: 256 << 20,
            out_of_order: false,
            out_of_order_bytes: 1 << 20,
        }
    }
}

/// What the reassembler counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Segments with payload seen.
    pub segments: u64,
    /// Segments not dissected as retransmissions, overlaps or out-of-order segments.
    pub retransmissions: u64,
    /// Segments after a gap in their direction's sequence numbers.
    pub gaps: u64,
    /// PDUs completed from more than one segment.
    pub reassembled: u64,
    /// PDUs dropped for a hole (a segment never seen in order).
    pub holes: u64,
    /// PDUs dropped for exceeding [`Limits::pdu_bytes`] or [`Limits::total_bytes`].
    pub oversized: u64,
    /// Conversations not tracked because [`Limits::flows`] were.
    pub flows_refused: u64,
    /// Held out-of-order bytes dropped for [`Limits::out_of_order_bytes`].
    pub out_of_order_dropped: u64,
    /// Conversations freed (RST, or FIN both ways).
    pub closed: u64,
}

/// One TCP segment as the reassembler needs it.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// The capture's packet number.
    pub number: u64,
    /// The raw sequence number.
    pub seq: u32,
    /// The raw acknowledgement number.
    pub ack: u32,
    /// The 12-bit flags field.
    pub flags: u16,
    /// The captured payload.
    pub payload: &'a [u8],
    /// The payload's length on the wire (`tcp.len`).
    pub reported: usize,
}

const FIN: u16 = 0x01;
const SYN: u16 = 0x02;
const RST: u16 = 0x04;
const ACK: u16 = 0x10;

/// `a < b` in sequence space.
fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn le(a: u32, b: u32) -> bool {
    a == b || lt(a, b)
}

/// An unfinished PDU (tshark's `tcp_multisegment_pdu` with its fragments).
#[derive(Debug)]
struct Msp {
    /// Sequence number of its first byte.
    seq: u32,
    /// Sequence number one past its last byte.
    nxtpdu: u32,
    /// It takes the whole next segment, whatever its length.
    entire: bool,
    /// It runs to the sender's FIN.
    until_fin: bool,
    /// Its bytes from `seq` on (emptied when oversized).
    data: Vec<u8>,
    /// Sequence number one past the bytes received contiguously.
    end: u32,
    /// A segment after a gap landed in it: it never completes.
    hole: bool,
    /// It outgrew the limits: its bytes are dropped and it is not dissected.
    oversized: bool,
}

/// One direction of a conversation.
#[derive(Debug, Default)]
struct Half {
    /// The next sequence number expected (tshark's analysis `nextseq`).
    nextseq: Option<u32>,
    /// The acknowledgement number this side sent last.
    lastack: Option<u32>,
    msp: Option<Msp>,
    fin: bool,
    /// Held segments ahead of a gap (out-of-order mode), by sequence number.
    held: BTreeMap<u32, Vec<u8>>,
    held_bytes: usize,
    /// Out-of-order mode: where in-order data resumes.
    contiguous: Option<u32>,
    /// Out-of-order mode: the first sequence number, so held segments sort by their
    /// offset from it (raw numbers wrap).
    origin: u32,
}

#[derive(Debug, Default)]
struct Conn<S> {
    /// Each direction's first sequence number (ISN, or seq − 1 mid-stream), for port reuse.
    base: [Option<u32>; 2],
    half: [Half; 2],
    state: S,
}

/// TCP reassembly for every conversation of a capture, keyed by `K` (the conversation,
/// both directions alike) with the application's per-conversation state `S`.
#[derive(Debug)]
pub struct Reassembler<K, S> {
    limits: Limits,
    conns: FxHashMap<K, Conn<S>>,
    /// Bytes held by all unfinished PDUs and held segments.
    buffered: usize,
    stats: Stats,
}

impl<K: std::hash::Hash + Eq + Clone, S: Default> Default for Reassembler<K, S> {
    fn default() -> Self {
        Reassembler::new(Limits::default())
    }
}

impl<K: std::hash::Hash + Eq + Clone, S: Default> Reassembler<K, S> {
    pub fn new(limits: Limits) -> Self {
        Reassembler {
            limits,
            conns: FxHashMap::default(),
            buffered: 0,
            stats: Stats::default(),
        }
    }

    /// What was counted so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Conversations tracked now.
    pub fn flows(&self) -> usize {
        self.conns.len()
    }

    /// The application state of conversation `key`, while it is tracked.
    pub fn state_mut(&mut self, key: &K) -> Option<&mut S> {
        self.conns.get_mut(key).map(|c| &mut c.state)
    }

    /// Drops conversation `key` and what it held (an online reader evicting an idle
    /// conversation): its next segment starts it afresh.
    pub fn forget(&mut self, key: &K) {
        if let Some(conn) = self.conns.remove(key) {
            self.buffered = self.buffered.saturating_sub(held_bytes(&conn));
        }
    }

    /// Bytes held now by unfinished PDUs and held segments.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Feeds the next segment of conversation `key`, sent by end `dir` (0 or 1: the same
    /// end always gets the same number), dissecting what tshark would dissect in this
    /// frame with `d`. Returns true when the segment is a FIN whose data ended a PDU read
    /// to the FIN (tshark shows no `tcp.payload` for it).
    pub fn segment<D: Dissect<S>>(
        &mut self,
        key: &K,
        dir: usize,
        seg: Segment<'_>,
        d: &mut D,
    ) -> bool {
        let dir = dir & 1;
        if !self.conns.contains_key(key) {
            if self.conns.len() >= self.limits.flows {
                self.stats.flows_refused += 1;
                if !seg.payload.is_empty() {
                    self.stats.segments += 1;
                    let mut state = S::default();
                    let _ = d.dissect(&mut state, seg.payload, seg.reported, false);
                }
                return false;
            }
            self.conns.insert(key.clone(), Conn::default());
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let (syn, ack) = (seg.flags & SYN != 0, seg.flags & ACK != 0);
        // Port reuse: a SYN with another initial number starts a new conversation.
        if syn && !ack && conn.base[dir].is_some_and(|b| b != seg.seq) {
            let freed = held_bytes(conn);
            self.buffered = self.buffered.saturating_sub(freed);
            *conn = Conn::default();
        }
        conn.base[dir].get_or_insert(if syn {
            seg.seq
        } else {
            seg.seq.wrapping_sub(1)
        });
        // Data in a SYN starts after the SYN's own sequence number.
        let seq = if syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        let len = seg.reported as u32;
        let seglen = len
            .wrapping_add(u32::from(syn))
            .wrapping_add(u32::from(seg.flags & FIN != 0));
        let reverse_ack = conn.half[dir ^ 1].lastack;
        let half = &mut conn.half[dir];
        let before = half.nextseq;
        // tshark's analysis: a segment with data, SYN or FIN below the next expected
        // sequence number is a retransmission, out of order or a keep-alive, one whose
        // data the other side already acknowledged a spurious retransmission.
        let spurious = len > 0 && reverse_ack.is_some_and(|a| le(seg.seq.wrapping_add(len), a));
        let below =
            (len > 0 || seg.flags & (SYN | FIN) != 0) && before.is_some_and(|n| lt(seg.seq, n));
        let behind = below || spurious;
        // In a frame cut by the snap length (no reassembly) tshark still dissects a
        // spurious retransmission, though not a keep-alive (at most one byte, one before
        // the next expected number).
        let keep_alive = len <= 1
            && seg.flags & (SYN | FIN | RST) == 0
            && before.is_some_and(|n| n.wrapping_sub(1) == seg.seq);
        let cut_behind = keep_alive || (below && !spurious);
        if ack {
            half.lastack = Some(seg.ack);
        }
        let end = seg.seq.wrapping_add(seglen);
        if before.is_none_or(|n| lt(n, end)) {
            half.nextseq = Some(end);
        }
        if seg.flags & FIN != 0 {
            half.fin = true;
        }
        let fin = seg.flags & FIN != 0;
        if seg.payload.is_empty() && fin && half.msp.as_ref().is_some_and(|m| m.until_fin) {
            // The FIN ends a PDU that runs to it.
            if let Some(m) = half.msp.take() {
                self.buffered = self.buffered.saturating_sub(m.data.len());
                if !m.hole && !m.oversized && !behind {
                    self.stats.reassembled += 1;
                    let _ = d.dissect(&mut conn.state, &m.data, m.data.len(), false);
                }
            }
        }
        let mut fin_payload = false;
        if !seg.payload.is_empty() {
            self.stats.segments += 1;
            let complete = seg.payload.len() >= seg.reported;
            let mut ctx = Ctx {
                limits: &self.limits,
                buffered: &mut self.buffered,
                stats: &mut self.stats,
                fin_payload: &mut fin_payload,
            };
            let payload = &seg.payload[..seg.payload.len().min(seg.reported)];
            if !complete {
                // A cut frame: dissected as far as it goes, without reassembly.
                if !cut_behind {
                    let _ = d.dissect(&mut conn.state, seg.payload, seg.reported, false);
                }
            } else if self.limits.out_of_order {
                ctx.in_order(half, &mut conn.state, seq, payload, fin, d);
            } else {
                if behind {
                    ctx.stats.retransmissions += 1;
                } else if before.is_some_and(|n| lt(n, seg.seq)) {
                    ctx.stats.gaps += 1;
                }
                ctx.desegment(half, &mut conn.state, seq, payload, !behind, fin, d);
            }
        }
        let closed = seg.flags & RST != 0 || (conn.half[0].fin && conn.half[1].fin);
        if closed {
            let freed = held_bytes(conn);
            self.buffered = self.buffered.saturating_sub(freed);
            self.conns.remove(key);
            self.stats.closed += 1;
        }
        fin_payload
    }
}

fn held_bytes<S>(conn: &Conn<S>) -> usize {
    conn.half
        .iter()
        .map(|h| h.held_bytes + h.msp.as_ref().map_or(0, |m| m.data.len()))
        .sum()
}

/// The reassembler's counters and limits, lent to one segment's processing.
struct Ctx<'r> {
    limits: &'r Limits,
    buffered: &'r mut usize,
    stats: &'r mut Stats,
    /// Set when a FIN's data ends a PDU read to the FIN.
    fin_payload: &'r mut bool,
}

impl Ctx<'_> {
    /// Appends `bytes` to `m`, unless that outgrows the limits (then `m` drops its bytes
    /// and is marked oversized).
    fn grow(&mut self, m: &mut Msp, bytes: &[u8]) {
        if m.oversized {
            return;
        }
        if m.data.len() + bytes.len() > self.limits.pdu_bytes
            || *self.buffered + bytes.len() > self.limits.total_bytes
        {
            *self.buffered = self.buffered.saturating_sub(m.data.len());
            m.data = Vec::new();
            m.oversized = true;
            self.stats.oversized += 1;
            return;
        }
        m.data.extend_from_slice(bytes);
        *self.buffered += bytes.len();
    }

    fn release(&mut self, m: &Msp) {
        *self.buffered = self.buffered.saturating_sub(m.data.len());
    }

    /// tshark's `desegment_tcp` for one segment's payload starting at `seq`.
    /// `dissect` false: the segment is a retransmission, so its bytes only extend an
    /// unfinished PDU and nothing is handed to the dissector.
    #[allow(clippy::too_many_arguments)]
    fn desegment<S, D: Dissect<S>>(
        &mut self,
        half: &mut Half,
        state: &mut S,
        mut seq: u32,
        payload: &[u8],
        dissect: bool,
        fin: bool,
        d: &mut D,
    ) {
        let mut offset = 0usize;
        // Each pass handles what follows a completed PDU; every pass moves `offset` on.
        while offset < payload.len() {
            let rest = &payload[offset..];
            let nxtseq = seq.wrapping_add(rest.len() as u32);
            let mut another = 0usize;
            let mut deseg: Option<(usize, More)> = None;
            if half.msp.as_ref().is_some_and(|m| m.seq == seq) {
                // The start of a PDU already seen: retransmitted data.
                return;
            }
            let in_msp = half
                .msp
                .as_ref()
                .is_some_and(|m| le(m.seq, seq) && (m.until_fin || lt(seq, m.nxtpdu)));
            if in_msp {
                let Some(mut m) = half.msp.take() else {
                    return;
                };
                let was_entire = m.entire;
                let len = if m.entire || m.until_fin {
                    rest.len()
                } else {
                    m.nxtpdu.wrapping_sub(seq).min(rest.len() as u32) as usize
                };
                let last = if m.until_fin {
                    fin
                } else {
                    !lt(nxtseq, m.nxtpdu)
                };
                if lt(m.end, seq) {
                    m.hole = true;
                } else {
                    // Overlapping bytes are already there; keep what is new.
                    let skip = m.end.wrapping_sub(seq) as usize;
                    if skip < len {
                        self.grow(&mut m, &rest[skip..len]);
                        m.end = seq.wrapping_add(len as u32);
                    }
                }
                if was_entire && !m.until_fin {
                    m.entire = false;
                    m.nxtpdu = nxtseq;
                }
                if lt(m.nxtpdu, nxtseq) && le(seq, m.nxtpdu) && len > 0 {
                    another = m.nxtpdu.wrapping_sub(seq) as usize;
                }
                if !last {
                    half.msp = Some(m);
                } else if m.hole {
                    self.stats.holes += 1;
                    self.release(&m);
                } else if m.oversized || !dissect {
                    self.release(&m);
                } else {
                    self.stats.reassembled += 1;
                    let data = std::mem::take(&mut m.data);
                    *self.buffered = self.buffered.saturating_sub(data.len());
                    *self.fin_payload |= m.until_fin;
                    let result = d.dissect(state, &data, data.len(), !m.until_fin);
                    let old_len = data.len().saturating_sub(len);
                    match result {
                        Desegment::Abort => return,
                        Desegment::More { offset: o, more } if o <= old_len => {
                            // The reassembled PDU itself still needs more.
                            match more {
                                More::OneMoreSegment | More::UntilFin => {
                                    m.until_fin = more == More::UntilFin;
                                    let end = seq.wrapping_add(rest.len() as u32);
                                    let top = if lt(end, m.nxtpdu) { m.nxtpdu } else { end };
                                    m.nxtpdu = top.wrapping_add(1);
                                    m.entire = true;
                                }
                                More::Bytes(n) => {
                                    let end = seq.wrapping_add(len as u32);
                                    if le(m.nxtpdu, end) {
                                        m.nxtpdu = end.wrapping_add(n);
                                    } else {
                                        m.nxtpdu = m.nxtpdu.wrapping_add(n);
                                    }
                                }
                            }
                            *self.buffered += data.len();
                            m.data = data;
                            half.msp = Some(m);
                            offset += len;
                            seq = seq.wrapping_add(len as u32);
                            continue;
                        }
                        Desegment::More { offset: o, more } => {
                            // A new PDU starts in this segment after the completed one.
                            let from_end = data.len() - o;
                            deseg = payload
                                .len()
                                .checked_sub(from_end)
                                .filter(|&at| at >= offset)
                                .map(|at| (at, more));
                        }
                        Desegment::Done => {}
                    }
                }
            } else if dissect {
                match d.dissect(state, rest, rest.len(), true) {
                    Desegment::Abort => return,
                    Desegment::More { offset: o, more } if o < rest.len() => {
                        deseg = Some((offset + o, more));
                    }
                    _ => {}
                }
            }
            if let Some((at, more)) = deseg {
                let deseg_seq = seq.wrapping_add((at - offset) as u32);
                let (nxtpdu, entire) = match more {
                    More::OneMoreSegment | More::UntilFin => (nxtseq.wrapping_add(1), true),
                    More::Bytes(n) => (nxtseq.wrapping_add(n.max(1)), false),
                };
                if let Some(old) = half.msp.take() {
                    self.release(&old);
                }
                let mut m = Msp {
                    seq: deseg_seq,
                    nxtpdu,
                    entire,
                    data: Vec::new(),
                    end: nxtseq,
                    hole: false,
                    oversized: false,
                    until_fin: more == More::UntilFin,
                };
                self.grow(&mut m, &payload[at..]);
                half.msp = Some(m);
            }
            if another == 0 {
                return;
            }
            offset += another;
            seq = seq.wrapping_add(another as u32);
        }
    }

    /// Out-of-order mode: bytes before the next expected number are dropped, a segment at
    /// it is dissected (then any held segments it makes contiguous), one after it is held.
    #[allow(clippy::too_many_arguments)]
    fn in_order<S, D: Dissect<S>>(
        &mut self,
        half: &mut Half,
        state: &mut S,
        seq: u32,
        payload: &[u8],
        fin: bool,
        d: &mut D,
    ) {
        if half.contiguous.is_none() {
            half.origin = seq;
        }
        let expected = *half.contiguous.get_or_insert(seq);
        let end = seq.wrapping_add(payload.len() as u32);
        if le(end, expected) {
            self.stats.retransmissions += 1;
            return;
        }
        if lt(expected, seq) {
            // Ahead of a gap: hold it.
            if half.held_bytes + payload.len() > self.limits.out_of_order_bytes
                || *self.buffered + payload.len() > self.limits.total_bytes
            {
                self.stats.out_of_order_dropped += payload.len() as u64;
                return;
            }
            half.held_bytes += payload.len();
            *self.buffered += payload.len();
            let key = seq.wrapping_sub(half.origin);
            if let Some(old) = half.held.insert(key, payload.to_vec()) {
                half.held_bytes -= old.len();
                *self.buffered = self.buffered.saturating_sub(old.len());
            }
            return;
        }
        let skip = expected.wrapping_sub(seq) as usize;
        if skip > 0 {
            self.stats.retransmissions += 1;
        }
        self.desegment(half, state, expected, &payload[skip..], true, fin, d);
        let mut at = end;
        // Held segments that are now contiguous, in sequence order.
        while let Some(key) = half.held.keys().next().copied() {
            let s = half.origin.wrapping_add(key);
            if lt(at, s) {
                break;
            }
            let Some(bytes) = half.held.remove(&key) else {
                break;
            };
            half.held_bytes -= bytes.len();
            *self.buffered = self.buffered.saturating_sub(bytes.len());
            let e = s.wrapping_add(bytes.len() as u32);
            if lt(at, e) {
                let skip = at.wrapping_sub(s) as usize;
                self.desegment(half, state, at, &bytes[skip..], true, fin, d);
                at = e;
            }
        }
        half.contiguous = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{Tvb, dissect_pdus};

    /// A protocol of PDUs `[n, n bytes...]`; records every PDU it reads (captured bytes,
    /// length on the wire). With `until_fin`, a lone `0xff` asks for everything to the FIN.
    #[derive(Default)]
    struct Pdus {
        seen: Vec<(Vec<u8>, usize)>,
        until_fin: bool,
    }

    impl Dissect<()> for Pdus {
        fn dissect(&mut self, _: &mut (), data: &[u8], reported: usize, can: bool) -> Desegment {
            if self.until_fin && data.first() == Some(&0xff) {
                if can {
                    return Desegment::More {
                        offset: 0,
                        more: More::UntilFin,
                    };
                }
                self.seen.push((data.to_vec(), reported));
                return Desegment::Done;
            }
            let len = |t: Tvb<'_>| t.u8(0).map(|n| u64::from(n) + 1);
            dissect_pdus(Tvb { data, reported }, can, 1, len, |t| {
                self.seen.push((t.data.to_vec(), t.reported));
            })
        }
    }

    const PSH: u16 = 0x18;

    /// Feeds segments of one conversation (`dir`, seq, flags, bytes) and returns, per
    /// segment, the PDUs dissected in its frame.
    fn run(
        r: &mut Reassembler<u8, ()>,
        key: u8,
        segs: &[(usize, u32, u16, &[u8])],
    ) -> Vec<Vec<Vec<u8>>> {
        let mut d = Pdus::default();
        run_with(r, key, segs, &mut d)
    }

    fn run_with(
        r: &mut Reassembler<u8, ()>,
        key: u8,
        segs: &[(usize, u32, u16, &[u8])],
        d: &mut Pdus,
    ) -> Vec<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for (n, &(dir, seq, flags, bytes)) in segs.iter().enumerate() {
            d.seen.clear();
            let seg = Segment {
                number: n as u64 + 1,
                seq,
                ack: 0,
                flags,
                payload: bytes,
                reported: bytes.len(),
            };
            r.segment(&key, dir, seg, d);
            out.push(d.seen.iter().map(|(b, _)| b.clone()).collect());
        }
        out
    }

    fn none() -> Vec<Vec<u8>> {
        Vec::new()
    }

    /// A 6-byte PDU in three segments of 3, 2 and 1 bytes: dissected whole in the third
    /// frame, nothing in the first two.
    #[test]
    fn a_pdu_split_across_three_segments_is_on_the_frame_completing_it() {
        let mut r = Reassembler::default();
        let got = run(
            &mut r,
            1,
            &[
                (0, 100, PSH, &[5, b'a', b'b']),
                (0, 103, PSH, b"cd"),
                (0, 105, PSH, b"e"),
            ],
        );
        assert_eq!(got, [none(), none(), vec![b"\x05abcde".to_vec()]]);
        assert_eq!(r.stats().reassembled, 1);
        assert_eq!(r.buffered(), 0);
    }

    /// Two PDUs in one segment, then a segment completing a PDU and holding a whole one
    /// and the start of a third: the completed one first, then the new ones.
    #[test]
    fn several_pdus_per_segment_and_the_completed_one_first() {
        let mut r = Reassembler::default();
        let got = run(
            &mut r,
            1,
            &[
                (0, 1, PSH, &[1, b'x', 2, b'y', b'z']),
                (0, 6, PSH, &[3, b'a']),
                (0, 8, PSH, &[b'b', b'c', 1, b'q', 2]),
                (0, 13, PSH, b"rs"),
            ],
        );
        assert_eq!(
            got,
            [
                vec![b"\x01x".to_vec(), b"\x02yz".to_vec()],
                none(),
                vec![b"\x03abc".to_vec(), b"\x01q".to_vec()],
                vec![b"\x02rs".to_vec()],
            ]
        );
    }

    /// A retransmitted segment, and a segment whose bytes the other side acknowledged
    /// (spurious), are not dissected again.
    #[test]
    fn retransmissions_are_not_dissected() {
        let mut r = Reassembler::default();
        let got = run(
            &mut r,
            1,
            &[(0, 1, PSH, &[1, b'x']), (0, 1, PSH, &[1, b'x'])],
        );
        assert_eq!(got, [vec![b"\x01x".to_vec()], none()]);
        // The receiver acknowledged bytes 1..3 before they were seen.
        let mut d = Pdus::default();
        let ack = Segment {
            number: 1,
            seq: 50,
            ack: 3,
            flags: 0x10,
            payload: &[],
            reported: 0,
        };
        r.segment(&2, 1, ack, &mut d);
        let data = Segment {
            number: 2,
            seq: 1,
            ack: 0,
            flags: PSH,
            payload: &[1, b'x'],
            reported: 2,
        };
        r.segment(&2, 0, data, &mut d);
        assert!(d.seen.is_empty());
        assert_eq!(r.stats().retransmissions, 2);
    }

    /// Out of order (tshark's default): the later segment, after a gap, is dissected from
    /// its own start; the earlier one, arriving next, is behind and not dissected. A gap
    /// inside an unfinished PDU leaves a hole: the PDU is dropped, what follows it read.
    #[test]
    fn out_of_order_segments_and_holes() {
        let mut r = Reassembler::default();
        let got = run(
            &mut r,
            1,
            &[
                (0, 10, PSH, &[1, b'a']),
                (0, 14, PSH, &[1, b'c']),
                (0, 12, PSH, &[1, b'b']),
            ],
        );
        assert_eq!(
            got,
            [vec![b"\x01a".to_vec()], vec![b"\x01c".to_vec()], none()]
        );
        assert_eq!(r.stats().gaps, 1);
        // A 5-byte PDU [4, a, b, c, d] whose byte `b` (seq 2) is missing.
        let got = run(
            &mut r,
            2,
            &[(0, 0, PSH, &[4, b'a']), (0, 3, PSH, &[b'c', b'd', 1, b'z'])],
        );
        assert_eq!(got, [none(), vec![b"\x01z".to_vec()]]);
        assert_eq!(r.stats().holes, 1);
    }

    /// A segment overlapping bytes already seen is behind: not dissected, but its new
    /// bytes extend the unfinished PDU, so the PDU (completed without dissection) does not
    /// shift the stream: the next segment is read at the right place.
    #[test]
    fn overlaps_extend_the_unfinished_pdu() {
        let mut r = Reassembler::default();
        let got = run(
            &mut r,
            1,
            &[
                (0, 0, PSH, &[3, b'a', b'b']),
                (0, 2, PSH, b"bc"),
                (0, 4, PSH, &[1, b'n']),
            ],
        );
        assert_eq!(got, [none(), none(), vec![b"\x01n".to_vec()]]);
    }

    /// With out-of-order reassembly on, a segment ahead of a gap is held and dissected
    /// (with the one filling the gap) in the frame that fills it.
    #[test]
    fn out_of_order_mode_holds_segments_until_the_gap_fills() {
        let limits = Limits {
            out_of_order: true,
            ..Limits::default()
        };
        let mut r = Reassembler::new(limits);
        let got = run(
            &mut r,
            1,
            &[
                (0, 0, PSH, &[1, b'a']),
                (0, 4, PSH, &[b'c', 1, b'd']),
                (0, 2, PSH, &[2, b'b']),
                (0, 2, PSH, &[2, b'b']),
            ],
        );
        assert_eq!(
            got,
            [
                vec![b"\x01a".to_vec()],
                none(),
                vec![b"\x02bc".to_vec(), b"\x01d".to_vec()],
                none()
            ]
        );
        assert_eq!(r.buffered(), 0);
        // Held bytes past the cap are dropped and counted.
        let limits = Limits {
            out_of_order: true,
            out_of_order_bytes: 3,
            ..Limits::default()
        };
        let mut r = Reassembler::new(limits);
        run(
            &mut r,
            1,
            &[(0, 0, PSH, &[1, b'a']), (0, 10, PSH, &[1, b'x', 1, b'y'])],
        );
        assert_eq!(r.stats().out_of_order_dropped, 4);
        assert_eq!(r.buffered(), 0);
    }

    /// A PDU larger than the per-PDU cap is dropped at its end and the stream stays in
    /// step; past the flow cap a conversation is read segment by segment without
    /// reassembly (a split PDU shows as far as the segment goes).
    #[test]
    fn caps_are_counted_and_the_stream_stays_in_step() {
        let limits = Limits {
            pdu_bytes: 4,
            ..Limits::default()
        };
        let mut r = Reassembler::new(limits);
        let got = run(
            &mut r,
            1,
            &[
                (0, 0, PSH, &[9, 1, 2]),
                (0, 3, PSH, &[3, 4, 5]),
                (0, 6, PSH, &[6, 7, 8, 9, 1, b'k']),
            ],
        );
        assert_eq!(got, [none(), none(), vec![b"\x01k".to_vec()]]);
        assert_eq!(r.stats().oversized, 1);
        assert_eq!(r.buffered(), 0);
        let limits = Limits {
            flows: 1,
            ..Limits::default()
        };
        let mut r = Reassembler::new(limits);
        run(&mut r, 1, &[(0, 0, PSH, &[1, b'a'])]);
        let mut d = Pdus::default();
        let seg = Segment {
            number: 2,
            seq: 0,
            ack: 0,
            flags: PSH,
            payload: &[3, b'p'],
            reported: 2,
        };
        r.segment(&2, 0, seg, &mut d);
        assert_eq!(d.seen, [(vec![3, b'p'], 4)]);
        assert_eq!((r.flows(), r.stats().flows_refused), (1, 1));
        // All flows together: the second PDU does not fit in 4 bytes beside the first.
        let limits = Limits {
            total_bytes: 4,
            ..Limits::default()
        };
        let mut r = Reassembler::new(limits);
        run(&mut r, 1, &[(0, 0, PSH, &[9, 1, 2])]);
        run(&mut r, 2, &[(0, 0, PSH, &[9, 1, 2])]);
        assert_eq!(r.stats().oversized, 1);
        assert_eq!(r.buffered(), 3);
    }

    /// RST frees a conversation's state, as FIN in both directions does; a new SYN with
    /// another initial number on the same ports starts over.
    #[test]
    fn close_and_port_reuse_free_the_state() {
        let mut r = Reassembler::default();
        run(&mut r, 1, &[(0, 0, PSH, &[9, 1, 2])]);
        assert_eq!(r.buffered(), 2 + 1);
        run(&mut r, 1, &[(1, 50, 0x04, &[])]);
        assert_eq!((r.flows(), r.buffered(), r.stats().closed), (0, 0, 1));
        run(&mut r, 2, &[(0, 0, 0x02, &[]), (0, 1, PSH, &[9, 1])]);
        assert_eq!(r.buffered(), 2);
        let got = run(&mut r, 2, &[(0, 500, 0x02, &[]), (0, 501, PSH, &[1, b'n'])]);
        assert_eq!(got, [none(), vec![b"\x01n".to_vec()]]);
        assert_eq!(r.buffered(), 0);
        run(&mut r, 2, &[(0, 503, 0x11, &[]), (1, 9, 0x11, &[])]);
        assert_eq!(r.flows(), 0);
    }

    /// A PDU that runs to the FIN is dissected, whole and without reassembly, in the FIN's
    /// frame.
    #[test]
    fn a_pdu_until_the_fin() {
        let mut r = Reassembler::default();
        let mut d = Pdus {
            until_fin: true,
            ..Pdus::default()
        };
        let got = run_with(
            &mut r,
            1,
            &[
                (0, 0, PSH, &[0xff, 1]),
                (0, 2, PSH, &[2, 3]),
                (0, 4, 0x11, &[]),
            ],
            &mut d,
        );
        assert_eq!(got, [none(), none(), vec![vec![0xff, 1, 2, 3]]]);
    }
}
