//! The seeder end to end against a real database: candidates or relays, skipping known ones,
//! idempotent re-runs, invalid lines reported without aborting, and the binary's exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bigbrotr_core::cli::Cli;
use bigbrotr_core::metrics::Metrics;
use bigbrotr_core::runner::Context;
use bigbrotr_models::service_state::{ServiceName, ServiceStateType};
use bigbrotr_seeder::{SeedConfig, Seeder, SeederConfig};
use bigbrotr_testkit::TestDb;
use clap::Parser;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::fixtures::relay;

fn context(db: &TestDb) -> Context {
    Context {
        brotr: db.brotr(),
        metrics: Metrics::new("seeder"),
        shutdown: CancellationToken::new(),
    }
}

fn seeder(file: &Path, to_validate: bool) -> Seeder {
    Seeder::new(SeederConfig {
        seed: SeedConfig {
            file_path: file.to_path_buf(),
            to_validate,
        },
        ..Default::default()
    })
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "bigbrotr-it-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SEED: &str = "# test seed\n\
wss://relay.damus.io\n\
\n\
wss://NOS.lol:443/\n\
ws://10.0.0.1\n\
https://not-a-relay.example.com\n\
wss://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.onion\n\
wss://relay.damus.io\n";

async fn candidates(db: &TestDb) -> Vec<(String, serde_json::Value)> {
    db.brotr()
        .get_service_state(ServiceName::Validator, ServiceStateType::Checkpoint, None)
        .await
        .unwrap()
}

#[tokio::test]
async fn seeds_candidates_with_the_originals_record_format() {
    let db = TestDb::new().await;
    let dir = TempDir::new();
    let file = dir.write("seed.txt", SEED);
    let ctx = context(&db);
    let report = seeder(&file, true).seed(&ctx).await.unwrap();
    assert_eq!((report.valid, report.invalid, report.inserted), (3, 2, 3));
    let rows = candidates(&db).await;
    let urls: Vec<&str> = rows.iter().map(|(url, _)| url.as_str()).collect();
    let onion = format!("ws://{}.onion", "a".repeat(56));
    assert_eq!(
        urls,
        vec![onion.as_str(), "wss://nos.lol", "wss://relay.damus.io"]
    );
    for (url, value) in &rows {
        let network = if url.ends_with(".onion") {
            "tor"
        } else {
            "clearnet"
        };
        assert_eq!(value["network"], network);
        assert_eq!(value["failures"], 0);
        assert!(value["timestamp"].as_i64().unwrap() > 1_700_000_000);
        assert_eq!(value.as_object().unwrap().len(), 3, "{value}");
    }
    assert_eq!(db.brotr().relay_count().await.unwrap(), 0);
}

#[tokio::test]
async fn rerunning_is_idempotent_and_known_urls_are_skipped() {
    let db = TestDb::new().await;
    let dir = TempDir::new();
    let file = dir.write("seed.txt", SEED);
    let ctx = context(&db);
    let brotr = db.brotr();
    // One URL is already a relay; another is a candidate that has failed before.
    brotr
        .insert_relays(&[relay("wss://relay.damus.io", 7)])
        .await
        .unwrap();
    brotr
        .upsert_service_state(&[bigbrotr_models::service_state::ServiceState::new(
            ServiceName::Validator,
            ServiceStateType::Checkpoint,
            "wss://nos.lol",
            json!({"network": "clearnet", "failures": 4, "timestamp": 5}),
        )
        .unwrap()])
        .await
        .unwrap();
    let first = seeder(&file, true).seed(&ctx).await.unwrap();
    assert_eq!(first.inserted, 1, "only the onion relay is new");
    let second = seeder(&file, true).seed(&ctx).await.unwrap();
    assert_eq!(second.inserted, 0);
    let rows = candidates(&db).await;
    assert_eq!(rows.len(), 2);
    let nos = rows.iter().find(|(url, _)| url == "wss://nos.lol").unwrap();
    assert_eq!(
        nos.1["failures"], 4,
        "an existing candidate keeps its failures"
    );
    assert!(!rows.iter().any(|(url, _)| url == "wss://relay.damus.io"));
}

#[tokio::test]
async fn without_validation_urls_become_relays_and_keep_their_first_discovery() {
    let db = TestDb::new().await;
    let dir = TempDir::new();
    let file = dir.write("seed.txt", SEED);
    let ctx = context(&db);
    let brotr = db.brotr();
    brotr
        .insert_relays(&[relay("wss://relay.damus.io", 7)])
        .await
        .unwrap();
    let report = seeder(&file, false).seed(&ctx).await.unwrap();
    assert_eq!(report.inserted, 2);
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT url, network, discovered_at FROM relay ORDER BY url")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].1, "tor");
    assert_eq!(
        rows[2],
        ("wss://relay.damus.io".into(), "clearnet".into(), 7)
    );
    assert!(candidates(&db).await.is_empty());
}

#[tokio::test]
async fn large_files_are_inserted_in_batches() {
    let db = TestDb::new().await;
    let dir = TempDir::new();
    let contents: String = (0..2500)
        .map(|i| format!("wss://relay{i}.example.com\n"))
        .collect();
    let file = dir.write("seed.txt", &contents);
    let mut config = bigbrotr_db::config::BrotrConfig::default();
    config.batch.max_size = 1000;
    let ctx = Context {
        brotr: db.brotr_with(config),
        ..context(&db)
    };
    let report = seeder(&file, true).seed(&ctx).await.unwrap();
    assert_eq!(report.inserted, 2500);
    assert_eq!(db.brotr().candidate_count().await.unwrap(), 2500);
}

#[tokio::test]
async fn a_missing_seed_file_fails_the_cycle() {
    let db = TestDb::new().await;
    let ctx = context(&db);
    let err = seeder(Path::new("/nonexistent/seed.txt"), true)
        .seed(&ctx)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("cannot open seed file"),
        "{err:#}"
    );
}

fn write_configs(dir: &TempDir, db: &TestDb, seed: &Path) -> (PathBuf, PathBuf) {
    let config = db.config();
    let brotr = dir.write(
        "config/brotr.yaml",
        &format!(
            "pool:\n  database:\n    host: {}\n    port: {}\n    database: {}\n    user: {}\n    password_env: \"{}\"\n",
            config.pool.database.host,
            config.pool.database.port,
            config.pool.database.database,
            config.pool.database.user,
            config.pool.database.password_env,
        ),
    );
    let service = dir.write(
        "config/services/seeder.yaml",
        &format!(
            "seed:\n  file_path: {}\n  to_validate: true\n",
            seed.display()
        ),
    );
    (brotr, service)
}

#[tokio::test]
async fn the_binary_entry_point_seeds_and_exits_zero() {
    let db = TestDb::new().await;
    let dir = TempDir::new();
    let seed = dir.write("seed.txt", SEED);
    let (brotr, service) = write_configs(&dir, &db, &seed);
    let cli = Cli::parse_from([
        "bigbrotr-seeder",
        "--once",
        "--config",
        service.to_str().unwrap(),
        "--brotr-config",
        brotr.to_str().unwrap(),
    ]);
    let code = bigbrotr_core::bootstrap::run_with_cli::<Seeder>(cli).await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(db.brotr().candidate_count().await.unwrap(), 3);
}

#[tokio::test]
async fn the_binary_refuses_an_outdated_schema_and_invalid_config() {
    let db = TestDb::new().await;
    let dir = TempDir::new();
    let seed = dir.write("seed.txt", SEED);
    let (brotr, service) = write_configs(&dir, &db, &seed);
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 3")
        .execute(db.pool())
        .await
        .unwrap();
    let args = |service: &Path| {
        Cli::parse_from([
            "bigbrotr-seeder",
            "--once",
            "--config",
            service.to_str().unwrap(),
            "--brotr-config",
            brotr.to_str().unwrap(),
        ])
    };
    let code = bigbrotr_core::bootstrap::run_with_cli::<Seeder>(args(&service)).await;
    assert_eq!(code, ExitCode::from(1));
    assert_eq!(
        db.brotr().candidate_count().await.unwrap(),
        0,
        "nothing ran"
    );
    let bad = dir.write("config/services/bad.yaml", "seed:\n  to_validate: maybe\n");
    let code = bigbrotr_core::bootstrap::run_with_cli::<Seeder>(args(&bad)).await;
    assert_eq!(code, ExitCode::from(1));
}

#[tokio::test]
async fn the_default_seed_file_loads_cleanly() {
    let db = TestDb::new().await;
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deployments/bigbrotr/static/seed_relays.txt");
    let ctx = context(&db);
    let report = seeder(&file, true).seed(&ctx).await.unwrap();
    assert_eq!(
        report.invalid, 0,
        "every shipped seed line is a valid relay URL"
    );
    assert!(report.valid >= 50, "{report:?}");
    assert_eq!(report.inserted as usize, report.valid);
}

#[tokio::test]
async fn a_stop_request_ends_the_run_between_whole_batches() {
    let db = TestDb::new().await;
    let dir = TempDir::new();
    let contents: String = (0..3000)
        .map(|i| format!("wss://relay{i}.example.com\n"))
        .collect();
    let file = dir.write("seed.txt", &contents);
    let mut config = bigbrotr_db::config::BrotrConfig::default();
    config.batch.max_size = 500;
    let ctx = Context {
        brotr: db.brotr_with(config),
        ..context(&db)
    };
    // Stop as soon as the first batch is in: the seeder must finish that batch and insert no
    // partial one.
    let watcher = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            while ctx.brotr.candidate_count().await.unwrap() == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            ctx.shutdown.cancel();
        })
    };
    let report = seeder(&file, true).seed(&ctx).await.unwrap();
    watcher.await.unwrap();
    let stored = db.brotr().candidate_count().await.unwrap() as u64;
    assert_eq!(stored, report.inserted);
    assert_eq!(stored % 500, 0, "only whole batches are stored: {stored}");
    assert!(stored < 3000, "the run stopped early: {stored}");
}
