//! `bigbrotr-monitor`: checks relays (NIP-11 and NIP-66) and publishes NIP-66 events on every
//! cycle.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bigbrotr_core::bootstrap::run::<bigbrotr_monitor::Monitor>().await
}
