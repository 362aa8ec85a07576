//! The statistics round against the pooled fit on whole tables: generated
//! Edge-IIoTset-schema traffic always, MQTTset with `--features shared-data`.

use iotids_data::federated::{compare, fit_federated, fit_federated_with_cost};
use iotids_data::pipeline::{Input, Pipeline, PipelineConfig, Scaler};
use iotids_data::prepare::{PrepareConfig, Prepared, prepare};
use iotids_data::{ColumnData, IngestOptions, read_csv};

/// Deals the training rows to `n` devices by flow (a flow on one device), else by row.
fn deal(p: &Prepared, n: usize) -> Vec<Vec<usize>> {
    let mut devices = vec![Vec::new(); n];
    for &r in &p.split.train {
        let unit = p.dataset.flows.as_ref().map_or(r, |f| f[r] as usize);
        // A multiplicative hash, so flows with neighbouring ids spread.
        devices[(unit.wrapping_mul(2_654_435_761) >> 7) % n].push(r);
    }
    devices
}

/// Checks the federated pipeline against the pooled one: same classes, inputs, levels,
/// log compression and selection; MinMax scaling and class weights exact; medians within
/// the first histogram's bin width of the pooled ones.
fn check_against_pooled(p: &Prepared, devices: &[Vec<usize>]) -> Pipeline {
    let rows: Vec<&[usize]> = devices.iter().map(Vec::as_slice).collect();
    let cfg = &p.config.pipeline;
    let (fed, cost) =
        fit_federated_with_cost(&p.dataset, &rows, p.pipeline.ingest.clone(), cfg).unwrap();
    let pooled = &p.pipeline;
    let d = compare(&fed, pooled);
    assert!(d.same_features(), "{d:#?}");
    assert_eq!(d.class_weight_max_rel_diff, 0.0, "{d:#?}");
    assert!(d.score_max_abs_diff < 1e-9, "{d:#?}");
    // Medians: exact (the zoom's bins hold equally many f32 values).
    assert!(d.medians_differ.is_empty(), "{d:#?}");
    if cfg.scaler == Scaler::MinMax {
        assert_eq!((d.offset_max_rel_diff, d.factor_max_rel_diff), (0.0, 0.0));
    }
    // Classes by name; the pooled fit lists them in file order.
    let mut names = pooled.classes.clone();
    names.sort();
    assert_eq!(fed.classes, names);
    assert_eq!(fed.fitted_rows, p.split.train.len() as u64);
    for i in &fed.inputs {
        let Input::Numeric { name, median } = i else {
            continue;
        };
        let Some(Input::Numeric { median: m, .. }) =
            pooled.inputs.iter().find(|x| x.name() == name)
        else {
            panic!("{name} is not a numeric input of the pooled pipeline");
        };
        let ColumnData::Numeric(v) = &p.dataset.column(name).unwrap().data else {
            panic!("{name} is not numeric");
        };
        let (lo, hi) = p
            .split
            .train
            .iter()
            .map(|&r| v[r])
            .filter(|x| !x.is_nan())
            .fold((f32::MAX, f32::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let width = f64::from(hi - lo) / iotids_data::federated::HISTOGRAM_BINS as f64;
        assert!(
            (f64::from(*median) - f64::from(*m)).abs() <= width,
            "{name}: {median} vs {m} (bin width {width})"
        );
    }
    // A device's summary does not grow with its rows.
    assert!(cost.largest_answer < 2_000_000, "{cost:?}");
    assert!(cost.requests >= 3, "{cost:?}");
    fed
}

#[test]
fn generated_traffic_fits_from_summaries_as_from_pooled_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synth.csv");
    let file = std::fs::File::create(&path).unwrap();
    iotids_synth::write_synth(
        file,
        &iotids_synth::SynthOptions {
            rows: 20_000,
            seed: 7,
            balanced: false,
        },
    )
    .unwrap();
    let ingest = IngestOptions::default();
    for scaler in [Scaler::MinMax, Scaler::Standard] {
        let ds = read_csv(&path, &ingest).unwrap();
        let cfg = PrepareConfig {
            pipeline: PipelineConfig {
                scaler,
                ..PipelineConfig::default()
            },
            ..PrepareConfig::default()
        };
        let p = prepare(ds, &ingest, &cfg).unwrap();
        let devices = deal(&p, 10);
        assert!(devices.iter().all(|d| !d.is_empty()));
        let fed = check_against_pooled(&p, &devices);
        assert!(fed.selected.len() >= 5, "{:?}", fed.feature_names());
        // The device order does not matter.
        let mut rev: Vec<&[usize]> = devices.iter().map(Vec::as_slice).collect();
        rev.reverse();
        let again =
            fit_federated(&p.dataset, &rev, p.pipeline.ingest.clone(), &cfg.pipeline).unwrap();
        assert_eq!(again.feature_names(), fed.feature_names());
        assert_eq!(again.inputs, fed.inputs);
    }
}

#[cfg(feature = "shared-data")]
#[test]
fn mqttset_fits_from_twenty_devices_summaries_as_from_pooled_rows() {
    let root = std::env::var_os("IOTIDS_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
        });
    let path = root.join("mqttset/mqttset-train.csv");
    assert!(path.exists(), "{} is missing", path.display());
    // With the per-flow timing features, as `iotids federate` reads it by default.
    let ingest = IngestOptions {
        flow_timing: iotids_data::FlowTiming::Auto,
        ..IngestOptions::default()
    };
    let ds = read_csv(&path, &ingest).unwrap();
    assert!(ds.column("host.iat_us").is_some());
    let p = prepare(ds, &ingest, &PrepareConfig::default()).unwrap();
    let devices = deal(&p, 20);
    let fed = check_against_pooled(&p, &devices);
    // MQTTset's topic column is an identifier column either way.
    assert!(fed.inputs.iter().all(|i| i.name() != "mqtt.topic"));
    assert_eq!(fed.classes.len(), 6);
}
