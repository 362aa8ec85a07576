//! DNS over TCP (tshark's `packet-dns.c`, TCP ports 53 and 5353): each message after its
//! two-byte length, reassembled across segments; the same question and request-tracking
//! columns as over UDP, the first message's in a frame.

use super::{AppState, Dispatch, Tvb, dissect_pdus};
use crate::fields::{dns_question, track_dns};
use crate::reassembly::Desegment;

/// The DNS messages in `tvb`.
pub(super) fn dissect(
    d: &mut Dispatch<'_>,
    state: &mut AppState,
    tvb: Tvb<'_>,
    can_desegment: bool,
) -> Desegment {
    let pdu_len = |t: Tvb<'_>| t.u16(0).map(|l| u64::from(l) + 2);
    dissect_pdus(tvb, can_desegment, 2, pdu_len, |pdu| {
        let m = pdu.data.get(2..).unwrap_or(&[]);
        if m.len() < 12 {
            d.malformed.push("dns");
            return;
        }
        let question = dns_question(m, false);
        let tracked = track_dns(&mut state.dns, (), m, &d.packet);
        if d.dns.is_none() {
            let mut all: [String; 7] = Default::default();
            for (slot, v) in all.iter_mut().zip(question.into_iter().chain(tracked)) {
                *slot = v;
            }
            d.dns = Some(all);
        }
    })
}
