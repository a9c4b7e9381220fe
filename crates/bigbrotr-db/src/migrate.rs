//! The schema step: the embedded migrations, adoption of databases created by BigBrotr 6.6.9's own
//! SQL, the LilBrotr variant, role passwords, and the start-up check every daemon runs.
//!
//! Migrations are applied only by this explicit step (the `bigbrotr-migrate` binary, `make
//! migrate`); daemons call [`check_schema`] and refuse to run on an outdated schema.

use std::borrow::Cow;
use std::collections::BTreeSet;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{AssertSqlSafe, Connection};

use crate::error::{DbError, Result};

/// The versioned migrations, embedded at build time. Every file of `migrations/` is listed here
/// (a test checks the list against the directory).
const MIGRATION_FILES: &[(i64, &str, &str)] = &[
    (
        1,
        "bigbrotr baseline",
        include_str!("../../../migrations/0001_bigbrotr_baseline.sql"),
    ),
    (
        2,
        "roles and grants",
        include_str!("../../../migrations/0002_roles_and_grants.sql"),
    ),
    (
        3,
        "fixes",
        include_str!("../../../migrations/0003_fixes.sql"),
    ),
    (
        4,
        "incremental analytics",
        include_str!("../../../migrations/0004_incremental_analytics.sql"),
    ),
    (
        5,
        "service lease",
        include_str!("../../../migrations/0005_service_lease.sql"),
    ),
];

/// The idempotent script that turns a database into the LilBrotr variant.
const LILBROTR_SQL: &str = include_str!("../../../migrations/variants/lilbrotr.sql");

/// The baseline migration: what a BigBrotr 6.6.9 database already has.
const BASELINE_VERSION: i64 = 1;

/// Serialises concurrent migrate runs on one cluster (an arbitrary constant: "bigbrotr").
const MIGRATE_LOCK_KEY: i64 = 0x6269_6762_726f_7472;

/// The tables of BigBrotr 6.6.9.
pub const TABLES: &[&str] = &[
    "event",
    "event_relay",
    "metadata",
    "relay",
    "relay_metadata",
    "service_state",
];

/// Every statistics object with a `<name>_refresh()` function, in refresh dependency order: the
/// 13 materialized views of BigBrotr 6.6.9 (tables of the same names from migration 0004 on, see
/// migrations/0004_incremental_analytics.sql), then this project's relay availability tables.
pub const STATISTICS_OBJECTS: [&str; 15] = [
    "relay_metadata_latest",
    "event_stats",
    "relay_stats",
    "kind_counts",
    "kind_counts_by_relay",
    "pubkey_counts",
    "pubkey_counts_by_relay",
    "network_stats",
    "event_daily_counts",
    "events_replaceable_latest",
    "events_addressable_latest",
    "relay_software_counts",
    "supported_nip_counts",
    "relay_uptime_daily",
    "relay_uptime",
];

/// The materialized views of BigBrotr 6.6.9, in its refresh dependency order: the first 13
/// [`STATISTICS_OBJECTS`].
pub const MATERIALIZED_VIEWS: [&str; 13] = match STATISTICS_OBJECTS.first_chunk::<13>() {
    Some(views) => *views,
    None => unreachable!(),
};

/// The stored functions of BigBrotr 6.6.9 with their argument types (as `regprocedure` prints
/// them), not counting the refresh functions, which are `<view>_refresh()` for each view plus
/// `all_statistics_refresh()`.
pub const FUNCTIONS: &[&str] = &[
    "tags_to_tagvalues(jsonb)",
    "relay_insert(text[],text[],bigint[])",
    "event_insert(bytea[],bytea[],bigint[],integer[],jsonb[],text[],bytea[])",
    "metadata_insert(bytea[],text[],jsonb[])",
    "event_relay_insert(bytea[],text[],bigint[])",
    "relay_metadata_insert(text[],bytea[],text[],bigint[])",
    "event_relay_insert_cascade(bytea[],bytea[],bigint[],integer[],jsonb[],text[],bytea[],text[],text[],bigint[],bigint[])",
    "relay_metadata_insert_cascade(text[],text[],bigint[],bytea[],text[],jsonb[],bigint[])",
    "service_state_upsert(text[],text[],text[],jsonb[])",
    "service_state_get(text,text,text)",
    "service_state_delete(text[],text[],text[])",
    "orphan_metadata_delete(integer)",
    "orphan_event_delete(integer)",
    "all_statistics_refresh()",
];

/// Which schema variant a database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Full events (tags, content, signature).
    BigBrotr,
    /// Lightweight events: tags, content and sig are stored as NULL; tagvalues are kept.
    LilBrotr,
}

impl Variant {
    /// The variant's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BigBrotr => "bigbrotr",
            Self::LilBrotr => "lilbrotr",
        }
    }
}

impl std::str::FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bigbrotr" => Ok(Self::BigBrotr),
            "lilbrotr" => Ok(Self::LilBrotr),
            other => Err(format!(
                "unknown variant {other:?}: expected bigbrotr or lilbrotr"
            )),
        }
    }
}

/// What a migrate run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// The database was created by BigBrotr 6.6.9 and has been adopted (baseline recorded).
    pub adopted: bool,
    /// Versions applied by this run.
    pub applied: Vec<i64>,
    /// The variant the database now holds.
    pub variant: Variant,
}

/// The embedded migrator.
pub fn migrator() -> Migrator {
    let migrations = MIGRATION_FILES
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                sqlx::SqlStr::from_static(sql),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// A short hash of every embedded SQL file (migrations and variants): test templates are keyed by
/// it, so a changed migration never reuses a stale template.
pub fn schema_fingerprint() -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (version, _, sql) in MIGRATION_FILES {
        hasher.update(version.to_le_bytes());
        hasher.update(sql.as_bytes());
    }
    hasher.update(LILBROTR_SQL.as_bytes());
    hex::encode(&hasher.finalize()[..6])
}

/// The latest migration version this binary knows.
pub fn latest_version() -> i64 {
    MIGRATION_FILES.last().map_or(0, |m| m.0)
}

/// Applies pending migrations under an advisory lock, adopting a BigBrotr 6.6.9 database first
/// (recording the baseline without running it), and applies the LilBrotr script when the database
/// is (or is asked to become) LilBrotr. `role_passwords` sets `LOGIN PASSWORD` on existing roles.
pub async fn migrate(
    pool: &PgPool,
    requested: Option<Variant>,
    role_passwords: &[(&str, &str)],
) -> Result<MigrateReport> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATE_LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    let outcome = migrate_locked(&mut conn, requested, role_passwords).await;
    let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATE_LOCK_KEY)
        .execute(&mut *conn)
        .await;
    let report = outcome?;
    unlock?;
    Ok(report)
}

async fn migrate_locked(
    conn: &mut PgConnection,
    requested: Option<Variant>,
    role_passwords: &[(&str, &str)],
) -> Result<MigrateReport> {
    let migrator = migrator();
    let tracked = migrations_table_exists(conn).await?;
    let present = present_tables(conn).await?;
    let mut adopted = false;
    if !tracked || applied_versions(conn).await?.is_empty() {
        if present.is_empty() {
            // A fresh database: nothing to adopt.
        } else if present.len() == TABLES.len() {
            let missing = missing_objects(conn).await?;
            if !missing.is_empty() {
                return Err(DbError::Schema(format!(
                    "the database has BigBrotr tables but not a BigBrotr 6.6.9 schema; missing: {}",
                    missing.join(", ")
                )));
            }
            migrator.skip(&mut *conn, Some(BASELINE_VERSION)).await?;
            adopted = true;
        } else {
            return Err(DbError::Schema(format!(
                "the database has only some BigBrotr tables ({}); refusing to migrate a partial schema",
                present.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let before: BTreeSet<i64> = applied_versions(conn)
        .await?
        .into_iter()
        .map(|m| m.0)
        .collect();
    let current = if present.contains("event") {
        Some(detect_variant(conn).await?)
    } else {
        None
    };
    let variant = match (current, requested) {
        (Some(Variant::LilBrotr), Some(Variant::BigBrotr)) => {
            return Err(DbError::Schema(
                "the database is LilBrotr (tags, content and sig were never stored); it cannot become BigBrotr".into(),
            ));
        }
        (_, Some(requested)) => requested,
        (Some(current), None) => current,
        (None, None) => Variant::BigBrotr,
    };
    migrator.run(&mut *conn).await?;
    if variant == Variant::LilBrotr {
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(LILBROTR_SQL).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    // Daemons log in as writer, reader or refresher and read the migration table at start-up.
    sqlx::raw_sql("GRANT SELECT ON _sqlx_migrations TO writer, reader, refresher")
        .execute(&mut *conn)
        .await?;
    for (role, password) in role_passwords {
        let statement: String = sqlx::query_scalar(
            "SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', $1::text, $2::text)",
        )
        .bind(role)
        .bind(password)
        .fetch_one(&mut *conn)
        .await?;
        sqlx::raw_sql(AssertSqlSafe(statement))
            .execute(&mut *conn)
            .await?;
    }
    let after = applied_versions(conn).await?;
    let applied = after
        .into_iter()
        .map(|m| m.0)
        .filter(|v| !before.contains(v))
        .collect();
    Ok(MigrateReport {
        adopted,
        applied,
        variant,
    })
}

/// The start-up check of every daemon: the database must carry every migration this binary knows,
/// with matching checksums. A newer database (versions this binary does not know) is accepted,
/// because migrations are expand-only.
pub async fn check_schema(pool: &PgPool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    let hint = "run `bigbrotr-migrate --brotr-config <path>` (or `make migrate`) first";
    if !migrations_table_exists(&mut conn).await? {
        let present = present_tables(&mut conn).await?;
        return Err(DbError::Schema(if present.is_empty() {
            format!("the database has no BigBrotr schema: {hint}")
        } else {
            format!(
                "the database was created by BigBrotr 6.6.9 and has not been adopted yet: {hint}"
            )
        }));
    }
    let applied = applied_versions(&mut conn).await?;
    let migrator = migrator();
    for migration in migrator.iter() {
        match applied
            .iter()
            .find(|(version, _)| *version == migration.version)
        {
            None => {
                let found = applied.iter().map(|m| m.0).max().unwrap_or(0);
                return Err(DbError::Schema(format!(
                    "the database schema is at version {found} but this binary needs version {} (missing migration {}: {}): {hint}",
                    latest_version(),
                    migration.version,
                    migration.description
                )));
            }
            Some((_, checksum)) if checksum.as_slice() != migration.checksum.as_ref() => {
                return Err(DbError::Schema(format!(
                    "migration {} applied to the database differs from the one embedded in this binary",
                    migration.version
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Detects the variant of an existing schema: LilBrotr when `event.sig` accepts NULL.
pub async fn detect_variant(conn: &mut PgConnection) -> Result<Variant> {
    let not_null: Option<bool> = sqlx::query_scalar(
        "SELECT attnotnull FROM pg_attribute
         WHERE attrelid = 'public.event'::regclass AND attname = 'sig' AND NOT attisdropped",
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match not_null {
        Some(false) => Variant::LilBrotr,
        _ => Variant::BigBrotr,
    })
}

/// The BigBrotr 6.6.9 objects (tables, materialized views, functions) missing from the database.
pub async fn missing_objects(conn: &mut PgConnection) -> Result<Vec<String>> {
    let relations: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, c.relkind::text FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'm')",
    )
    .fetch_all(&mut *conn)
    .await?;
    let functions: BTreeSet<String> = sqlx::query_scalar(
        "SELECT p.oid::regprocedure::text FROM pg_proc p
         JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'",
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let mut missing = Vec::new();
    for table in TABLES {
        if !relations
            .iter()
            .any(|(name, kind)| name == table && (kind == "r" || kind == "p"))
        {
            missing.push(format!("table {table}"));
        }
    }
    for view in MATERIALIZED_VIEWS {
        if !relations
            .iter()
            // Materialized views in 6.6.9, tables of the same names from migration 0004 on.
            .any(|(name, kind)| name == view && (kind == "m" || kind == "r"))
        {
            missing.push(format!("materialized view {view}"));
        }
        let refresh = format!("{view}_refresh()");
        if !functions.contains(&refresh) {
            missing.push(format!("function {refresh}"));
        }
    }
    for function in FUNCTIONS {
        if !functions.contains(*function) {
            missing.push(format!("function {function}"));
        }
    }
    Ok(missing)
}

async fn migrations_table_exists(conn: &mut PgConnection) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?,
    )
}

async fn present_tables(conn: &mut PgConnection) -> Result<BTreeSet<String>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname = ANY($1)",
    )
    .bind(TABLES)
    .fetch_all(&mut *conn)
    .await?;
    Ok(names.into_iter().collect())
}

async fn applied_versions(conn: &mut PgConnection) -> Result<Vec<(i64, Vec<u8>)>> {
    if !migrations_table_exists(conn).await? {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(
        "SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
        let mut on_disk: Vec<i64> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|entry| {
                let name = entry.unwrap().file_name().into_string().unwrap();
                let (number, rest) = name.split_once('_')?;
                rest.ends_with(".sql").then(|| number.parse().unwrap())
            })
            .collect();
        on_disk.sort_unstable();
        let embedded: Vec<i64> = MIGRATION_FILES.iter().map(|m| m.0).collect();
        assert_eq!(on_disk, embedded);
        assert!(embedded.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn variants_parse() {
        assert_eq!("lilbrotr".parse::<Variant>().unwrap(), Variant::LilBrotr);
        assert_eq!("bigbrotr".parse::<Variant>().unwrap(), Variant::BigBrotr);
        assert!("BigBrotr".parse::<Variant>().is_err());
    }
}
