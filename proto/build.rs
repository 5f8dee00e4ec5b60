//! Compiles `aether/v1/*.proto` with protox (no system `protoc`) and generates messages,
//! clients and servers with tonic-prost-build; the encoded descriptor set is kept for server
//! reflection.

use std::path::PathBuf;

use prost::Message;

const FILES: &[&str] = &[
    "aether/v1/types.proto",
    "aether/v1/sessions.proto",
    "aether/v1/files.proto",
    "aether/v1/history.proto",
    "aether/v1/tokens.proto",
    "aether/v1/batch.proto",
    "aether/v1/usage.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for f in FILES {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(FILES, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("aether_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().build_transport(false).compile_fds(fds)?;
    Ok(())
}
