//! The protocol this crate speaks, as data: every message of the vendored flwr protos
//! (`proto/flwr/proto`, flwr 1.42.0) with its fields, and the Fleet service's RPCs. A
//! newer flwr that renames, renumbers, retypes or drops any of them breaks this client;
//! `examples/flower/check_protocol.py` compares this table with the descriptors of the
//! flwr installed beside it and names every difference (CI runs it with the pinned flwr).

use std::collections::BTreeMap;

use prost::Message as _;
use serde::Serialize;

/// The vendored protos' descriptors (a `FileDescriptorSet`, made by build.rs).
pub const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/flwr_descriptors.bin"));

/// One field as the wire sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Its number.
    pub number: i32,
    /// `int64`, `string`, `message`, ... (protobuf's type names, lower case).
    pub kind: String,
    /// The message or enum type it holds (`.flwr.proto.Node`), empty for scalars.
    pub type_name: String,
    /// `repeated` or `optional` (proto3 singular fields are `optional` here).
    pub label: String,
    /// The `oneof` it belongs to, if any (synthetic proto3-optional oneofs left out).
    pub oneof: Option<String>,
}

/// The protocol: messages by full name (`flwr.proto.PullMessagesRequest`, nested ones
/// dotted) and the Fleet service's RPCs with their request and response types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Protocol {
    /// Fields of every message, in field-number order.
    pub messages: BTreeMap<String, Vec<Field>>,
    /// `Fleet` RPC name → (request type, response type).
    pub rpcs: BTreeMap<String, (String, String)>,
}

fn kind(t: i32) -> String {
    prost_types::field_descriptor_proto::Type::try_from(t)
        .map(|t| {
            t.as_str_name()
                .trim_start_matches("TYPE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| format!("type{t}"))
}

fn label(l: i32) -> String {
    prost_types::field_descriptor_proto::Label::try_from(l)
        .map(|l| {
            l.as_str_name()
                .trim_start_matches("LABEL_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| format!("label{l}"))
}

fn walk(prefix: &str, m: &prost_types::DescriptorProto, out: &mut BTreeMap<String, Vec<Field>>) {
    let name = format!("{prefix}.{}", m.name());
    let mut fields: Vec<Field> = m
        .field
        .iter()
        .map(|f| Field {
            name: f.name().to_owned(),
            number: f.number(),
            kind: kind(f.r#type.unwrap_or_default()),
            type_name: f.type_name().to_owned(),
            label: label(f.label.unwrap_or_default()),
            oneof: f
                .oneof_index
                .filter(|_| !f.proto3_optional())
                .and_then(|i| m.oneof_decl.get(usize::try_from(i).ok()?))
                .map(|o| o.name().to_owned()),
        })
        .collect();
    fields.sort_by_key(|f| f.number);
    for nested in &m.nested_type {
        if nested.options.as_ref().is_some_and(|o| o.map_entry()) {
            continue;
        }
        walk(&name, nested, out);
    }
    out.insert(name, fields);
}

/// The vendored protocol.
///
/// # Panics
///
/// Never for the descriptors build.rs wrote (a test decodes them).
#[must_use]
pub fn vendored() -> Protocol {
    let set = prost_types::FileDescriptorSet::decode(DESCRIPTORS)
        .expect("build.rs wrote a FileDescriptorSet");
    let mut messages = BTreeMap::new();
    let mut rpcs = BTreeMap::new();
    for file in &set.file {
        let package = file.package();
        for m in &file.message_type {
            walk(package, m, &mut messages);
        }
        for s in file.service.iter().filter(|s| s.name() == "Fleet") {
            for m in &s.method {
                rpcs.insert(
                    m.name().to_owned(),
                    (
                        m.input_type().trim_start_matches('.').to_owned(),
                        m.output_type().trim_start_matches('.').to_owned(),
                    ),
                );
            }
        }
    }
    Protocol { messages, rpcs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_protocol_has_the_messages_and_rpcs_the_client_uses() {
        let p = vendored();
        for rpc in [
            "RegisterNode",
            "ActivateNode",
            "DeactivateNode",
            "UnregisterNode",
            "SendNodeHeartbeat",
            "PullMessages",
            "PushMessages",
            "PullObject",
            "PushObject",
            "ConfirmMessageReceived",
        ] {
            assert!(
                p.rpcs.contains_key(rpc),
                "no Fleet RPC {rpc}: {:?}",
                p.rpcs.keys()
            );
        }
        assert_eq!(
            p.rpcs["PullMessages"],
            (
                "flwr.proto.PullMessagesRequest".to_owned(),
                "flwr.proto.PullMessagesResponse".to_owned()
            )
        );
        let md = &p.messages["flwr.proto.Metadata"];
        let reply = md.iter().find(|f| f.name == "reply_to_message_id").unwrap();
        assert_eq!(
            (reply.kind.as_str(), reply.label.as_str()),
            ("string", "optional")
        );
        let item = &p.messages["flwr.proto.ConfigRecord.Item"];
        assert_eq!(item.iter().map(|f| f.number).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(item[1].type_name, ".flwr.proto.ConfigRecordValue");
        let value = &p.messages["flwr.proto.ConfigRecordValue"];
        assert!(
            value.iter().all(|f| f.oneof.as_deref() == Some("value")),
            "{value:?}"
        );
    }
}
