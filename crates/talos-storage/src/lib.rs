#![doc = include_str!("../README.md")]

mod conn;
mod detach;
mod diagnose;
mod dsn;
mod error;
mod migrate;
mod model;
mod queries;
mod row;
mod store;

pub use conn::connect;
pub use dsn::{Backend, StoreOptions};
pub use error::{ConflictKind, Result, StorageError};
pub use migrate::{
    MigrationStatus, migrate_down_all, migrate_up, migration_status, pending_migrations,
};
pub use model::*;
pub use store::{PoolStatus, Store};
