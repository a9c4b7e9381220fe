//! The schema step: fresh migration, idempotency, adoption of BigBrotr 6.6.9 databases, the
//! LilBrotr variant, role passwords, and the start-up schema check.

use bigbrotr_db::migrate::{self, Variant};
use bigbrotr_testkit::{TestDb, server_options};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

/// An empty database (no schema) that is dropped at the end of the test.
pub(crate) struct EmptyDb {
    name: String,
    pub(crate) pool: PgPool,
}

impl EmptyDb {
    pub(crate) async fn new() -> Self {
        let name = format!("bigbrotr_empty_{:016x}", rand_u64());
        let mut admin = PgConnection::connect_with(&server_options()).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(server_options().database(&name))
            .await
            .unwrap();
        Self { name, pool }
    }

    pub(crate) async fn drop_db(self) {
        self.pool.close().await;
        let mut admin = PgConnection::connect_with(&server_options()).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
}

fn rand_u64() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Creates the objects of a BigBrotr 6.6.9 database the way its own init scripts do: the schema
/// SQL run directly, with no migration bookkeeping.
pub(crate) async fn create_like_bigbrotr_6_6_9(pool: &PgPool) {
    let baseline = include_str!("../../migrations/0001_bigbrotr_baseline.sql");
    let roles = include_str!("../../migrations/0002_roles_and_grants.sql");
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql(baseline).execute(&mut *conn).await.unwrap();
    sqlx::raw_sql(roles).execute(&mut *conn).await.unwrap();
}

async fn applied(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_fresh_database_is_migrated_and_a_rerun_is_a_no_op() {
    let db = EmptyDb::new().await;
    let report = migrate::migrate(&db.pool, None, &[]).await.unwrap();
    assert!(!report.adopted);
    assert_eq!(report.applied, vec![1, 2, 3, 4, 5]);
    assert_eq!(report.variant, Variant::BigBrotr);
    migrate::check_schema(&db.pool).await.unwrap();
    let again = migrate::migrate(&db.pool, None, &[]).await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(applied(&db.pool).await, vec![1, 2, 3, 4, 5]);
    let mut conn = db.pool.acquire().await.unwrap();
    assert!(
        migrate::missing_objects(&mut conn)
            .await
            .unwrap()
            .is_empty()
    );
    drop(conn);
    db.drop_db().await;
}

#[tokio::test]
async fn a_bigbrotr_6_6_9_database_is_adopted_not_recreated() {
    let db = EmptyDb::new().await;
    create_like_bigbrotr_6_6_9(&db.pool).await;
    sqlx::query("SELECT relay_insert(ARRAY['wss://kept.example.com'], ARRAY['clearnet'], ARRAY[42::bigint])")
        .execute(&db.pool)
        .await
        .unwrap();
    let err = migrate::check_schema(&db.pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("6.6.9") && err.contains("bigbrotr-migrate"),
        "{err}"
    );
    let report = migrate::migrate(&db.pool, None, &[]).await.unwrap();
    assert!(report.adopted);
    assert_eq!(
        report.applied,
        vec![2, 3, 4, 5],
        "the baseline is recorded, not run"
    );
    assert_eq!(applied(&db.pool).await, vec![1, 2, 3, 4, 5]);
    let kept: i64 =
        sqlx::query_scalar("SELECT discovered_at FROM relay WHERE url = 'wss://kept.example.com'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(kept, 42, "adoption must keep the existing data");
    migrate::check_schema(&db.pool).await.unwrap();
    db.drop_db().await;
}

#[tokio::test]
async fn a_partial_or_foreign_schema_is_refused() {
    let db = EmptyDb::new().await;
    sqlx::raw_sql("CREATE TABLE relay (url TEXT PRIMARY KEY)")
        .execute(&db.pool)
        .await
        .unwrap();
    let err = migrate::migrate(&db.pool, None, &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("partial"), "{err}");
    db.drop_db().await;
}

#[tokio::test]
async fn a_database_missing_a_migration_is_refused_with_the_command_to_run() {
    let db = TestDb::new().await;
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 5")
        .execute(db.pool())
        .await
        .unwrap();
    let err = migrate::check_schema(db.pool())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("version 4") && err.contains("needs version 5"),
        "{err}"
    );
    assert!(err.contains("bigbrotr-migrate"), "{err}");
}

#[tokio::test]
async fn an_edited_migration_is_detected() {
    let db = TestDb::new().await;
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = 2")
        .execute(db.pool())
        .await
        .unwrap();
    let err = migrate::check_schema(db.pool())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("differs"), "{err}");
}

#[tokio::test]
async fn lilbrotr_is_applied_on_request_kept_on_rerun_and_never_reverted() {
    let db = EmptyDb::new().await;
    let report = migrate::migrate(&db.pool, Some(Variant::LilBrotr), &[])
        .await
        .unwrap();
    assert_eq!(report.variant, Variant::LilBrotr);
    let again = migrate::migrate(&db.pool, None, &[]).await.unwrap();
    assert_eq!(
        again.variant,
        Variant::LilBrotr,
        "the variant is detected from the database"
    );
    let err = migrate::migrate(&db.pool, Some(Variant::BigBrotr), &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot become BigBrotr"), "{err}");
    db.drop_db().await;
}

#[tokio::test]
async fn role_passwords_are_set_from_the_given_secrets() {
    let db = EmptyDb::new().await;
    let password = "s3cret 'quoted' \"pw\"";
    migrate::migrate(&db.pool, None, &[("reader", password)])
        .await
        .unwrap();
    let has_password: bool = sqlx::query_scalar(
        "SELECT rolpassword IS NOT NULL AND rolcanlogin FROM pg_authid WHERE rolname = 'reader'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(has_password);
    db.drop_db().await;
}
