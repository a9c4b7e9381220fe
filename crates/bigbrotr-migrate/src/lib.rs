//! `bigbrotr-migrate`: the one explicit, idempotent schema step an operator runs before starting
//! (or upgrading) daemons. It applies pending migrations under an advisory lock, adopts a database
//! created by BigBrotr 6.6.9's own SQL (recording the baseline instead of re-creating objects),
//! applies the LilBrotr variant when asked or already present, and sets the passwords of the
//! `writer`, `reader` and `refresher` roles from `DB_WRITER_PASSWORD`, `DB_READER_PASSWORD` and
//! `DB_REFRESHER_PASSWORD` when those are set, and creates the `replicator` role (`LOGIN
//! REPLICATION`, for a streaming standby) when `DB_REPLICATION_PASSWORD` is set. It refuses a
//! read-only standby; `--check` only reports whether the schema is current, on a standby too.

use std::path::PathBuf;
use std::process::ExitCode;

use bigbrotr_core::cli::{LogFormat, LogLevel};
use bigbrotr_core::config::{self, BROTR_ENV_PREFIX};
use bigbrotr_core::{logging, secrets};
use bigbrotr_db::config::BrotrConfig;
use bigbrotr_db::migrate::{self, Variant};
use clap::Parser;

/// The roles whose passwords may be set, with the variables holding them.
pub const ROLE_PASSWORD_ENVS: [(&str, &str); 3] = [
    ("writer", "DB_WRITER_PASSWORD"),
    ("reader", "DB_READER_PASSWORD"),
    ("refresher", "DB_REFRESHER_PASSWORD"),
];

/// The role a streaming standby logs in as, and the variable holding its password: when it is
/// set, `bigbrotr-migrate` creates the role (`LOGIN REPLICATION`) or resets its password.
pub const REPLICATION_ROLE_ENV: (&str, &str) = ("replicator", "DB_REPLICATION_PASSWORD");

/// Flags of `bigbrotr-migrate`.
#[derive(Debug, Clone, Parser)]
#[command(version, about = "Apply BigBrotr database migrations (idempotent)")]
pub struct MigrateCli {
    /// Database configuration file (connects as its user, normally the admin role).
    #[arg(long, value_name = "PATH", default_value = "config/brotr.yaml")]
    pub brotr_config: PathBuf,
    /// Schema variant: `lilbrotr` stores no tags, content or signatures. Default: keep the
    /// database's current variant (bigbrotr for a new database).
    #[arg(long, value_parser = parse_variant)]
    pub variant: Option<Variant>,
    /// Only check whether the schema is current; exit 1 when it is not.
    #[arg(long)]
    pub check: bool,
    /// Log verbosity.
    #[arg(long, value_enum, default_value_t = LogLevel::Info, ignore_case = true)]
    pub log_level: LogLevel,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Kv, ignore_case = true)]
    pub log_format: LogFormat,
}

fn parse_variant(value: &str) -> Result<Variant, String> {
    value.parse()
}

/// Runs the tool; returns its exit code.
pub async fn run(cli: MigrateCli) -> ExitCode {
    bigbrotr_core::bootstrap::install_crypto_provider();
    logging::init(cli.log_level, cli.log_format, "migrate");
    match migrate_main(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "migrate_failed");
            ExitCode::from(1)
        }
    }
}

async fn migrate_main(cli: &MigrateCli) -> anyhow::Result<()> {
    let loaded = config::load::<BrotrConfig>(&cli.brotr_config, BROTR_ENV_PREFIX)?;
    if !loaded.file_found {
        tracing::info!(path = %cli.brotr_config.display(), "config_not_found: using defaults");
    }
    let mut brotr_config = loaded.config;
    brotr_config.pool.server_settings.application_name = "bigbrotr-migrate".into();
    // One connection is all the step needs; the lock serialises concurrent runs.
    brotr_config.pool.limits.min_size = 1;
    brotr_config.pool.limits.max_size = 1;
    let password = brotr_config.pool.database.resolve_password()?;
    let pool = bigbrotr_db::pool::connect(&brotr_config.pool, password.as_deref()).await?;
    if cli.check {
        let result = migrate::check_schema(&pool).await;
        pool.close().await;
        result?;
        tracing::info!(version = migrate::latest_version(), "schema_current");
        return Ok(());
    }
    // The schema step writes: never on a standby (`--check` above only reads, and works there).
    if let Err(error) =
        bigbrotr_db::replication::check_primary(&pool, &brotr_config.pool.database).await
    {
        pool.close().await;
        return Err(error.into());
    }
    let passwords: Vec<(&str, secrets::Secret)> = ROLE_PASSWORD_ENVS
        .iter()
        .filter_map(|(role, env)| secrets::from_env(env).map(|secret| (*role, secret)))
        .collect();
    let role_passwords: Vec<(&str, &str)> = passwords
        .iter()
        .map(|(role, secret)| (*role, secret.expose()))
        .collect();
    let report = migrate::migrate(&pool, cli.variant, &role_passwords).await;
    let (replication_role, replication_env) = REPLICATION_ROLE_ENV;
    let replication = match (&report, secrets::from_env(replication_env)) {
        (Ok(_), Some(password)) => Some(
            bigbrotr_db::replication::ensure_replication_role(
                &pool,
                replication_role,
                password.expose(),
            )
            .await,
        ),
        _ => None,
    };
    pool.close().await;
    let report = report?;
    if let Some(result) = replication {
        result?;
        tracing::info!(role = replication_role, "replication_role_set");
    }
    tracing::info!(
        adopted = report.adopted,
        applied = ?report.applied,
        variant = report.variant.as_str(),
        version = migrate::latest_version(),
        passwords_set = role_passwords.len(),
        "migrate_completed"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn verify_cli() {
        MigrateCli::command().debug_assert();
        let cli = MigrateCli::parse_from(["bigbrotr-migrate", "--variant", "lilbrotr"]);
        assert_eq!(cli.variant, Some(Variant::LilBrotr));
        assert!(MigrateCli::try_parse_from(["x", "--variant", "bigger"]).is_err());
    }
}
