//! The `bigbrotr-refresher` binary as operators run it: YAML configs, the `refresher` role,
//! `--once`; exit 0 after a cycle that refreshed, 1 when every view failed, and 1 at start-up,
//! naming the key, when a view has no refresh function.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bigbrotr_testkit::TestDb;

fn write_configs(db: &TestDb, views: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "bigbrotr-refresher-bin-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let brotr = dir.join("brotr.yaml");
    // YAML is a superset of JSON.
    std::fs::write(&brotr, serde_json::to_string(&db.config()).unwrap()).unwrap();
    let service = dir.join("refresher.yaml");
    let config = serde_json::json!({
        "metrics": {"enabled": false},
        "pool": {"user": "refresher", "password_env": "DB_REFRESHER_PASSWORD", "max_size": 2},
        "refresh": {"views": views},
    });
    std::fs::write(&service, config.to_string()).unwrap();
    (dir, brotr, service)
}

fn run_once(brotr: &Path, service: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bigbrotr-refresher"))
        .arg("--once")
        .arg("--config")
        .arg(service)
        .arg("--brotr-config")
        .arg(brotr)
        // The test cluster trusts local users: any password will do, but the variable the
        // configuration names must be set (an unset one is an error, as in the original).
        .env("DB_REFRESHER_PASSWORD", "trust")
        .output()
        .unwrap()
}

async fn event_count(db: &TestDb) -> Option<i64> {
    sqlx::query_scalar("SELECT event_count FROM event_stats")
        .fetch_optional(db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn once_exits_zero_after_refreshing_and_one_when_every_view_fails_or_is_unknown() {
    let db = TestDb::new().await;
    sqlx::query(
        "SELECT event_insert(ARRAY[decode(repeat('ab', 32), 'hex')], \
         ARRAY[decode(repeat('01', 32), 'hex')], ARRAY[1000000::bigint], ARRAY[1], \
         ARRAY['[]'::jsonb], ARRAY['x'], ARRAY[decode(repeat('51', 64), 'hex')])",
    )
    .execute(db.pool())
    .await
    .unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION public.boom_refresh() RETURNS VOID LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'boom exploded'; END $$",
    )
    .execute(db.pool())
    .await
    .unwrap();

    let (dir, brotr, service) = write_configs(&db, &["boom", "event_stats"]);
    let output = run_once(&brotr, &service);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("view_refresh_failed"), "{stderr}");
    assert!(stderr.contains("refresh_partially_failed"), "{stderr}");
    assert_eq!(event_count(&db).await, Some(1));
    std::fs::remove_dir_all(dir).unwrap();

    let (dir, brotr, service) = write_configs(&db, &["boom"]);
    let output = run_once(&brotr, &service);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("every view failed to refresh"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();

    let (dir, brotr, service) = write_configs(&db, &["event_stats", "nope"]);
    let output = run_once(&brotr, &service);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refresh.views[1]: no function public.nope_refresh() in the database"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
