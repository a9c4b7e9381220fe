//! `bigbrotr-synchronizer`: archives the events of every known relay on every cycle.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bigbrotr_core::bootstrap::run::<bigbrotr_synchronizer::Synchronizer>().await
}
