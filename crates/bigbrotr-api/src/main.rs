//! `bigbrotr-api`: serves the exposed tables over read-only REST.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bigbrotr_core::bootstrap::run::<bigbrotr_api::Api>().await
}
