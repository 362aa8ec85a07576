//! Secure aggregation over real gRPC and mutual TLS on 127.0.0.1: an edge's
//! [`DeviceLink`] runs the four SecAgg+ stages with five device clients made by hand (the
//! real device side, [`DeviceSecAgg`], with updates made up instead of trained). Three are
//! honest; one seals shares that do not open, one sends a masked vector of the wrong
//! length. The edge round completes with the honest three, the two are excluded and
//! reported, the sum is the honest updates' sum, and the edge never receives an update in
//! the clear (a tap on its hub sees every answer). A device that vanishes after dealing
//! is survived; with too few left the edge round fails, not the edge. And a device refuses
//! stages out of turn, for another edge round, or that do not decode.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotids_federation::FederationConfig;
use iotids_federation::message::{Delivery, DeviceUpdate, GlobalModel, Payload, Plan, Training};
use iotids_federation::private::Folding;
use iotids_federation::transport::{Arrived, Exchange, Link, UpdateSum, Wait};
use iotids_model::train::TrainConfig;
use iotids_net::certs::{Node, TlsFiles};
use iotids_net::client::Upstream;
use iotids_net::hub::{Hub, Tier};
use iotids_net::link::DeviceLink;
use iotids_net::proto;
use iotids_net::secure::{DeviceSecAgg, SETUP, SHARE, UNMASK, stage_task_id};
use iotids_secagg::{KeyBook, Keys, Masked, RoundSpec, Shares, UnmaskRequest, decode, encode};

const DEVICES: usize = 5;
/// Seals shares that do not open.
const BAD_SHARES: usize = 3;
/// Sends a masked vector of the wrong length.
const SHORT_VECTOR: usize = 4;

fn model() -> GlobalModel {
    let cfg = FederationConfig {
        secure_aggregation: true,
        ..FederationConfig::default()
    };
    GlobalModel {
        round: 1,
        edge_round: 0,
        weights: vec![0.5, -0.5, 1.0, 2.0, 0.25, -1.5],
        plan: Plan::new(&cfg, &TrainConfig::default()),
    }
}

/// Device `d`'s made-up update to `model`.
fn update(d: usize, model: &GlobalModel) -> DeviceUpdate {
    DeviceUpdate {
        device: d,
        round: model.round,
        edge_round: model.edge_round,
        payload: Payload::Weights(
            model
                .weights
                .iter()
                .enumerate()
                .map(|(i, w)| w + 0.01 * (d as f32 + 1.0) * (i as f32 - 2.0))
                .collect(),
        ),
        training: Training {
            samples: 10 + d as u64,
            loss: 0.5 - 0.05 * d as f64,
            accuracy: 0.8 + 0.02 * d as f64,
        },
        class_counts: Vec::new(),
        evaluation: None,
    }
}

/// Device `d`: pulls its tasks and answers them until the run is over.
fn device(d: usize, mut up: Upstream, rt: &tokio::runtime::Runtime, silent: Option<usize>) {
    let mut secagg = DeviceSecAgg::new(d);
    loop {
        let Ok(task) = rt.block_on(up.pull("")) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let kind = match (
            &task.kind,
            &task
                .kind
                .as_ref()
                .and_then(|k| secagg.answer_stage(&task.id, k)),
        ) {
            (Some(proto::task::Kind::Finish(_)), _) => return,
            (_, Some(Ok(proto::answer::Kind::SecaggShares(m)))) if d == BAD_SHARES => {
                let mut shares: Shares = decode("shares", &m.message).unwrap();
                for s in &mut shares.sealed {
                    s.ciphertext[0] ^= 1;
                }
                proto::answer::Kind::SecaggShares(proto::SecAggMessage {
                    message: encode(&shares),
                })
            }
            (_, Some(answer)) => answer.clone().unwrap(),
            // Gone quiet: the hub hands the task out again on every pull.
            (Some(proto::task::Kind::Train(_)), None) if silent == Some(d) => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            (Some(proto::task::Kind::Train(t)), None) => {
                let sent = iotids_net::wire::model_from_wire(t.model.clone().unwrap()).unwrap();
                let inbox = secagg.inbox(&task.id, &t.secagg_inbox).unwrap();
                let answer = secagg
                    .mask(&task.id, &inbox, &sent, &update(d, &sent))
                    .unwrap();
                match answer {
                    proto::answer::Kind::SecaggMasked(m) if d == SHORT_VECTOR => {
                        let mut masked: Masked = decode("masked", &m.message).unwrap();
                        masked.words.truncate(masked.words.len() - 8);
                        proto::answer::Kind::SecaggMasked(proto::SecAggMessage {
                            message: encode(&masked),
                        })
                    }
                    a => a,
                }
            }
            _ => continue,
        };
        let ack = rt
            .block_on(up.push(proto::Answer {
                task: task.id.clone(),
                kind: Some(kind),
            }))
            .unwrap();
        assert!(ack.accepted, "device {d}: {}", ack.reason);
    }
}

/// One edge round of `model` with `devices` hand-made devices over a real hub (device
/// `silent` vanishes once it has shared its keys, never answering its training task);
/// the exchange and every answer the hub received.
fn edge_round(
    model: &GlobalModel,
    devices: usize,
    silent: Option<usize>,
    wait: Wait,
) -> (Exchange<DeviceUpdate>, Vec<(usize, proto::Answer)>) {
    let dir = tempfile::tempdir().unwrap();
    iotids_net::certs::make(dir.path(), 1, devices, &[], 1).unwrap();
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
    let refused = Arc::new(AtomicU64::new(0));
    let hub = Hub::new(Tier::Devices { edge: 0 }, "test".into(), refused.clone());
    hub.set_roster(0..devices);
    let seen: Arc<Mutex<Vec<(usize, proto::Answer)>>> = Arc::default();
    {
        let seen = seen.clone();
        hub.tap(Arc::new(move |peer, a| {
            seen.lock().unwrap().push((peer, a.clone()));
        }));
    }
    let (listener, addr) = iotids_net::edge::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    iotids_net::edge::serve(
        rt.handle(),
        listener,
        iotids_net::tls::server_config(&TlsFiles::in_dir(dir.path(), Node::Edge(0))).unwrap(),
        hub.clone(),
        refused,
        1 << 20,
    )
    .unwrap();
    let url = format!("https://{addr}");
    let threads: Vec<_> = (0..devices)
        .map(|d| {
            let up = rt
                .block_on(async {
                    Upstream::new(
                        &url,
                        &TlsFiles::in_dir(dir.path(), Node::Device(d)),
                        1 << 20,
                        Duration::from_secs(10),
                    )
                })
                .unwrap();
            let rt = rt.clone();
            std::thread::spawn(move || device(d, up, &rt, silent))
        })
        .collect();

    let peers: Vec<usize> = (0..devices).collect();
    let mut link = DeviceLink::new(hub.clone(), rt.handle().clone(), "test".into(), 5.0);
    let ex = link.exchange(model, &peers, wait).unwrap();
    hub.finish("the test is over");
    for t in threads {
        t.join().unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    (ex, seen)
}

#[test]
fn bad_shares_and_bad_vectors_are_excluded_and_the_edge_sees_only_masked_updates() {
    let sent = model();
    let (ex, seen) = edge_round(&sent, DEVICES, None, Wait::until(None));

    // The honest three are in the sum; the two that misbehaved are out, and said why.
    let delivery: Vec<Delivery> = ex.outcomes.iter().map(|o| o.delivery).collect();
    use Delivery::{Accepted, Failed};
    assert_eq!(delivery, [Accepted, Accepted, Accepted, Failed, Failed]);
    let Arrived::Sum(sum) = &ex.arrived else {
        panic!("a secure link hands over a sum, not {:?}", ex.arrived)
    };
    let report = sum.secure.as_ref().unwrap();
    assert_eq!(report.failed, None);
    assert_eq!((report.participants, report.included), (5, 3));
    assert_eq!(report.excluded.len(), 2, "{:?}", report.excluded);
    let (bad, why) = &report.excluded[0];
    assert_eq!(*bad, BAD_SHARES);
    assert!(why.contains("did not check out"), "{why}");
    let (short, why) = &report.excluded[1];
    assert_eq!(*short, SHORT_VECTOR);
    assert!(why.contains("masked vector of"), "{why}");
    assert!(report.protocol_bytes > 0);
    assert!(ex.bytes_down > report.protocol_bytes / 2 && ex.bytes_up > 0);

    // The sum is the honest updates' sum, up to the fixed-point rounding.
    let honest: Vec<DeviceUpdate> = (0..3).map(|d| update(d, &sent)).collect();
    let clear = UpdateSum::of(&honest, &sent).unwrap();
    assert_eq!(sum.folded.len(), clear.folded.len());
    for (a, b) in sum.folded.iter().zip(&clear.folded) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }

    // Every update the edge received was masked: no word of it equals the device's
    // encoded folded update.
    let folding = Folding::new(&sent.plan, sent.weights.len());
    let fixed = iotids_secagg::Fixed {
        bits: sent.plan.secure.unwrap().fractional_bits,
    };
    let mut masked = 0;
    for (peer, a) in seen.iter() {
        assert!(
            !matches!(a.kind, Some(proto::answer::Kind::DeviceUpdate(_))),
            "device {peer} sent its update in the clear"
        );
        if let Some(proto::answer::Kind::SecaggMasked(m)) = &a.kind
            && *peer < 3
        {
            masked += 1;
            let m: Masked = decode("masked", &m.message).unwrap();
            let plain = fixed
                .encode(
                    &folding
                        .fold(&update(*peer, &sent), &sent.weights, &sent.plan)
                        .unwrap(),
                )
                .unwrap();
            let words = m.vector();
            assert_eq!(words.len(), plain.len());
            assert!(
                words.iter().zip(&plain).all(|(w, p)| w != p),
                "device {peer}'s masked vector shows its update"
            );
        }
    }
    assert_eq!(masked, 3);
}

fn setup(spec: Vec<u8>) -> proto::task::Kind {
    proto::task::Kind::SecaggSetup(proto::SecAggSetup { spec })
}

#[test]
fn a_device_refuses_stages_out_of_turn_for_other_rounds_or_garbled() {
    let mut d = DeviceSecAgg::new(1);
    let base = "run/round-1/edge-round-0";
    let share = |book: &KeyBook| {
        proto::task::Kind::SecaggShareKeys(proto::SecAggShareKeys {
            key_book: encode(book),
        })
    };
    let empty = KeyBook { keys: Vec::new() };
    let at = |stage| stage_task_id(base, stage);
    let e = d
        .answer_stage(&at(SHARE), &share(&empty))
        .unwrap()
        .unwrap_err();
    assert!(e.contains("before its setup"), "{e}");
    let e = d
        .answer_stage(&at(SETUP), &setup(vec![1, 2, 3]))
        .unwrap()
        .unwrap_err();
    assert!(e.contains("does not decode"), "{e}");
    let spec = RoundSpec::new([7; 32], vec![0, 1, 2], 4, Default::default()).unwrap();
    let e = d
        .answer_stage(base, &setup(encode(&spec)))
        .unwrap()
        .unwrap_err();
    assert!(e.contains("not `<edge round>/secagg-setup`"), "{e}");
    // A setup it is not part of.
    let others = RoundSpec::new([7; 32], vec![0, 2], 4, Default::default()).unwrap();
    let e = d
        .answer_stage(&at(SETUP), &setup(encode(&others)))
        .unwrap()
        .unwrap_err();
    assert!(e.contains("not a participant"), "{e}");
    assert!(!d.in_round());

    let keys = match d.answer_stage(&at(SETUP), &setup(encode(&spec))) {
        Some(Ok(proto::answer::Kind::SecaggKeys(m))) => decode::<Keys>("keys", &m.message),
        other => panic!("{other:?}"),
    };
    assert_eq!(keys.unwrap().id, 1);
    // Unmasking or masking before sharing; sharing for another edge round.
    let unmask = proto::task::Kind::SecaggUnmask(proto::SecAggUnmask {
        request: encode(&UnmaskRequest {
            survivors: vec![0, 1, 2],
            dropped: Vec::new(),
        }),
    });
    let other = "run/round-1/edge-round-1/secagg-share";
    let e = d.answer_stage(other, &share(&empty)).unwrap().unwrap_err();
    assert!(e.contains("while in `run/round-1/edge-round-0`"), "{e}");
    assert!(d.inbox(base, &[0xff; 3]).is_err());
    let e = d.answer_stage(&at(UNMASK), &unmask).unwrap().unwrap_err();
    assert!(e.contains("out of turn") || e.contains("stage"), "{e}");
    // Asked to unmask once: the round is over for it.
    assert!(!d.in_round());
    // Not a stage task.
    let train = proto::task::Kind::Train(proto::Train::default());
    assert!(d.answer_stage(base, &train).is_none());
}

/// A device that vanishes after dealing its shares: its mask key is rebuilt from its
/// neighbours' shares and the others' sum recovered. With too few left for the threshold,
/// the edge round yields nothing and says why, and no device counts as in; neither is an
/// error.
#[test]
fn a_device_vanishing_mid_protocol_is_survived_and_too_few_fail_the_round_only() {
    let sent = model();
    // Three devices (k = 3, t = 2); device 1 shares, then never answers its training.
    let (ex, _) = edge_round(&sent, 3, Some(1), Wait::until(Some(1.0)));
    let Arrived::Sum(sum) = &ex.arrived else {
        panic!("a secure link hands over a sum, not {:?}", ex.arrived)
    };
    let report = sum.secure.as_ref().unwrap();
    assert_eq!(report.failed, None, "{report:?}");
    assert_eq!(
        (report.participants, report.included, report.dropped),
        (3, 2, 1)
    );
    let delivery: Vec<Delivery> = ex.outcomes.iter().map(|o| o.delivery).collect();
    assert_eq!(delivery[0], Delivery::Accepted);
    assert_ne!(delivery[1], Delivery::Accepted);
    assert_eq!(delivery[2], Delivery::Accepted);
    let clear = UpdateSum::of(&[update(0, &sent), update(2, &sent)], &sent).unwrap();
    assert_eq!(sum.folded.len(), clear.folded.len());
    for (a, b) in sum.folded.iter().zip(&clear.folded) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }

    // Two devices (t = 2), one vanishing: one masked vector is below the threshold.
    let (ex, _) = edge_round(&sent, 2, Some(1), Wait::until(Some(1.0)));
    let Arrived::Sum(sum) = &ex.arrived else {
        panic!("a secure link hands over a sum, not {:?}", ex.arrived)
    };
    let report = sum.secure.as_ref().unwrap();
    let why = report.failed.as_deref().unwrap_or_default();
    assert!(why.contains("the threshold is 2"), "{report:?}");
    assert!(sum.folded.is_empty());
    assert_eq!(report.included, 0);
    assert!(ex.outcomes.iter().all(|o| o.delivery != Delivery::Accepted));
    assert_eq!(ex.outcomes[0].delivery, Delivery::Failed);
}
