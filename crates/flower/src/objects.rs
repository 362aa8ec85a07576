//! Flower's content-addressed objects (the "ObjectStore" of flwr 1.19+).
//!
//! A message's payload travels as a tree of objects. Each object's bytes are
//! `b"<Type> <child_id,child_id,...> <body_len>" + b"\x00" + body`, and its id is the hex
//! SHA-256 of those bytes. Types: `Message` (body: protobuf `Message` without `message_id`;
//! child: its `RecordDict`), `RecordDict` / `ArrayRecord` (body: JSON `{name: child_id}`),
//! `Array` (JSON metadata with `arraychunk_ids` indexing its children), `ArrayChunk` (raw
//! bytes, at most [`MAX_ARRAY_CHUNK_SIZE`]), `ConfigRecord` / `MetricRecord` (protobuf).
//!
//! The JSON bodies are written as Python's `json.dumps` writes them (`", "` / `": "`
//! separators, `ensure_ascii`), so a reply's ids are the ids flwr itself would compute.

use std::collections::HashMap;

use serde::de::{Deserializer, MapAccess, Visitor};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::proto::ObjectTree;

/// Largest `ArrayChunk` body (`FLWR_PRIVATE_MAX_ARRAY_CHUNK_SIZE` in flwr).
pub const MAX_ARRAY_CHUNK_SIZE: usize = 5 * 1024 * 1024;

/// Encodes an object: header, NUL, body.
#[must_use]
pub fn encode_object(kind: &str, children: &[String], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{kind} {} {}", children.join(","), body.len()).into_bytes();
    out.push(0);
    out.extend_from_slice(body);
    out
}

/// An object's id: the hex SHA-256 of its whole bytes.
#[must_use]
pub fn object_id(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

/// A decoded object, borrowing from its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object<'a> {
    /// The object's type, e.g. `ArrayRecord`.
    pub kind: &'a str,
    /// Ids of its children, in header order.
    pub children: Vec<&'a str>,
    /// Its body.
    pub body: &'a [u8],
}

/// Parses an object's bytes, checking the header's body length.
pub fn parse_object(content: &[u8]) -> Result<Object<'_>> {
    let bad = |reason: String| Error::Object {
        id: object_id(content),
        reason,
    };
    let nul = content
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| bad("no NUL after the header".into()))?;
    let head =
        std::str::from_utf8(&content[..nul]).map_err(|_| bad("header is not UTF-8".into()))?;
    let mut parts = head.split(' ');
    let (Some(kind), Some(children), Some(len), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(format!(
            "header {head:?} is not `<type> <children> <len>`"
        )));
    };
    let body = &content[nul + 1..];
    let len: usize = len
        .parse()
        .map_err(|_| bad(format!("body length {len:?} is not a number")))?;
    if len != body.len() {
        return Err(bad(format!(
            "header says {len} body bytes, object has {}",
            body.len()
        )));
    }
    let children = if children.is_empty() {
        Vec::new()
    } else {
        children.split(',').collect()
    };
    Ok(Object {
        kind,
        children,
        body,
    })
}

/// Writes a JSON string as Python's `json.dumps` does (with `ensure_ascii=True`).
fn push_py_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// `json.dumps({k: v, ...})` of string pairs, in the given order.
#[must_use]
pub fn py_json_str_map(pairs: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_py_json_str(&mut out, k);
        out.push_str(": ");
        push_py_json_str(&mut out, v);
    }
    out.push('}');
    out
}

/// `json.dumps` of an `Array`'s metadata.
#[must_use]
pub fn py_json_array_meta(dtype: &str, shape: &[i64], stype: &str, chunk_ids: &[usize]) -> String {
    let list = |v: Vec<String>| format!("[{}]", v.join(", "));
    let mut out = String::from("{\"dtype\": ");
    push_py_json_str(&mut out, dtype);
    out.push_str(", \"shape\": ");
    out.push_str(&list(shape.iter().map(ToString::to_string).collect()));
    out.push_str(", \"stype\": ");
    push_py_json_str(&mut out, stype);
    out.push_str(", \"arraychunk_ids\": ");
    out.push_str(&list(chunk_ids.iter().map(ToString::to_string).collect()));
    out.push('}');
    out
}

/// Parses a JSON object of strings keeping its key order (a `RecordDict` or `ArrayRecord`
/// body; the order of an `ArrayRecord` is the order of the model's arrays).
pub fn parse_str_map(body: &[u8]) -> Result<Vec<(String, String)>> {
    struct Pairs(Vec<(String, String)>);
    impl<'de> serde::Deserialize<'de> for Pairs {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Pairs;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object of strings")
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<Pairs, A::Error> {
                    let mut v = Vec::new();
                    while let Some(pair) = map.next_entry::<String, String>()? {
                        v.push(pair);
                    }
                    Ok(Pairs(v))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_slice::<Pairs>(body)
        .map(|p| p.0)
        .map_err(|e| Error::Object {
            id: "(record body)".into(),
            reason: format!("not a JSON object of strings: {e}"),
        })
}

/// Objects being assembled for a reply: their bytes by id, and the children of each.
#[derive(Debug, Default, Clone)]
pub struct ObjectSet {
    /// Object bytes by id.
    pub content: HashMap<String, Vec<u8>>,
    /// Child ids by id (in header order).
    pub children: HashMap<String, Vec<String>>,
}

impl ObjectSet {
    /// Adds an object and returns its id.
    pub fn add(&mut self, kind: &str, children: Vec<String>, body: &[u8]) -> String {
        let bytes = encode_object(kind, &children, body);
        let id = object_id(&bytes);
        self.content.insert(id.clone(), bytes);
        self.children.insert(id.clone(), children);
        id
    }

    /// The `ObjectTree` rooted at `id` (as Flower's `get_object_tree` builds it).
    #[must_use]
    pub fn tree(&self, id: &str) -> ObjectTree {
        ObjectTree {
            object_id: id.to_owned(),
            children: self
                .children
                .get(id)
                .map(|c| c.iter().map(|c| self.tree(c)).collect())
                .unwrap_or_default(),
        }
    }
}

/// Every object id of a tree, children before parents (the order they are pulled in).
#[must_use]
pub fn post_order(tree: &ObjectTree) -> Vec<String> {
    fn walk(t: &ObjectTree, out: &mut Vec<String>) {
        for c in &t.children {
            walk(c, out);
        }
        if !out.contains(&t.object_id) {
            out.push(t.object_id.clone());
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_object_id_by_hand() {
        // An ArrayChunk of body b"abc": header "ArrayChunk  3", NUL, body.
        let bytes = encode_object("ArrayChunk", &[], b"abc");
        assert_eq!(bytes, b"ArrayChunk  3\x00abc");
        let expected = hex::encode(Sha256::digest(b"ArrayChunk  3\x00abc"));
        assert_eq!(object_id(&bytes), expected);
        // And with children: "ArrayRecord a,b 2\0{}".
        let bytes = encode_object("ArrayRecord", &["a".into(), "b".into()], b"{}");
        assert_eq!(bytes, b"ArrayRecord a,b 2\x00{}");
    }

    #[test]
    fn parse_round_trips_and_rejects_bad_lengths() {
        let bytes = encode_object("RecordDict", &["x".into(), "y".into()], b"{\"a\": \"x\"}");
        let o = parse_object(&bytes).unwrap();
        assert_eq!(o.kind, "RecordDict");
        assert_eq!(o.children, vec!["x", "y"]);
        assert_eq!(o.body, b"{\"a\": \"x\"}");
        assert!(parse_object(b"ArrayChunk  4\x00abc").is_err());
        assert!(parse_object(b"no nul here").is_err());
        assert!(parse_object(b"A B\x00").is_err());
        let empty = parse_object(b"ArrayChunk  0\x00").unwrap();
        assert!(empty.children.is_empty() && empty.body.is_empty());
    }

    #[test]
    fn json_matches_python_json_dumps() {
        // Python: json.dumps({"w": "id1", "b\u00e9": "id2"}) == '{"w": "id1", "b\\u00e9": "id2"}'
        let s = py_json_str_map(&[("w".into(), "id1".into()), ("bé".into(), "id2".into())]);
        assert_eq!(s, r#"{"w": "id1", "b\u00e9": "id2"}"#);
        // Python: json.dumps({"dtype": "float32", "shape": [2, 3], "stype": "numpy.ndarray",
        //                     "arraychunk_ids": [0]})
        assert_eq!(
            py_json_array_meta("float32", &[2, 3], "numpy.ndarray", &[0]),
            r#"{"dtype": "float32", "shape": [2, 3], "stype": "numpy.ndarray", "arraychunk_ids": [0]}"#
        );
        assert_eq!(
            py_json_array_meta("float64", &[], "numpy.ndarray", &[0, 0]),
            r#"{"dtype": "float64", "shape": [], "stype": "numpy.ndarray", "arraychunk_ids": [0, 0]}"#
        );
    }

    #[test]
    fn str_map_keeps_order() {
        let p = parse_str_map(br#"{"z": "1", "a": "2", "m": "3"}"#).unwrap();
        let keys: Vec<_> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a", "m"]);
        assert!(parse_str_map(br#"{"z": 1}"#).is_err());
    }

    #[test]
    fn tree_and_post_order() {
        let mut set = ObjectSet::default();
        let c = set.add("ArrayChunk", vec![], b"data");
        let a = set.add("Array", vec![c.clone()], b"{}");
        let r = set.add("ArrayRecord", vec![a.clone()], b"{}");
        let t = set.tree(&r);
        assert_eq!(t.children[0].children[0].object_id, c);
        assert_eq!(post_order(&t), vec![c, a, r]);
    }
}
