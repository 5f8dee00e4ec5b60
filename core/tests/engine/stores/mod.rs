//! The conformance suite of the store seams: one generic suite per trait, run against every
//! implementation. A new backend (PostgreSQL, S3) adds one line to the list of its kind below
//! (`META`, `CHUNKS`, `OBJECTS`) and must pass everything the others pass.

mod chunks;
mod engine;
mod meta;
mod objects;

use std::any::Any;

/// What keeps a backend's storage alive (a temporary directory) for as long as a test runs.
pub type KeepAlive = Box<dyn Any + Send>;

/// Every metadata backend: a name and a factory of fresh, empty stores.
pub const META: &[(&str, fn() -> (aether_core::meta::MetaStores, KeepAlive))] =
    &[("sqlite", meta::sqlite), ("memory", meta::memory)];

/// Every chunk store.
pub const CHUNKS: &[(
    &str,
    fn() -> (std::sync::Arc<dyn aether_core::chunk_store::ChunkStore>, KeepAlive),
)] = &[("local", chunks::local), ("memory", chunks::memory)];

/// Every git object store.
pub const OBJECTS: &[(
    &str,
    fn() -> (std::sync::Arc<dyn aether_core::object_store::ObjectStore>, KeepAlive),
)] = &[("local", objects::local)];
