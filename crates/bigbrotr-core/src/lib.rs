//! BigBrotr's runtime, shared by every daemon: the command line, configuration loading, logging,
//! Prometheus metrics, the service runner that drives cycles, failures and shutdown, and the
//! leases through which replicas of a daemon share its work.
//!
//! A daemon's `main` is one call to [`bootstrap::run`] with its [`runner::Daemon`] type.

pub mod bootstrap;
pub mod cli;
pub mod clock;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod replica;
pub mod runner;
pub mod secrets;
