//! The workspace's one integration-test binary: every test runs against a real PostgreSQL
//! database of its own (see `bigbrotr-testkit`), and nothing talks to an address outside
//! 127.0.0.0/8.

// Test helpers outside `#[test]` functions fail loudly too: a panic is the right report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analytics;
mod api;
mod config_dropin;
mod dbkit;
mod deployment_configs;
mod deployment_prometheus;
mod dvm;
mod finder;
mod fixtures;
mod functions;
mod functions_cleanup;
mod functions_metadata;
mod functions_state;
mod lease;
mod lilbrotr;
mod migrate;
mod monitor;
mod network_config;
mod pgbouncer;
mod pool;
mod refresher;
mod schema;
mod schema_objects;
mod schema_roles;
mod seeder;
mod standby;
mod synchronizer;
mod validator;
mod views;
mod views_relay;
