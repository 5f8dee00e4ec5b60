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

/// A factory of fresh, empty metadata stores.
pub type MakeMeta = fn() -> (aether_core::meta::MetaStores, KeepAlive);
/// A factory of a fresh, empty chunk store.
pub type MakeChunks = fn() -> (std::sync::Arc<dyn aether_core::chunk_store::ChunkStore>, KeepAlive);
/// A factory of a fresh, empty git object store.
pub type MakeObjects = fn() -> (std::sync::Arc<dyn aether_core::object_store::ObjectStore>, KeepAlive);

/// Every metadata backend, by name.
pub const META: &[(&str, MakeMeta)] = &[("sqlite", meta::sqlite), ("memory", meta::memory)];

/// Every chunk store, by name.
pub const CHUNKS: &[(&str, MakeChunks)] = &[("local", chunks::local), ("memory", chunks::memory)];

/// Every git object store, by name.
pub const OBJECTS: &[(&str, MakeObjects)] = &[("local", objects::local)];
