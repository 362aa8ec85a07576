#!/usr/bin/env python3
"""Compares the Flower protocol an iotids build speaks with an installed flwr.

    python check_protocol.py IOTIDS_BIN        (run with the Python that has flwr)

`iotids flower protocol` prints the messages (fields: name, number, type, label, oneof)
and Fleet RPCs of the flwr protos iotids was built with (crates/flower/proto, flwr
1.42.0). This script rebuilds the same table from the installed flwr's own descriptors
(flwr/proto/*_pb2.py) and names every difference:

- a message or RPC iotids uses that is gone, or a field renumbered, renamed, retyped or
  moved in or out of a oneof: the wire format changed under iotids: exit 1;
- fields, messages or RPCs only the installed flwr has: printed; iotids ignores them, and
  a SuperLink that starts requiring one shows up in the end-to-end runs.

CI runs it with the pinned flwr (it must report no difference). To vet a new flwr
release: FLWR_VERSION=X.Y.Z FLWR_VENV=/tmp/flwr-X.Y.Z examples/flower/smoke.sh, then
/tmp/flwr-X.Y.Z/bin/python examples/flower/check_protocol.py target/release/iotids.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import flwr
import flwr.proto
from google.protobuf import descriptor_pb2

FDP = descriptor_pb2.FieldDescriptorProto


def walk(prefix: str, m: descriptor_pb2.DescriptorProto, out: dict) -> None:
    name = f"{prefix}.{m.name}"
    fields = []
    for f in m.field:
        oneof = None
        if f.HasField("oneof_index") and not f.proto3_optional:
            oneof = m.oneof_decl[f.oneof_index].name
        fields.append(
            {
                "name": f.name,
                "number": f.number,
                "kind": FDP.Type.Name(f.type).removeprefix("TYPE_").lower(),
                "type_name": f.type_name,
                "label": FDP.Label.Name(f.label).removeprefix("LABEL_").lower(),
                "oneof": oneof,
            }
        )
    fields.sort(key=lambda f: f["number"])
    for n in m.nested_type:
        if n.options.map_entry:
            continue
        walk(name, n, out)
    out[name] = fields


def installed() -> dict:
    messages: dict = {}
    rpcs: dict = {}
    for mod in pkgutil.iter_modules(flwr.proto.__path__):
        if not mod.name.endswith("_pb2"):
            continue
        fd = importlib.import_module(f"flwr.proto.{mod.name}").DESCRIPTOR
        fdp = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(fdp)
        for m in fdp.message_type:
            walk(fdp.package, m, messages)
        for s in fdp.service:
            if s.name == "Fleet":
                for r in s.method:
                    rpcs[r.name] = [r.input_type.lstrip("."), r.output_type.lstrip(".")]
    return {"messages": messages, "rpcs": rpcs}


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ours = json.loads(
        subprocess.run(
            [sys.argv[1], "--quiet", "flower", "protocol"], capture_output=True, text=True, check=True
        ).stdout
    )
    theirs = installed()
    broken, added = [], []
    for name, fields in sorted(ours["messages"].items()):
        if name not in theirs["messages"]:
            broken.append(f"message {name}: not in flwr {flwr.__version__}")
            continue
        by_number = {f["number"]: f for f in theirs["messages"][name]}
        for f in fields:
            t = by_number.pop(f["number"], None)
            if t is None:
                broken.append(f"{name}.{f['name']} (field {f['number']}): gone")
            elif t != f:
                diff = {k: (f[k], t[k]) for k in f if f[k] != t[k]}
                broken.append(f"{name} field {f['number']}: {diff} (iotids, flwr)")
        added += [f"{name}.{t['name']} (field {n})" for n, t in sorted(by_number.items())]
    for rpc, types in sorted(ours["rpcs"].items()):
        if rpc not in theirs["rpcs"]:
            broken.append(f"Fleet RPC {rpc}: not in flwr {flwr.__version__}")
        elif list(types) != theirs["rpcs"][rpc]:
            broken.append(f"Fleet RPC {rpc}: {types} in iotids, {theirs['rpcs'][rpc]} in flwr")
    added += [f"Fleet RPC {r}" for r in sorted(set(theirs["rpcs"]) - set(ours["rpcs"]))]
    print(
        f"check_protocol: iotids' {len(ours['messages'])} messages and {len(ours['rpcs'])} Fleet "
        f"RPCs against flwr {flwr.__version__}: {len(broken)} differences, {len(added)} additions"
    )
    for line in broken:
        print(f"  CHANGED {line}")
    for line in added:
        print(f"  added   {line}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
