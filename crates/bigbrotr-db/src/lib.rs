//! BigBrotr's database layer: the only crate that holds SQL.
//!
//! It owns the connection pool (retries, timeouts, PgBouncer safety), the embedded migrations and
//! the migrate/adopt step, and a typed wrapper for every stored function of the schema. Daemons
//! never write SQL themselves: they call the methods of [`Brotr`], grouped by aggregate in the
//! modules below.

pub mod candidate;
pub mod catalog;
pub mod config;
pub mod error;
pub mod event;
pub mod finder;
pub mod lease;
pub mod maintenance;
pub mod metadata;
pub mod migrate;
pub mod monitor;
pub mod pool;
pub mod refresher;
pub mod relay;
pub mod replication;
pub mod service_state;
pub mod synchronizer;
pub mod validator;

mod brotr;

pub use brotr::Brotr;
pub use error::DbError;
