//! The gRPC contract of AetherFS (package `aether.v1`), generated at build time from
//! `proto/aether/v1/*.proto` without a system `protoc`. Both sides use it: `aetherd` implements
//! the servers, the `aether` CLI uses the clients. Nothing here knows the engine.

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("aether.v1");

    /// The encoded `FileDescriptorSet` of every `aether.v1` file, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/aether_descriptor.bin"));
}

/// The metadata entry naming the mount a request comes from: the server records it as the
/// origin of the changes the request makes, and the mount skips those on its watch stream.
pub const MOUNT_HEADER: &str = "aether-mount";

#[cfg(feature = "client")]
pub mod remote;
#[cfg(feature = "client")]
pub mod upload;
