//! `bigbrotr-seeder`: loads the seed file into the database (run with `--once`).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bigbrotr_core::bootstrap::run::<bigbrotr_seeder::Seeder>().await
}
