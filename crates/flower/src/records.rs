//! Records: what a `train` / `evaluate` message carries and what a reply must carry.
//!
//! Stock Flower strategies send `"arrays"` (an `ArrayRecord` of `.npy` arrays: the global
//! model) and `"config"` (a `ConfigRecord`: the round's settings), and expect back `"arrays"`
//! (train only, same names and shapes) and `"metrics"` (a `MetricRecord` with
//! `"num-examples"`, FedAvg's weight). The arrays become one flat `Vec<f32>` in record order
//! ([`Parameters`]), with each array's name, shape and dtype kept to rebuild the reply.

use std::collections::{BTreeMap, HashMap};

use prost::Message as _;

use crate::error::{Error, Result};
use crate::objects::{
    MAX_ARRAY_CHUNK_SIZE, ObjectSet, parse_object, parse_str_map, py_json_array_meta,
    py_json_str_map,
};
use crate::proto;

/// Flower's `stype` for `.npy` arrays (the only one `Array.numpy()` accepts).
pub const STYPE_NUMPY: &str = "numpy.ndarray";
/// The record name of the model arrays (stock strategies' `arrayrecord_key`).
pub const ARRAYS: &str = "arrays";
/// The record name of the round's configuration.
pub const CONFIG: &str = "config";
/// The record name of a reply's metrics.
pub const METRICS: &str = "metrics";
/// The metric FedAvg weights replies by.
pub const NUM_EXAMPLES: &str = "num-examples";

/// One array of a [`Parameters`]: where it sits in the flat vector is implied by the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArraySpec {
    /// Its name in the `ArrayRecord`.
    pub name: String,
    /// Its shape (empty for a scalar).
    pub shape: Vec<i64>,
    /// Its numpy dtype as received (`float32` or `float64`); replies use the same.
    pub dtype: String,
}

impl ArraySpec {
    /// Number of elements.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shape
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .product()
    }

    /// Whether the array has no elements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A model's parameters: every array flattened into one vector, in record order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parameters {
    /// All values, array after array (C order within each).
    pub values: Vec<f32>,
    /// The arrays, in order; their lengths sum to `values.len()`.
    pub arrays: Vec<ArraySpec>,
}

impl Parameters {
    /// The same layout with other values (a trained update); fails if the length differs.
    pub fn with_values(&self, values: Vec<f32>) -> Result<Self> {
        if values.len() != self.values.len() {
            return Err(Error::Record(format!(
                "{} values for arrays holding {}",
                values.len(),
                self.values.len()
            )));
        }
        Ok(Self {
            values,
            arrays: self.arrays.clone(),
        })
    }
}

/// A config value (Flower's `ConfigRecordValue`).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum ConfigValue {
    Double(f64),
    Int(i64),
    UInt(u64),
    Bool(bool),
    Str(String),
    Bytes(Vec<u8>),
    DoubleList(Vec<f64>),
    IntList(Vec<i64>),
    UIntList(Vec<u64>),
    BoolList(Vec<bool>),
    StrList(Vec<String>),
    BytesList(Vec<Vec<u8>>),
}

impl ConfigValue {
    /// The value as a float, if it is a number.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ConfigValue::Double(v) => Some(*v),
            ConfigValue::Int(v) => Some(*v as f64),
            ConfigValue::UInt(v) => Some(*v as f64),
            _ => None,
        }
    }
}

/// A round's configuration (the `"config"` record), by key.
pub type Config = BTreeMap<String, ConfigValue>;

/// Metrics of a reply, by key (written as doubles; `num-examples` is added as an integer).
pub type Metrics = BTreeMap<String, f64>;

/// Decodes `.npy` bytes of a float array into `f32` values, its shape and its dtype.
pub fn npy_decode(bytes: &[u8]) -> Result<(Vec<f32>, Vec<i64>, String)> {
    let npy = |e: std::io::Error| Error::Npy(e.to_string());
    let file = npyz::NpyFile::new(bytes).map_err(npy)?;
    if file.order() == npyz::Order::Fortran {
        return Err(Error::Npy(
            "Fortran-ordered arrays are not supported".into(),
        ));
    }
    let shape = file
        .shape()
        .iter()
        .map(|&d| i64::try_from(d).map_err(|_| Error::Npy(format!("dimension {d} too large"))))
        .collect::<Result<Vec<_>>>()?;
    let descr = file.dtype().descr();
    let (values, dtype) = if descr.contains("f4") {
        (file.into_vec::<f32>().map_err(npy)?, "float32")
    } else if descr.contains("f8") {
        #[allow(clippy::cast_possible_truncation)]
        let v = file
            .into_vec::<f64>()
            .map_err(npy)?
            .into_iter()
            .map(|x| x as f32)
            .collect();
        (v, "float64")
    } else {
        return Err(Error::Npy(format!(
            "dtype {descr} is not float32 or float64"
        )));
    };
    Ok((values, shape, dtype.to_owned()))
}

/// Encodes values as a C-order `.npy` array of the given shape and dtype (`float32` or
/// `float64`), as `np.save` would.
pub fn npy_encode(values: &[f32], shape: &[i64], dtype: &str) -> Result<Vec<u8>> {
    use npyz::WriterBuilder as _;
    let npy = |e: std::io::Error| Error::Npy(e.to_string());
    let shape = shape
        .iter()
        .map(|&d| u64::try_from(d).map_err(|_| Error::Npy(format!("negative dimension {d}"))))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    match dtype {
        "float32" => {
            let mut w = npyz::WriteOptions::new()
                .default_dtype()
                .shape(&shape)
                .writer(&mut out)
                .begin_nd()
                .map_err(npy)?;
            w.extend(values.iter().copied()).map_err(npy)?;
            w.finish().map_err(npy)?;
        }
        "float64" => {
            let mut w = npyz::WriteOptions::new()
                .default_dtype()
                .shape(&shape)
                .writer(&mut out)
                .begin_nd()
                .map_err(npy)?;
            w.extend(values.iter().map(|&v| f64::from(v)))
                .map_err(npy)?;
            w.finish().map_err(npy)?;
        }
        other => return Err(Error::Npy(format!("cannot write dtype {other}"))),
    }
    Ok(out)
}

/// The decoded content of an incoming message.
#[derive(Debug, Clone, Default)]
pub struct Content {
    /// The `"arrays"` record, if present.
    pub parameters: Option<Parameters>,
    /// The `"config"` record (empty if absent).
    pub config: Config,
    /// Every record's name and object type, in order (for logs and diagnostics).
    pub records: Vec<(String, String)>,
}

fn object<'a>(objects: &'a HashMap<String, Vec<u8>>, id: &str) -> Result<&'a [u8]> {
    objects
        .get(id)
        .map(Vec::as_slice)
        .ok_or_else(|| Error::Object {
            id: id.to_owned(),
            reason: "referenced but not pulled".into(),
        })
}

/// Decodes a message's content from its pulled objects, starting at the `Message` object.
pub fn decode_content(objects: &HashMap<String, Vec<u8>>, message_id: &str) -> Result<Content> {
    let msg = parse_object(object(objects, message_id)?)?;
    if msg.kind != "Message" {
        return Err(Error::Object {
            id: message_id.to_owned(),
            reason: format!("root is a {}, not a Message", msg.kind),
        });
    }
    let mut content = Content::default();
    let Some(&rd_id) = msg.children.first() else {
        return Ok(content);
    };
    let rd = parse_object(object(objects, rd_id)?)?;
    for (name, id) in parse_str_map(rd.body)? {
        let rec = parse_object(object(objects, &id)?)?;
        content.records.push((name.clone(), rec.kind.to_owned()));
        match (name.as_str(), rec.kind) {
            (ARRAYS, "ArrayRecord") => {
                content.parameters = Some(decode_array_record(objects, rec.body)?);
            }
            (CONFIG, "ConfigRecord") => content.config = decode_config(rec.body)?,
            _ => {}
        }
    }
    Ok(content)
}

fn decode_array_record(objects: &HashMap<String, Vec<u8>>, body: &[u8]) -> Result<Parameters> {
    let mut params = Parameters::default();
    for (name, id) in parse_str_map(body)? {
        let arr = parse_object(object(objects, &id)?)?;
        let bad = |reason: String| Error::Object {
            id: id.clone(),
            reason,
        };
        let meta: serde_json::Value = serde_json::from_slice(arr.body)
            .map_err(|e| bad(format!("Array metadata is not JSON: {e}")))?;
        let stype = meta["stype"].as_str().unwrap_or_default();
        if stype != STYPE_NUMPY {
            return Err(bad(format!(
                "array {name:?} has stype {stype:?}, not {STYPE_NUMPY:?}"
            )));
        }
        let ids = meta["arraychunk_ids"]
            .as_array()
            .ok_or_else(|| bad("Array metadata has no arraychunk_ids".into()))?;
        let mut data = Vec::new();
        for i in ids {
            let child = i
                .as_u64()
                .and_then(|i| arr.children.get(usize::try_from(i).ok()?))
                .ok_or_else(|| bad(format!("arraychunk id {i} is not a child index")))?;
            let chunk = parse_object(object(objects, child)?)?;
            data.extend_from_slice(chunk.body);
        }
        let (values, shape, dtype) =
            npy_decode(&data).map_err(|e| Error::Record(format!("array {name:?}: {e}")))?;
        params.values.extend_from_slice(&values);
        params.arrays.push(ArraySpec { name, shape, dtype });
    }
    Ok(params)
}

/// Decodes a `ConfigRecord` body (protobuf).
pub fn decode_config(body: &[u8]) -> Result<Config> {
    use proto::config_record_value::Value as V;
    let rec = proto::ConfigRecord::decode(body)
        .map_err(|e| Error::Record(format!("ConfigRecord does not decode: {e}")))?;
    let mut out = Config::new();
    for item in rec.items {
        let Some(v) = item.value.and_then(|v| v.value) else {
            continue;
        };
        let v = match v {
            V::Double(x) => ConfigValue::Double(x),
            V::Sint64(x) => ConfigValue::Int(x),
            V::Uint64(x) => ConfigValue::UInt(x),
            V::Bool(x) => ConfigValue::Bool(x),
            V::String(x) => ConfigValue::Str(x),
            V::Bytes(x) => ConfigValue::Bytes(x),
            V::DoubleList(x) => ConfigValue::DoubleList(x.vals),
            V::SintList(x) => ConfigValue::IntList(x.vals),
            V::UintList(x) => ConfigValue::UIntList(x.vals),
            V::BoolList(x) => ConfigValue::BoolList(x.vals),
            V::StringList(x) => ConfigValue::StrList(x.vals),
            V::BytesList(x) => ConfigValue::BytesList(x.vals),
        };
        out.insert(item.key, v);
    }
    Ok(out)
}

/// Adds an `ArrayRecord` of `params` to `set` (arrays, their chunks) and returns its id.
pub fn add_array_record(set: &mut ObjectSet, params: &Parameters) -> Result<String> {
    let total: usize = params.arrays.iter().map(ArraySpec::len).sum();
    if total != params.values.len() {
        return Err(Error::Record(format!(
            "{} values for arrays holding {total}",
            params.values.len()
        )));
    }
    let mut refs = Vec::new();
    let mut offset = 0;
    for spec in &params.arrays {
        let n = spec.len();
        let data = npy_encode(&params.values[offset..offset + n], &spec.shape, &spec.dtype)?;
        offset += n;
        // Chunks in order; children are the unique chunk ids, `arraychunk_ids` index them.
        let mut unique: Vec<String> = Vec::new();
        let mut chunk_ids = Vec::new();
        let chunks: Vec<&[u8]> = if data.is_empty() {
            Vec::new()
        } else {
            data.chunks(MAX_ARRAY_CHUNK_SIZE).collect()
        };
        for chunk in chunks {
            let id = set.add("ArrayChunk", Vec::new(), chunk);
            let idx = unique.iter().position(|u| *u == id).unwrap_or_else(|| {
                unique.push(id);
                unique.len() - 1
            });
            chunk_ids.push(idx);
        }
        let meta = py_json_array_meta(&spec.dtype, &spec.shape, STYPE_NUMPY, &chunk_ids);
        let id = set.add("Array", unique, meta.as_bytes());
        refs.push((spec.name.clone(), id));
    }
    let children = refs.iter().map(|(_, id)| id.clone()).collect();
    Ok(set.add("ArrayRecord", children, py_json_str_map(&refs).as_bytes()))
}

/// Adds a `MetricRecord` with `num-examples` first and then `metrics`; returns its id.
pub fn add_metric_record(set: &mut ObjectSet, num_examples: u64, metrics: &Metrics) -> String {
    use proto::metric_record_value::Value as V;
    let item = |key: &str, v: V| proto::metric_record::Item {
        key: key.to_owned(),
        value: Some(proto::MetricRecordValue { value: Some(v) }),
    };
    let mut items = vec![item(
        NUM_EXAMPLES,
        V::Sint64(i64::try_from(num_examples).unwrap_or(i64::MAX)),
    )];
    items.extend(
        metrics
            .iter()
            .filter(|(k, _)| k.as_str() != NUM_EXAMPLES)
            .map(|(k, v)| item(k, V::Double(*v))),
    );
    let body = proto::MetricRecord { items }.encode_to_vec();
    set.add("MetricRecord", Vec::new(), &body)
}

/// Encodes a `ConfigRecord` body (protobuf), keys in order.
#[must_use]
pub fn encode_config(config: &Config) -> Vec<u8> {
    use proto::config_record_value::Value as V;
    let items = config
        .iter()
        .map(|(key, v)| {
            let value = match v.clone() {
                ConfigValue::Double(x) => V::Double(x),
                ConfigValue::Int(x) => V::Sint64(x),
                ConfigValue::UInt(x) => V::Uint64(x),
                ConfigValue::Bool(x) => V::Bool(x),
                ConfigValue::Str(x) => V::String(x),
                ConfigValue::Bytes(x) => V::Bytes(x),
                ConfigValue::DoubleList(vals) => V::DoubleList(proto::DoubleList { vals }),
                ConfigValue::IntList(vals) => V::SintList(proto::SintList { vals }),
                ConfigValue::UIntList(vals) => V::UintList(proto::UintList { vals }),
                ConfigValue::BoolList(vals) => V::BoolList(proto::BoolList { vals }),
                ConfigValue::StrList(vals) => V::StringList(proto::StringList { vals }),
                ConfigValue::BytesList(vals) => V::BytesList(proto::BytesList { vals }),
            };
            proto::config_record::Item {
                key: key.clone(),
                value: Some(proto::ConfigRecordValue { value: Some(value) }),
            }
        })
        .collect();
    proto::ConfigRecord { items }.encode_to_vec()
}

/// Adds a `ConfigRecord` of `config`; returns its id.
pub fn add_config_record(set: &mut ObjectSet, config: &Config) -> String {
    set.add("ConfigRecord", Vec::new(), &encode_config(config))
}

/// Adds the `RecordDict` of a reply (`"arrays"` if given, `"config"` if given, then
/// `"metrics"`); returns its id.
pub fn add_reply_content(
    set: &mut ObjectSet,
    params: Option<&Parameters>,
    config: Option<&Config>,
    num_examples: u64,
    metrics: &Metrics,
) -> Result<String> {
    let mut refs = Vec::new();
    if let Some(p) = params {
        refs.push((ARRAYS.to_owned(), add_array_record(set, p)?));
    }
    if let Some(c) = config {
        refs.push((CONFIG.to_owned(), add_config_record(set, c)));
    }
    refs.push((
        METRICS.to_owned(),
        add_metric_record(set, num_examples, metrics),
    ));
    let children = refs.iter().map(|(_, id)| id.clone()).collect();
    Ok(set.add("RecordDict", children, py_json_str_map(&refs).as_bytes()))
}

/// Decodes a `MetricRecord` body into doubles (tests and diagnostics).
pub fn decode_metrics(body: &[u8]) -> Result<Metrics> {
    use proto::metric_record_value::Value as V;
    let rec = proto::MetricRecord::decode(body)
        .map_err(|e| Error::Record(format!("MetricRecord does not decode: {e}")))?;
    let mut out = Metrics::new();
    for item in rec.items {
        #[allow(clippy::cast_precision_loss)]
        let v = match item.value.and_then(|v| v.value) {
            Some(V::Double(x)) => x,
            Some(V::Sint64(x)) => x as f64,
            Some(V::Uint64(x)) => x as f64,
            _ => continue,
        };
        out.insert(item.key, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{encode_object, object_id};

    fn params() -> Parameters {
        Parameters {
            values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -0.5],
            arrays: vec![
                ArraySpec {
                    name: "w".into(),
                    shape: vec![2, 3],
                    dtype: "float32".into(),
                },
                ArraySpec {
                    name: "b".into(),
                    shape: vec![1],
                    dtype: "float64".into(),
                },
            ],
        }
    }

    #[test]
    fn npy_round_trip_f32_f64_and_header() {
        let bytes = npy_encode(&[1.5, -2.0, 3.25], &[3], "float32").unwrap();
        assert_eq!(&bytes[..6], b"\x93NUMPY");
        let (v, s, d) = npy_decode(&bytes).unwrap();
        assert_eq!(
            (v, s, d.as_str()),
            (vec![1.5, -2.0, 3.25], vec![3], "float32")
        );
        let bytes = npy_encode(&[0.1, 7.0], &[1, 2], "float64").unwrap();
        assert_eq!(bytes.len() % 16, (8 * 2) % 16, "header padded to 16 bytes");
        let (v, s, d) = npy_decode(&bytes).unwrap();
        assert_eq!((v, s, d.as_str()), (vec![0.1, 7.0], vec![1, 2], "float64"));
        assert!(npy_decode(b"not npy").is_err());
        assert!(npy_encode(&[1.0], &[1], "int8").is_err());
    }

    #[test]
    fn npy_decodes_bytes_numpy_wrote() {
        // np.save(buf, np.array([[1.0, 2.0]], dtype=np.float32)) (numpy 1.x/2.x, format 1.0).
        let mut header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }".to_vec();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&1.0f32.to_le_bytes());
        bytes.extend_from_slice(&2.0f32.to_le_bytes());
        let (v, s, d) = npy_decode(&bytes).unwrap();
        assert_eq!((v, s, d.as_str()), (vec![1.0, 2.0], vec![1, 2], "float32"));
    }

    /// Builds an incoming message as the SuperLink would store it, then decodes it.
    #[test]
    fn records_round_trip_through_objects() {
        let mut set = ObjectSet::default();
        let p = params();
        let arrays = add_array_record(&mut set, &p).unwrap();
        let cfg = proto::ConfigRecord {
            items: vec![
                proto::config_record::Item {
                    key: "lr".into(),
                    value: Some(proto::ConfigRecordValue {
                        value: Some(proto::config_record_value::Value::Double(0.01)),
                    }),
                },
                proto::config_record::Item {
                    key: "server-round".into(),
                    value: Some(proto::ConfigRecordValue {
                        value: Some(proto::config_record_value::Value::Sint64(3)),
                    }),
                },
            ],
        };
        let cfg_id = set.add("ConfigRecord", vec![], &cfg.encode_to_vec());
        let refs = vec![
            ("arrays".to_owned(), arrays.clone()),
            ("config".to_owned(), cfg_id.clone()),
        ];
        let rd = set.add(
            "RecordDict",
            vec![arrays, cfg_id],
            py_json_str_map(&refs).as_bytes(),
        );
        let msg = set.add("Message", vec![rd], b"");
        let content = decode_content(&set.content, &msg).unwrap();
        assert_eq!(content.parameters.as_ref(), Some(&p));
        assert_eq!(content.config["lr"], ConfigValue::Double(0.01));
        assert_eq!(content.config["server-round"].as_f64(), Some(3.0));
        assert_eq!(
            content.records,
            vec![
                ("arrays".to_owned(), "ArrayRecord".to_owned()),
                ("config".to_owned(), "ConfigRecord".to_owned())
            ]
        );
        // Every object's id is the hash of its bytes.
        for (id, bytes) in &set.content {
            assert_eq!(&object_id(bytes), id);
        }
    }

    #[test]
    fn reply_content_has_arrays_then_metrics_with_num_examples() {
        let mut set = ObjectSet::default();
        let metrics = Metrics::from([("acc".to_owned(), 0.75)]);
        let rd = add_reply_content(&mut set, Some(&params()), None, 42, &metrics).unwrap();
        let rd_obj = parse_object(&set.content[&rd]).unwrap();
        let refs = parse_str_map(rd_obj.body).unwrap();
        assert_eq!(refs[0].0, "arrays");
        assert_eq!(refs[1].0, "metrics");
        let m = parse_object(&set.content[&refs[1].1]).unwrap();
        assert_eq!(m.kind, "MetricRecord");
        let decoded = decode_metrics(m.body).unwrap();
        assert_eq!(decoded["num-examples"], 42.0);
        assert_eq!(decoded["acc"], 0.75);
        // The Array object's body is exactly what json.dumps gives in flwr.
        let ar = parse_object(&set.content[&refs[0].1]).unwrap();
        let arrays = parse_str_map(ar.body).unwrap();
        let w = parse_object(&set.content[&arrays[0].1]).unwrap();
        assert_eq!(
            w.body,
            br#"{"dtype": "float32", "shape": [2, 3], "stype": "numpy.ndarray", "arraychunk_ids": [0]}"#
        );
        // A hand-computed id: the chunk holding w's npy bytes.
        let npy = npy_encode(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], "float32").unwrap();
        let chunk = encode_object("ArrayChunk", &[], &npy);
        assert_eq!(w.children, vec![object_id(&chunk).as_str()]);
    }

    #[test]
    fn a_query_reply_carries_its_config_record_between_arrays_and_metrics() {
        let config = Config::from([
            (
                "iotids.answer".to_owned(),
                ConfigValue::Bytes(b"{\"rows\": 3}".to_vec()),
            ),
            ("n".to_owned(), ConfigValue::Int(-7)),
            ("u".to_owned(), ConfigValue::UInt(7)),
            ("x".to_owned(), ConfigValue::Double(0.25)),
            ("ok".to_owned(), ConfigValue::Bool(true)),
            ("s".to_owned(), ConfigValue::Str("edge-0".into())),
            ("xs".to_owned(), ConfigValue::DoubleList(vec![1.5, -2.0])),
            (
                "ss".to_owned(),
                ConfigValue::StrList(vec!["a".into(), "b".into()]),
            ),
            (
                "bs".to_owned(),
                ConfigValue::BytesList(vec![vec![0, 255], vec![]]),
            ),
        ]);
        assert_eq!(decode_config(&encode_config(&config)).unwrap(), config);
        let mut set = ObjectSet::default();
        let rd = add_reply_content(&mut set, None, Some(&config), 0, &Metrics::new()).unwrap();
        let refs = parse_str_map(parse_object(&set.content[&rd]).unwrap().body).unwrap();
        let names: Vec<&str> = refs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["config", "metrics"]);
        let c = parse_object(&set.content[&refs[0].1]).unwrap();
        assert_eq!(c.kind, "ConfigRecord");
        assert_eq!(decode_config(c.body).unwrap(), config);
    }

    #[test]
    fn large_arrays_are_chunked_and_reassembled() {
        let n = MAX_ARRAY_CHUNK_SIZE / 4 + 10; // > 5 MiB of f32
        #[allow(clippy::cast_precision_loss)]
        let p = Parameters {
            values: (0..n).map(|i| i as f32).collect(),
            arrays: vec![ArraySpec {
                name: "big".into(),
                shape: vec![i64::try_from(n).unwrap()],
                dtype: "float32".into(),
            }],
        };
        let mut set = ObjectSet::default();
        let ar = add_array_record(&mut set, &p).unwrap();
        let refs = vec![("arrays".to_owned(), ar.clone())];
        let rd = set.add("RecordDict", vec![ar], py_json_str_map(&refs).as_bytes());
        let msg = set.add("Message", vec![rd], b"");
        let arr_id = &set.children[&set.children[&set.children[&msg][0]][0]][0];
        assert_eq!(set.children[arr_id].len(), 2, "two chunks");
        assert_eq!(
            decode_content(&set.content, &msg).unwrap().parameters,
            Some(p)
        );
    }

    #[test]
    fn missing_objects_and_bad_stype_are_errors() {
        let mut set = ObjectSet::default();
        let msg = set.add("Message", vec!["deadbeef".into()], b"");
        assert!(decode_content(&set.content, &msg).is_err());
        let a = set.add(
            "Array",
            vec![],
            br#"{"dtype": "float32", "shape": [1], "stype": "torch.Tensor", "arraychunk_ids": []}"#,
        );
        let refs = vec![("x".to_owned(), a.clone())];
        let body = py_json_str_map(&refs);
        assert!(decode_array_record(&set.content, body.as_bytes()).is_err());
    }
}
