//! `bigbrotr-validator`: validates candidate relays on every cycle.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bigbrotr_core::bootstrap::run::<bigbrotr_validator::Validator>().await
}
