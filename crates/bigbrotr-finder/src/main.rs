//! `bigbrotr-finder`: discovers relay URLs on every cycle.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bigbrotr_core::bootstrap::run::<bigbrotr_finder::Finder>().await
}
