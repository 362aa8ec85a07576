//! iotids' metrics against scikit-learn's on the same labels, predictions and
//! scores (`tests/reference/metrics_fixture.py` wrote the expected numbers; CI
//! re-derives them with `--check`).

use iotids_model::metrics::evaluate;
use serde_json::Value;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-9 + 1e-9 * b.abs(),
        "{what}: iotids {a}, scikit-learn {b}"
    );
}

#[test]
fn metrics_equal_scikit_learn() {
    let text = include_str!("fixtures/sklearn_metrics.json");
    let data: Value = serde_json::from_str(text).unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for (ci, case) in cases.iter().enumerate() {
        let k = case["k"].as_u64().unwrap() as usize;
        let y: Vec<u32> = case["y_true"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let p: Vec<u32> = case["y_pred"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let s: Vec<f32> = floats(&case["scores"])
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let classes: Vec<String> = (0..k).map(|c| format!("c{c}")).collect();
        let m = evaluate(&y, &p, &s, &classes, Some(0));
        let e = &case["expected"];
        let w = |name: &str| format!("case {ci} {name}");
        close(m.accuracy, e["accuracy"].as_f64().unwrap(), &w("accuracy"));
        for c in 0..k {
            close(
                m.per_class[c].precision,
                floats(&e["precision"])[c],
                &w("precision"),
            );
            close(m.per_class[c].recall, floats(&e["recall"])[c], &w("recall"));
            close(m.per_class[c].f1, floats(&e["f1"])[c], &w("f1"));
            assert_eq!(m.per_class[c].support as f64, floats(&e["support"])[c]);
            close(
                m.roc[c].as_ref().unwrap().auc,
                floats(&e["roc_auc"])[c],
                &w("roc auc"),
            );
            close(
                m.pr_auc[c].unwrap(),
                floats(&e["average_precision"])[c],
                &w("average precision"),
            );
        }
        let macro_ = floats(&e["macro"]);
        close(m.macro_avg.precision, macro_[0], &w("macro precision"));
        close(m.macro_avg.recall, macro_[1], &w("macro recall"));
        close(m.macro_f1, macro_[2], &w("macro f1"));
        close(
            iotids_model::metrics::macro_f1(&y, &p, k),
            macro_[2],
            &w("macro f1 alone"),
        );
        let weighted = floats(&e["weighted"]);
        close(
            m.weighted_avg.precision,
            weighted[0],
            &w("weighted precision"),
        );
        close(m.weighted_f1, weighted[2], &w("weighted f1"));
        close(
            m.roc_auc_macro.unwrap(),
            e["roc_auc_macro"].as_f64().unwrap(),
            &w("roc auc macro"),
        );
        close(
            m.roc_auc_micro.unwrap(),
            e["roc_auc_micro"].as_f64().unwrap(),
            &w("roc auc micro"),
        );
        close(
            m.detection_rate.unwrap(),
            e["detection_rate"].as_f64().unwrap(),
            &w("detection rate"),
        );
        close(
            m.false_alarm_rate.unwrap(),
            e["false_alarm_rate"].as_f64().unwrap(),
            &w("false alarm rate"),
        );
        let confusion: Vec<Vec<u64>> = e["confusion"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(m.confusion, confusion, "case {ci} confusion");
    }
}
