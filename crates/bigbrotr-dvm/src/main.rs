//! `bigbrotr-dvm`: answers NIP-90 job requests with the exposed tables.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bigbrotr_core::bootstrap::run::<bigbrotr_dvm::Dvm>().await
}
