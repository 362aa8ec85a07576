//! A tier's server over real gRPC and mutual TLS on 127.0.0.1 (a port the OS picks), with
//! clients that misbehave: non-finite, stale, duplicated and oversized updates, a device
//! not on the roster, an edge posing as a device. Each is refused or rejected with its
//! reason, and the exchange still closes with the honest answer.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use iotids_federation::FederationConfig;
use iotids_federation::message::{Delivery, DeviceUpdate, GlobalModel, Payload, Plan, Training};
use iotids_model::train::TrainConfig;
use iotids_net::certs::{Node, TlsFiles};
use iotids_net::client::Upstream;
use iotids_net::hub::{Check, Hub, Policy, Tier};
use iotids_net::{proto, wire};

fn model() -> GlobalModel {
    GlobalModel {
        round: 1,
        edge_round: 0,
        weights: vec![0.5, -0.5, 1.0, 2.0],
        plan: Plan::new(&FederationConfig::default(), &TrainConfig::default()),
    }
}

fn update(values: Vec<f32>, round: usize) -> proto::DeviceUpdate {
    wire::device_update_to_wire(&DeviceUpdate {
        device: 0,
        round,
        edge_round: 0,
        payload: Payload::Weights(values),
        training: Training {
            samples: 12,
            loss: 0.4,
            accuracy: 0.9,
        },
        class_counts: vec![6, 6],
        evaluation: None,
    })
}

fn answer(task: &str, u: proto::DeviceUpdate) -> proto::Answer {
    proto::Answer {
        task: task.to_string(),
        kind: Some(proto::answer::Kind::DeviceUpdate(u)),
    }
}

#[test]
fn misbehaving_peers_are_refused_or_rejected_and_the_exchange_still_closes() {
    let dir = tempfile::tempdir().unwrap();
    iotids_net::certs::make(dir.path(), 1, 3, &[], 1).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let refused = Arc::new(AtomicU64::new(0));
    let hub = Hub::new(Tier::Devices { edge: 0 }, "test".into(), refused.clone());
    let edge_files = TlsFiles::in_dir(dir.path(), Node::Edge(0));
    let (listener, addr) = iotids_net::edge::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let limit = 4096;
    iotids_net::edge::serve(
        rt.handle(),
        listener,
        iotids_net::tls::server_config(&edge_files).unwrap(),
        hub.clone(),
        refused,
        limit,
    )
    .unwrap();
    let url = format!("https://{addr}");
    // A channel spawns its connection task: make it inside the runtime.
    let client = |node| {
        rt.block_on(async {
            Upstream::new(
                &url,
                &TlsFiles::in_dir(dir.path(), node),
                1 << 20,
                Duration::from_secs(5),
            )
        })
        .unwrap()
    };

    // Before the cloud names the roster: come back later (not a refusal).
    let mut d0 = client(Node::Device(0));
    let early = rt.block_on(d0.pull("")).unwrap_err();
    assert_eq!(early.code(), tonic::Code::Unavailable, "{early:?}");
    hub.set_roster([0, 1]);

    // Not on the roster, and not a device at all: refused, counted.
    let mut d2 = client(Node::Device(2));
    let e = rt.block_on(d2.join("")).unwrap_err().to_string();
    assert!(e.contains("device-2 is not assigned to edge-0"), "{e}");
    let mut edge = client(Node::Edge(0));
    let e = rt.block_on(edge.join("")).unwrap_err().to_string();
    assert!(e.contains("edge-0 is not a device"), "{e}");
    assert_eq!(hub.refused(), 2);

    let sent = model();
    let task = proto::Task {
        id: "test/round-1/edge-round-0".into(),
        kind: Some(proto::task::Kind::Train(proto::Train {
            model: Some(wire::model_to_wire(&sent)),
            ..proto::Train::default()
        })),
        ..proto::Task::default()
    };
    let checked = sent.clone();
    let check: Check = Box::new(move |peer, a| match &a.kind {
        Some(proto::answer::Kind::DeviceUpdate(u)) => {
            wire::device_update_from_wire(peer, u, &checked).map(|_| ())
        }
        _ => Err("not a device update".into()),
    });
    let exchange = {
        let hub = hub.clone();
        let tasks = vec![(0, task.clone()), (1, task.clone())];
        rt.spawn(async move { hub.exchange(tasks, Policy::new(3.0, 0), check).await })
    };

    let got = rt.block_on(d0.pull("")).unwrap();
    assert_eq!(got.id, task.id);
    let push = |c: &mut Upstream, a| rt.block_on(c.push(a));
    let nan = push(
        &mut d0,
        answer(&task.id, update(vec![0.0, f32::NAN, 0.0, 0.0], 1)),
    )
    .unwrap();
    assert!(
        !nan.accepted && nan.reason.contains("non-finite"),
        "{nan:?}"
    );
    let short = push(&mut d0, answer(&task.id, update(vec![0.0; 3], 1))).unwrap();
    assert!(
        short.reason.contains("3 values where the model has 4"),
        "{short:?}"
    );
    let stale = push(
        &mut d0,
        answer("test/round-0/edge-round-0", update(vec![0.0; 4], 1)),
    )
    .unwrap();
    assert!(
        !stale.accepted && stale.reason.contains("stale"),
        "{stale:?}"
    );
    let old_round = push(&mut d0, answer(&task.id, update(vec![0.0; 4], 0))).unwrap();
    assert!(old_round.reason.contains("stale"), "{old_round:?}");
    let good = push(
        &mut d0,
        answer(&task.id, update(vec![1.0, 2.0, 3.0, 4.0], 1)),
    )
    .unwrap();
    assert!(good.accepted, "{good:?}");
    let twice = push(
        &mut d0,
        answer(&task.id, update(vec![1.0, 2.0, 3.0, 4.0], 1)),
    )
    .unwrap();
    assert!(
        !twice.accepted && twice.reason.contains("duplicate"),
        "{twice:?}"
    );

    // Device 1 pulls, then sends a message over the server's size limit: the transport
    // refuses it before the hub sees it, so device 1 has answered nothing.
    let mut d1 = client(Node::Device(1));
    rt.block_on(d1.pull("")).unwrap();
    let big = push(&mut d1, answer(&task.id, update(vec![0.5; 4000], 1))).unwrap_err();
    assert_eq!(big.code(), tonic::Code::OutOfRange, "{big:?}");

    let c = rt.block_on(exchange).unwrap();
    assert_eq!(c.answers.len(), 1);
    assert_eq!(c.answers[0].0, 0);
    assert_eq!(c.outcomes[0].delivery, Delivery::Accepted);
    // Heard from (it pulled) but never answered: late, not failed.
    assert_eq!(c.outcomes[1].delivery, Delivery::Late);
    assert!(c.seconds >= 3.0 && c.seconds < 6.0, "{}", c.seconds);
    assert_eq!(hub.rejected(), 5);
    assert!(c.bytes_down > 0 && c.bytes_up > 0);
    // After the close, an answer is late and rejected.
    let late = push(&mut d0, answer(&task.id, update(vec![1.0; 4], 1))).unwrap();
    assert!(late.reason.contains("no exchange is open"), "{late:?}");
}
