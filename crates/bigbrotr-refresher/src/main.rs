//! `bigbrotr-refresher`: refreshes the analytics views and tables on every cycle.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bigbrotr_core::bootstrap::run::<bigbrotr_refresher::Refresher>().await
}
