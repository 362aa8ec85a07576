//! The roles over links that misbehave on purpose: a wrapper rewrites what the in-process
//! link brought back (a sum only, a vanished device, deltas, protocol violations), the
//! way a secure-aggregation layer or a faulty network would.

use iotids_model::params::flatten;
use iotids_model::train::Optimizer;

use super::*;
use crate::partition::PartitionKind;
use crate::simulate::tests::{Data, data, untimed};
use crate::transport::{Conditions, InProcess, InProcessEdges, UpdateSum};

const CLASS_WEIGHTS: [f64; 3] = [1.0; 3];

fn cfg() -> FederationConfig {
    FederationConfig {
        devices: 4,
        edges: 1,
        edge_rounds: 1,
        partition: PartitionKind::Iid,
        ..pinned()
    }
}

/// A quarter of the training rows each.
fn quarters(d: &Data) -> Vec<Vec<usize>> {
    d.train
        .chunks(d.train.len() / 4)
        .map(<[usize]>::to_vec)
        .collect()
}

fn devices<'a>(d: &'a Data, rows: &'a [Vec<usize>]) -> Vec<Device<'a>> {
    rows.iter()
        .enumerate()
        .map(|(i, rows)| {
            Device::new(
                i,
                &d.model,
                &CLASS_WEIGHTS,
                Examples {
                    sequences: &d.seq,
                    labels: &d.labels,
                    rows,
                },
            )
        })
        .collect()
}

/// Round 1's model from the cloud, as `cfg()` plans it.
fn start(d: &Data) -> GlobalModel {
    GlobalModel {
        round: 1,
        edge_round: 0,
        weights: flatten(&d.model.init(&iotids_model::backend::device())),
        plan: Plan::new(&cfg(), &d.cfg),
    }
}

/// Exchanges over the inner link, then rewrites what came back.
struct Rewrite<L, F>(L, F);

/// `link` as a secure-aggregation layer shows it: only the sum of the updates arrives.
fn summing<L: Link<DeviceUpdate>>(link: L) -> impl Link<DeviceUpdate> {
    Rewrite(link, |m: &GlobalModel, mut ex: Exchange<DeviceUpdate>| {
        let sum = UpdateSum::of(each(&mut ex).iter(), m).unwrap();
        Exchange {
            arrived: Arrived::Sum(sum),
            ..ex
        }
    })
}

impl<Up, L, F> Link<Up> for Rewrite<L, F>
where
    L: Link<Up>,
    F: FnMut(&GlobalModel, Exchange<Up>) -> Exchange<Up>,
{
    fn exchange(
        &mut self,
        model: &GlobalModel,
        peers: &[usize],
        wait: Wait,
    ) -> crate::Result<Exchange<Up>> {
        let ex = self.0.exchange(model, peers, wait)?;
        Ok((self.1)(model, ex))
    }
}

fn each<Up>(ex: &mut Exchange<Up>) -> &mut Vec<Up> {
    match &mut ex.arrived {
        Arrived::Each(u) => u,
        Arrived::Sum(_) => panic!("a plain link sends each update"),
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn an_edge_given_only_the_sum_takes_the_same_mean_and_no_robust_rule() {
    let d = data();
    let rows = quarters(&d);
    let devs = devices(&d, &rows);
    let conditions = Conditions::new(&cfg());
    let link = InProcess::new(&devs, &conditions).unwrap();
    let edge = Edge::new(0, vec![3, 1, 0, 2, 1], Aggregation::Mean);
    assert_eq!(edge.members(), &[0, 1, 2, 3]);
    let model = start(&d);
    let plain = edge.round(&model, &mut link.clone()).unwrap();
    let mut summing = summing(link);
    let summed = edge.round(&model, &mut summing).unwrap();
    let (p, s) = (plain.model.unwrap(), summed.model.unwrap());
    assert_eq!((p.samples, s.samples), (960, 960));
    let diff = max_diff(&p.weights, &s.weights);
    assert!(diff < 1e-6, "sum/n vs weighted mean: {diff}");
    // The accounting is the same; the metrics are one entry, the weighted mean.
    let (pr, sr) = (&plain.edge_rounds[0], &summed.edge_rounds[0]);
    assert_eq!(pr.devices, sr.devices);
    assert_eq!((pr.bytes_down, pr.bytes_up), (sr.bytes_down, sr.bytes_up));
    assert_eq!((pr.training.len(), sr.training.len()), (4, 1));
    let mean_loss: f64 = pr
        .training
        .iter()
        .map(|t| t.loss * t.samples as f64)
        .sum::<f64>()
        / 960.0;
    assert!((sr.training[0].loss - mean_loss).abs() < 1e-12);
    // A robust rule needs each update.
    let median = Edge::new(0, vec![0, 1, 2, 3], Aggregation::Median);
    let e = median.round(&model, &mut summing).unwrap_err().to_string();
    assert!(e.contains("edge_aggregation") && e.contains("mean"), "{e}");
}

#[test]
fn a_vanished_device_is_left_out_and_the_rest_reweighted() {
    let d = data();
    let rows = quarters(&d);
    let devs = devices(&d, &rows);
    let conditions = Conditions::new(&cfg());
    let link = InProcess::new(&devs, &conditions).unwrap();
    let edge = Edge::new(0, vec![0, 1, 2, 3], Aggregation::Mean);
    let model = start(&d);
    let mut vanish = Rewrite(link, |_: &GlobalModel, mut ex: Exchange<DeviceUpdate>| {
        each(&mut ex).retain(|u| u.device != 2);
        for o in &mut ex.outcomes {
            if o.peer == 2 {
                o.delivery = Delivery::Failed;
            }
        }
        ex
    });
    let out = edge.round(&model, &mut vanish).unwrap();
    // By hand: the other three updates, weighted by their rows over their own total.
    let mut ex = link
        .clone()
        .exchange(&model, &[0, 1, 2, 3], Wait::default())
        .unwrap();
    let ups: Vec<DeviceUpdate> = each(&mut ex).drain(..).filter(|u| u.device != 2).collect();
    let weights: Vec<_> = ups
        .iter()
        .map(|u| u.payload.weights(&model.weights))
        .collect();
    let kept: Vec<Update<'_>> = ups
        .iter()
        .zip(&weights)
        .map(|(u, w)| Update {
            weights: w,
            samples: u.training.samples as f64,
        })
        .collect();
    let expected = Aggregation::Mean.aggregate(&kept).unwrap();
    let got = out.model.unwrap();
    assert_eq!(got.weights, expected);
    assert_eq!(got.samples, 720);
    let report = &out.edge_rounds[0];
    assert_eq!(report.devices[2].delivery, Delivery::Failed);
    assert_eq!(report.training.len(), 3);
}

#[test]
fn deltas_add_up_to_the_same_model() {
    let d = data();
    let rows = quarters(&d);
    let devs = devices(&d, &rows);
    let conditions = Conditions::new(&cfg());
    let link = InProcess::new(&devs, &conditions).unwrap();
    let edge = Edge::new(0, vec![0, 1, 2, 3], Aggregation::Mean);
    let model = start(&d);
    let plain = edge.round(&model, &mut link.clone()).unwrap();
    let mut deltas = Rewrite(link, |m: &GlobalModel, mut ex: Exchange<DeviceUpdate>| {
        for u in each(&mut ex) {
            let w = u.payload.weights(&m.weights).into_owned();
            u.payload = Payload::Delta(w.iter().zip(&m.weights).map(|(w, s)| w - s).collect());
        }
        ex
    });
    let out = edge.round(&model, &mut deltas).unwrap();
    let diff = max_diff(&plain.model.unwrap().weights, &out.model.unwrap().weights);
    assert!(diff < 1e-6, "{diff}");
}

#[test]
fn updates_that_break_the_protocol_are_refused_naming_the_device() {
    let d = data();
    let rows = quarters(&d);
    let devs = devices(&d, &rows);
    let conditions = Conditions::new(&cfg());
    let link = InProcess::new(&devs, &conditions).unwrap();
    let edge = Edge::new(0, vec![0, 1, 2, 3], Aggregation::Mean);
    let model = start(&d);
    type Fix = fn(&mut Exchange<DeviceUpdate>);
    let cases: [(Fix, &str); 4] = [
        (
            |ex| each(ex)[0].round = 7,
            "device 0 sent an update for round 7",
        ),
        (
            |ex| {
                let again = each(ex)[1].clone();
                each(ex).push(again);
            },
            "device 1 sent two updates",
        ),
        (
            |ex| ex.outcomes[3].delivery = Delivery::Late,
            "device 3 sent an update the link did not accept",
        ),
        (
            |ex| each(ex)[2].payload = Payload::Weights(vec![0.0; 3]),
            "device 2 sent an update of 3 values",
        ),
    ];
    for (fix, want) in cases {
        let mut bad = Rewrite(link, |_: &GlobalModel, mut ex: Exchange<DeviceUpdate>| {
            fix(&mut ex);
            ex
        });
        let e = edge.round(&model, &mut bad).unwrap_err();
        assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
        assert!(e.to_string().contains(want), "{e} (want {want})");
    }
    // A peer the link does not know.
    let e = link
        .clone()
        .exchange(&model, &[0, 9], Wait::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("device 9") && e.contains("below 4"), "{e}");
}

#[test]
fn a_cloud_resumed_from_its_checkpoint_goes_on_as_if_never_stopped() {
    let d = data();
    let rows = quarters(&d);
    let devs = devices(&d, &rows);
    let cfg = FederationConfig {
        edges: 2,
        edge_rounds: 2,
        strategy: crate::strategy::Strategy::FedAdam,
        ..cfg()
    };
    let conditions = Conditions::new(&cfg);
    let edges = vec![
        Edge::new(0, vec![0, 1], Aggregation::Mean),
        Edge::new(1, vec![2, 3], Aggregation::Mean),
    ];
    let mut link = InProcessEdges::new(edges, InProcess::new(&devs, &conditions).unwrap()).unwrap();
    let validation = Validation {
        examples: Examples {
            sequences: &d.seq,
            labels: &d.labels,
            rows: &d.validation,
        },
        class_weights: &CLASS_WEIGHTS,
    };
    let cloud = || Cloud::new(&cfg, &d.model, &d.cfg, validation).unwrap();
    let mut straight = cloud();
    let all: Vec<RoundRecord> = (0..4)
        .map(|_| untimed(&straight.round(&mut link).unwrap()))
        .collect();
    let mut first = cloud();
    for _ in 0..2 {
        first.round(&mut link).unwrap();
    }
    let checkpoint = first.state().clone();
    assert_eq!(checkpoint.round, 2);
    drop(first);
    let mut resumed = cloud();
    resumed.resume(checkpoint).unwrap();
    let rest: Vec<RoundRecord> = (0..2)
        .map(|_| untimed(&resumed.round(&mut link).unwrap()))
        .collect();
    assert_eq!(
        rest,
        all[2..],
        "rounds 3 and 4, the server's moments included"
    );
    assert_eq!(resumed.into_best(), straight.into_best());

    let mut other = cloud();
    let mut bad = other.state().clone();
    bad.global.pop();
    let e = other.resume(bad).unwrap_err().to_string();
    assert!(e.contains("checkpoint"), "{e}");

    // An edge answering another round is refused.
    let mut stale = Rewrite(link, |_: &GlobalModel, mut ex: Exchange<EdgeUpdate>| {
        each(&mut ex)[1].round = 99;
        ex
    });
    let e = cloud().round(&mut stale).unwrap_err().to_string();
    assert!(e.contains("edge 1 sent an update for round 99"), "{e}");
    // Or its edge rounds out of order.
    let Rewrite(link, _) = stale;
    let mut shuffled = Rewrite(link, |_: &GlobalModel, mut ex: Exchange<EdgeUpdate>| {
        each(&mut ex)[0].edge_rounds.swap(0, 1);
        ex
    });
    let e = cloud().round(&mut shuffled).unwrap_err().to_string();
    assert!(
        e.contains("edge 0 sent reports of edge rounds [1, 0]"),
        "{e}"
    );
}

/// The defaults these tests (and golden.json) were written against: FedAvg, 30 rounds,
/// the single best round kept.
fn pinned() -> FederationConfig {
    FederationConfig {
        strategy: crate::strategy::Strategy::FedAvg,
        rounds: 30,
        selection_window: 1,
        local_optimizer: crate::config::LocalOptimizer::Adam,
        normalized_averaging: false,
        local_class_weights: false,
        ..FederationConfig::default()
    }
}

#[test]
fn normalized_averaging_weighs_each_device_by_its_path_not_its_steps() {
    // The path: τ = epochs · ⌈n / batch⌉ steps; heavy ball ρ sums (1 − ρᵏ)/(1 − ρ).
    let mut local = start(&data()).plan.local;
    local.epochs = 2;
    local.batch_size = 256;
    local.optimizer = Optimizer::Adam;
    assert_eq!(local.path(300), 4.0);
    local.optimizer = Optimizer::Sgd { momentum: 0.0 };
    assert_eq!(local.path(300), 4.0);
    local.optimizer = Optimizer::Sgd { momentum: 0.5 };
    // (0.5 + 0.75 + 0.875 + 0.9375) / 0.5
    assert!((local.path(300) - 6.125).abs() < 1e-12);

    // By hand: w₀ = 0; A holds 256 windows (1 step) and moved to (1, 0), B 768 (3 steps)
    // and moved to (0, 3). τ_eff = ¼·1 + ¾·3 = 2.5, so A counts as (2.5, 0) and B as
    // (0, 2.5); their mean by windows is (0.625, 1.875), where FedAvg's is (0.25, 2.25).
    local.epochs = 1;
    local.optimizer = Optimizer::Sgd { momentum: 0.0 };
    let start_w = [0.0f32, 0.0];
    let mut w = vec![Cow::Owned(vec![1.0f32, 0.0]), Cow::Owned(vec![0.0f32, 3.0])];
    normalize_paths(&local, &start_w, [256u64, 768].into_iter(), &mut w);
    assert_eq!(
        (&w[0][..], &w[1][..]),
        (&[2.5f32, 0.0][..], &[0.0f32, 2.5][..])
    );
    let updates = [
        Update {
            weights: &w[0],
            samples: 256.0,
        },
        Update {
            weights: &w[1],
            samples: 768.0,
        },
    ];
    let mean = Aggregation::Mean.aggregate(&updates).unwrap();
    assert!(max_diff(&mean, &[0.625, 1.875]) < 1e-6, "{mean:?}");

    // Equal paths: FedNova is FedAvg. Four equal quarters at one edge give the same model.
    let d = data();
    let rows = quarters(&d);
    let devs = devices(&d, &rows);
    let conditions = Conditions::new(&cfg());
    let link = InProcess::new(&devs, &conditions).unwrap();
    let edge = Edge::new(0, vec![0, 1, 2, 3], Aggregation::Mean);
    let plain_model = start(&d);
    let mut nova_model = plain_model.clone();
    nova_model.plan.normalized = true;
    let plain = edge.round(&plain_model, &mut link.clone()).unwrap();
    let nova = edge.round(&nova_model, &mut link.clone()).unwrap();
    let diff = max_diff(&plain.model.unwrap().weights, &nova.model.unwrap().weights);
    assert!(diff < 1e-6, "equal paths, equal means: {diff}");
    // A link that hands over only the sum: each device folds its path into what it sends
    // (nᵢΔᵢ/aᵢ and nᵢaᵢ), and the sum gives FedNova's model all the same.
    let each = edge.round(&nova_model, &mut link.clone()).unwrap();
    let mut summing = summing(link);
    let summed = edge.round(&nova_model, &mut summing).unwrap();
    let diff = max_diff(&each.model.unwrap().weights, &summed.model.unwrap().weights);
    assert!(diff < 1e-6, "FedNova from the sum: {diff}");
}
