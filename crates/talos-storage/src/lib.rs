#![doc = include_str!("../README.md")]

mod batch;
mod conn;
mod diagnose;
mod dsn;
mod error;
mod layer;
mod metering;
mod migrate;
mod model;
mod ops;
mod pg;
mod row;
mod sql;
mod sqlite;
mod store;

pub use conn::connect;
pub use dsn::{Backend, StoreOptions};
pub use error::{ConflictKind, Result, StorageError};
pub use layer::{Layer, Layered};
pub use migrate::{
    MigrationStatus, migrate_down, migrate_down_all, migrate_force, migrate_up, migration_status,
    pending_migrations,
};
pub use model::*;
pub use store::{PoolStatus, Store};
