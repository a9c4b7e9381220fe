//! `bigbrotr-migrate`: applies the schema (see the library docs).

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let code = bigbrotr_migrate::run(bigbrotr_migrate::MigrateCli::parse()).await;
    bigbrotr_core::logging::flush();
    code
}
