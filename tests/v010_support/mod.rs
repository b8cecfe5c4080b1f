//! Support for `tests/v010_migration.rs`: the manifest of the 0.1.0 fixtures, the
//! checks of migrated records against it, and the library accounts used through the
//! new engine.
#![allow(dead_code)]

pub mod library;
pub mod manifest;
pub mod records;
