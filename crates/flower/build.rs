//! Compiles `proto/flwr/proto/*.proto` (Flower's Fleet API, flwr 1.42.0) with protox (pure
//! Rust: no system protoc) and prost. Messages only: the transport is plain HTTP, not gRPC.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
    let file = "flwr/proto/fleet.proto";
    println!("cargo:rerun-if-changed={root}");
    let fds = protox::compile([file], [root])?;
    // The descriptors themselves, for `protocol::fields` (what `iotids flower protocol`
    // prints and examples/flower/check_protocol.py compares with an installed flwr).
    let out = std::env::var("OUT_DIR")?;
    std::fs::write(
        std::path::Path::new(&out).join("flwr_descriptors.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
