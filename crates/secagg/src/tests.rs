//! The protocol end to end, in memory: exact sums, dropouts at every stage, misbehaving
//! devices, refusals, and what the edge gets to see.

use std::collections::BTreeMap;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::*;

/// What happens to whom in a test aggregation.
#[derive(Default)]
struct Script {
    /// Share keys, then vanish before sending a masked vector.
    drop_before_masking: Vec<u64>,
    /// Send a masked vector, then vanish before unmasking.
    drop_before_unmask: Vec<u64>,
    /// Corrupt the sealed pair this dealer sends to this holder.
    corrupt_pair: Option<(u64, u64)>,
    /// Reveal garbage for every share this device reveals.
    lie_at_unmask: Option<u64>,
}

fn vectors(n: usize, len: usize, seed: u64) -> BTreeMap<u64, Vec<u64>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n as u64)
        .map(|id| (id, (0..len).map(|_| rng.next_u64() >> 20).collect()))
        .collect()
}

fn run(
    n: usize,
    settings: Settings,
    data: &BTreeMap<u64, Vec<u64>>,
    script: &Script,
) -> Result<(Aggregate, BTreeMap<u64, Masked>)> {
    let len = data.values().next().map_or(0, Vec::len);
    let spec = RoundSpec::new(
        context("test", &[1, 2]),
        (0..n as u64).collect(),
        len,
        settings,
    )?;
    let mut server = Server::new(spec.clone());
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let mut clients = BTreeMap::new();
    let mut keys = Vec::new();
    for id in 0..n as u64 {
        let (c, k) = Client::new(id, spec.clone(), &mut rng)?;
        clients.insert(id, c);
        keys.push(k);
    }
    let books = server.receive_keys(keys);
    let mut shares = Vec::new();
    for (id, book) in &books {
        let mut s = clients.get_mut(id).unwrap().share_keys(book)?;
        if let Some((from, to)) = script.corrupt_pair
            && from == *id
        {
            for x in &mut s.sealed {
                if x.to == to {
                    x.ciphertext[3] ^= 1;
                }
            }
        }
        shares.push(s);
    }
    let inboxes = server.receive_shares(shares);
    let mut masked = BTreeMap::new();
    for (id, inbox) in &inboxes {
        if script.drop_before_masking.contains(id) {
            continue;
        }
        let m = clients.get_mut(id).unwrap().mask(inbox, &data[id])?;
        masked.insert(*id, m);
    }
    let request = server.receive_masked(masked.values().cloned().collect())?;
    let mut reveals = Vec::new();
    for id in &request.survivors {
        if script.drop_before_unmask.contains(id) {
            continue;
        }
        let mut r = clients.get_mut(id).unwrap().unmask(&request)?;
        if script.lie_at_unmask == Some(*id) {
            for (_, s) in r.seeds.iter_mut().chain(r.keys.iter_mut()) {
                *s = [7; 32];
            }
        }
        reveals.push(r);
    }
    Ok((server.finish(reveals)?, masked))
}

fn plain_sum(data: &BTreeMap<u64, Vec<u64>>, ids: &[u64]) -> Vec<u64> {
    let len = data.values().next().map_or(0, Vec::len);
    let mut sum = vec![0u64; len];
    for id in ids {
        for (s, w) in sum.iter_mut().zip(&data[id]) {
            *s = s.wrapping_add(*w);
        }
    }
    sum
}

#[test]
fn with_everyone_present_the_edge_gets_the_exact_sum() {
    let data = vectors(6, 257, 1);
    let (agg, _) = run(6, Settings::default(), &data, &Script::default()).unwrap();
    assert_eq!(agg.included, (0..6).collect::<Vec<u64>>());
    assert!(agg.dropped.is_empty() && agg.excluded.is_empty());
    assert_eq!(agg.sum, plain_sum(&data, &agg.included));
}

#[test]
fn a_third_dropping_at_either_stage_still_gives_the_survivors_exact_sum() {
    let data = vectors(12, 100, 2);
    // Four of twelve vanish after sharing, before masking: their pairwise masks in the
    // others' vectors are removed with their rebuilt keys.
    let script = Script {
        drop_before_masking: vec![1, 5, 8, 11],
        ..Script::default()
    };
    let (agg, _) = run(12, Settings::default(), &data, &script).unwrap();
    assert_eq!(agg.dropped, vec![1, 5, 8, 11]);
    assert_eq!(agg.included.len(), 8);
    assert_eq!(agg.sum, plain_sum(&data, &agg.included));
    // Four vanish after masking, before unmasking: their vectors are in, their seeds
    // rebuilt from the others' shares.
    let script = Script {
        drop_before_unmask: vec![0, 3, 7, 10],
        ..Script::default()
    };
    let (agg, _) = run(12, Settings::default(), &data, &script).unwrap();
    assert_eq!(agg.included.len(), 12);
    assert_eq!(agg.sum, plain_sum(&data, &agg.included));
}

#[test]
fn sparse_neighbourhoods_of_secagg_plus_recover_the_sum_with_30_percent_dropping() {
    let n = 100;
    let data = vectors(n, 16, 3);
    let settings = Settings {
        neighbours: Some(25),
        ..Settings::default()
    };
    let spec = RoundSpec::new([5; 32], (0..n as u64).collect(), 16, settings).unwrap();
    let circles = spec.circles();
    for (id, c) in &circles {
        assert!(c.len() >= 25 && c.len() <= 26, "device {id}: {}", c.len());
        for other in c {
            assert!(circles[other].contains(id), "{id} and {other}");
        }
    }
    let drop: Vec<u64> = (0..n as u64).filter(|i| i % 10 < 3).collect();
    let script = Script {
        drop_before_masking: drop.clone(),
        ..Script::default()
    };
    let (agg, _) = run(n, settings, &data, &script).unwrap();
    assert_eq!(agg.dropped, drop);
    assert_eq!(agg.included.len(), 70);
    assert_eq!(agg.sum, plain_sum(&data, &agg.included));
}

#[test]
fn too_few_survivors_fail_rather_than_reveal() {
    let data = vectors(5, 8, 4);
    let script = Script {
        drop_before_masking: vec![0, 1, 2],
        ..Script::default()
    };
    let err = run(5, Settings::default(), &data, &script)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 of 5 devices") && err.contains("threshold is 3"),
        "{err}"
    );
}

#[test]
fn a_device_dealing_a_bad_share_is_excluded_and_the_rest_sum_exactly() {
    let data = vectors(8, 50, 5);
    let script = Script {
        corrupt_pair: Some((2, 6)),
        ..Script::default()
    };
    let (agg, masked) = run(8, Settings::default(), &data, &script).unwrap();
    assert_eq!(masked[&6].rejected, vec![2]);
    assert_eq!(agg.excluded.len(), 1);
    assert_eq!(agg.excluded[0].0, 2);
    assert!(agg.excluded[0].1.contains("device 6"), "{:?}", agg.excluded);
    assert!(!agg.included.contains(&2) && agg.dropped.contains(&2));
    assert_eq!(agg.sum, plain_sum(&data, &agg.included));
}

#[test]
fn a_device_revealing_wrong_shares_is_outvoted_by_the_commitments() {
    let data = vectors(7, 30, 6);
    let script = Script {
        drop_before_masking: vec![4],
        lie_at_unmask: Some(1),
        ..Script::default()
    };
    let (agg, _) = run(7, Settings::default(), &data, &script).unwrap();
    assert_eq!(agg.sum, plain_sum(&data, &agg.included));
    assert_eq!(agg.included, vec![0, 1, 2, 3, 5, 6]);
}

/// Pearson's χ² of the top bytes of `words` against the uniform distribution.
fn chi_square_top_byte(words: &[u64]) -> f64 {
    let mut counts = [0f64; 256];
    for w in words {
        counts[(w >> 56) as usize] += 1.0;
    }
    let expected = words.len() as f64 / 256.0;
    counts
        .iter()
        .map(|c| (c - expected).powi(2) / expected)
        .sum()
}

#[test]
fn one_masked_vector_looks_uniform_while_the_update_does_not() {
    // A smooth update: small fixed-point values, far from uniform in the ring.
    let len = 20_000;
    let f = Fixed::default();
    let values: Vec<f64> = (0..len).map(|i| ((i as f64) * 0.01).sin() * 0.05).collect();
    let update = f.encode(&values).unwrap();
    let data: BTreeMap<u64, Vec<u64>> = (0..5).map(|id| (id, update.clone())).collect();
    let (_, masked) = run(5, Settings::default(), &data, &Script::default()).unwrap();
    // χ² with 255 degrees of freedom: the 0.999 quantile is about 330.5.
    let plain = chi_square_top_byte(&update);
    assert!(
        plain > 10_000.0,
        "the update itself is far from uniform: {plain}"
    );
    for (id, m) in &masked {
        let words = m.vector();
        assert_eq!(words.len(), len);
        let chi = chi_square_top_byte(&words);
        assert!(chi < 330.5, "device {id}: χ² = {chi}");
        let same = words.iter().zip(&update).filter(|(a, b)| a == b).count();
        assert!(same < 5, "device {id}: {same} words unmasked");
        // The low bits too: the parity of the words is balanced.
        let odd = words.iter().filter(|w| *w & 1 == 1).count() as f64 / len as f64;
        assert!((odd - 0.5).abs() < 0.02, "device {id}: {odd}");
    }
}

#[test]
fn devices_refuse_requests_that_would_unmask_one_of_them() {
    let spec = RoundSpec::new([1; 32], vec![0, 1, 2, 3], 4, Settings::default()).unwrap();
    assert_eq!(spec.threshold, 3);
    let mut server = Server::new(spec.clone());
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut clients: Vec<Client> = Vec::new();
    let mut keys = Vec::new();
    for id in 0..4 {
        let (c, k) = Client::new(id, spec.clone(), &mut rng).unwrap();
        clients.push(c);
        keys.push(k);
    }
    let books = server.receive_keys(keys);
    let shares: Vec<Shares> = clients
        .iter_mut()
        .map(|c| c.share_keys(&books[&c.id()]).unwrap())
        .collect();
    let inboxes = server.receive_shares(shares);
    for c in &mut clients {
        c.mask(&inboxes[&c.id()], &[1, 2, 3, 4]).unwrap();
    }
    // Both a seed and a key of device 3: its vector would be exposed.
    let both = UnmaskRequest {
        survivors: vec![0, 1, 2, 3],
        dropped: vec![3],
    };
    assert!(
        clients[0]
            .unmask(&both)
            .unwrap_err()
            .to_string()
            .contains("survivor and dropped")
    );
    let few = UnmaskRequest {
        survivors: vec![0, 1],
        dropped: vec![2, 3],
    };
    assert!(
        clients[0]
            .unmask(&few)
            .unwrap_err()
            .to_string()
            .contains("2 survivors")
    );
    let fine = UnmaskRequest {
        survivors: vec![0, 1, 2, 3],
        dropped: vec![],
    };
    let r = clients[0].unmask(&fine).unwrap();
    assert_eq!(r.seeds.len(), 4);
    assert!(r.keys.is_empty());
    // Once only: a second request (say, now calling 3 dropped) is refused.
    let again = UnmaskRequest {
        survivors: vec![0, 1, 2],
        dropped: vec![3],
    };
    assert!(
        clients[0]
            .unmask(&again)
            .unwrap_err()
            .to_string()
            .contains("stage Done")
    );
    // Out of turn: masking again.
    assert!(clients[1].mask(&inboxes[&1], &[0; 4]).is_err());
}

#[test]
fn settings_out_of_range_are_errors_naming_them() {
    let one = RoundSpec::new([0; 32], vec![3], 1, Settings::default()).unwrap_err();
    assert!(one.to_string().contains("participants = 1"), "{one}");
    let k = Settings {
        neighbours: Some(9),
        ..Settings::default()
    };
    let err = RoundSpec::new([0; 32], (0..5).collect(), 1, k).unwrap_err();
    assert!(err.to_string().contains("neighbours = 9"), "{err}");
    let t = Settings {
        threshold: Some(1),
        ..Settings::default()
    };
    let err = RoundSpec::new([0; 32], (0..5).collect(), 1, t).unwrap_err();
    assert!(err.to_string().contains("threshold = 1"), "{err}");
    assert_eq!(default_neighbours(50), 50);
    assert_eq!(default_neighbours(1000), 64);
    let spec = RoundSpec::new([0; 32], vec![0, 1], 1, Settings::default()).unwrap();
    assert!(Client::new(7, spec, &mut ChaCha20Rng::seed_from_u64(0)).is_err());
}

#[test]
fn messages_round_trip_through_their_encoding() {
    let m = Masked {
        id: 3,
        words: Masked::pack(&[1, u64::MAX, 7]),
        rejected: vec![2],
    };
    let bytes = encode(&m);
    assert_eq!(decode::<Masked>("masked", &bytes).unwrap(), m);
    assert_eq!(m.vector(), vec![1, u64::MAX, 7]);
    assert!(
        decode::<Masked>("masked", &bytes[..5])
            .unwrap_err()
            .to_string()
            .contains("masked")
    );
}
