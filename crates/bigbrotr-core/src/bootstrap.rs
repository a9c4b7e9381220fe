//! Process start-up shared by every daemon: CLI, configuration, logging, TLS provider, database
//! connection and schema check, metrics endpoint, signals, and the exit code.
//!
//! A daemon that writes ([`Daemon::WRITES`]) refuses a database that is a read-only standby,
//! naming where it points; the read side (the API, the DVM) runs there and samples its
//! replication lag into `database_replay_lag_seconds`.
//!
//! Exit codes: 0 on success or a graceful stop, 1 on failure (including the consecutive-failure
//! cap, which the original wrongly reported as 0), 130 when `--once` is interrupted by Ctrl-C or
//! a second signal forces the exit.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use bigbrotr_db::Brotr;
use bigbrotr_db::config::BrotrConfig;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, LogFormat};
use crate::config::{self, BROTR_ENV_PREFIX, Loaded, SERVICE_ENV_PREFIX};
use crate::logging;
use crate::metrics::Metrics;
use crate::runner::{self, Context, Daemon, Schedule};

/// How often the read side samples its database's replication lag.
pub const REPLICATION_SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

/// How long one replication sample may take.
const REPLICATION_SAMPLE_BUDGET: Duration = Duration::from_secs(2);

/// Installs rustls' process-wide crypto provider (ring). Every binary calls this first: TLS
/// clients built without it panic at first use.
pub fn install_crypto_provider() {
    // Already installed (tests, or a second call) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs daemon `D` with the process's command line; returns its exit code, the log lines written
/// out ([`logging::flush`]).
pub async fn run<D: Daemon>() -> ExitCode {
    let code = run_with_cli::<D>(Cli::parse()).await;
    logging::flush();
    code
}

/// Runs daemon `D` with an explicit command line (tests).
pub async fn run_with_cli<D: Daemon>(cli: Cli) -> ExitCode {
    install_crypto_provider();
    let service = D::NAME.as_str();
    let config_path = cli.config_path(service);
    let loaded: Result<Loaded<D::Config>, _> = config::load(&config_path, SERVICE_ENV_PREFIX);
    let format = cli
        .log_format
        .or_else(|| {
            loaded
                .as_ref()
                .ok()
                .and_then(|l| D::base(&l.config).log_format)
        })
        .unwrap_or(LogFormat::Kv);
    logging::init(cli.log_level, format, service);
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            tracing::error!(target: "cli", error = %error, "config_invalid");
            return ExitCode::from(1);
        }
    };
    report_load(&loaded, &config_path);
    let brotr_loaded: Loaded<BrotrConfig> = match config::load(&cli.brotr_config, BROTR_ENV_PREFIX)
    {
        Ok(loaded) => loaded,
        Err(error) => {
            tracing::error!(target: "cli", error = %error, "config_invalid");
            return ExitCode::from(1);
        }
    };
    report_load(&brotr_loaded, &cli.brotr_config);
    let service_config = loaded.config;
    let mut brotr_config = brotr_loaded.config;
    let base = D::base(&service_config).clone();
    base.pool.apply(&mut brotr_config, service);
    if let Err(error) = brotr_config.validate() {
        tracing::error!(target: "cli", error = %error, "config_invalid");
        return ExitCode::from(1);
    }
    if let Err(error) = D::check_with_brotr(&service_config, &brotr_config) {
        tracing::error!(target: "cli", error = %error, "config_invalid");
        return ExitCode::from(1);
    }

    let shutdown = CancellationToken::new();
    let signal = Arc::new(AtomicI32::new(0));
    spawn_signal_handler(shutdown.clone(), signal.clone());

    let password = match brotr_config.pool.database.resolve_password() {
        Ok(password) => password,
        Err(error) => {
            tracing::error!(target: "cli", error = %error, "config_invalid");
            return ExitCode::from(1);
        }
    };
    let brotr = match Brotr::connect(brotr_config, password.as_deref()).await {
        Ok(brotr) => brotr,
        Err(error) => {
            tracing::error!(target: "cli", error = %error, "database_connect_failed");
            return ExitCode::from(1);
        }
    };
    if D::WRITES
        && let Err(error) =
            bigbrotr_db::replication::check_primary(brotr.pool(), &brotr.config().pool.database)
                .await
    {
        tracing::error!(target: "cli", service, error = %error, "database_is_standby");
        brotr.close().await;
        return ExitCode::from(1);
    }
    if let Err(error) = bigbrotr_db::migrate::check_schema(brotr.pool()).await {
        tracing::error!(target: "cli", error = %error, "schema_check_failed");
        brotr.close().await;
        return ExitCode::from(1);
    }

    let metrics = Metrics::new(service);
    if base.metrics.enabled && !cli.once {
        match metrics.serve(&base.metrics, shutdown.clone()).await {
            Ok(address) => {
                tracing::info!(address = %address, path = %base.metrics.path, "metrics_started")
            }
            Err(error) => {
                tracing::error!(error = %error, "metrics_bind_failed");
                brotr.close().await;
                return ExitCode::from(1);
            }
        }
    }
    if !D::WRITES {
        spawn_replication_sampler(brotr.clone(), metrics.clone(), shutdown.clone());
    }
    let ctx = Context {
        brotr: brotr.clone(),
        metrics,
        shutdown: shutdown.clone(),
    };
    let mut daemon = match D::build(service_config, &ctx).await {
        Ok(daemon) => daemon,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "service_init_failed");
            brotr.close().await;
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        once = cli.once,
        interval_s = base.interval,
        "service_started"
    );
    let outcome = runner::run_cycles(&mut daemon, &ctx, Schedule::from_base(&base, cli.once)).await;
    shutdown.cancel();
    brotr.close().await;
    let code = runner::exit_code(outcome, cli.once, signal.load(Ordering::SeqCst));
    tracing::info!(exit_code = code, "service_stopped");
    ExitCode::from(code)
}

fn report_load<T>(loaded: &Loaded<T>, path: &std::path::Path) {
    if !loaded.file_found {
        tracing::info!(target: "cli", path = %path.display(), "config_not_found: using defaults");
    }
    for key in &loaded.unknown_keys {
        tracing::warn!(target: "cli", path = %path.display(), key = %key, "config_unknown_key");
    }
}

/// Samples, for the read side, whether the database is a standby and how far behind it is
/// (`database_replay_lag_seconds`) every [`REPLICATION_SAMPLE_INTERVAL`] until `shutdown`. The
/// first sample is logged (`database_replication standby=… replay_lag_s=…`); a failed one
/// keeps the last value and is logged at debug (the API's `/health` reports the outage).
fn spawn_replication_sampler(brotr: Brotr, metrics: Metrics, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(REPLICATION_SAMPLE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = true;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            match brotr.replication(REPLICATION_SAMPLE_BUDGET).await {
                Ok(replication) => {
                    metrics.set_replication(&replication);
                    if first {
                        first = false;
                        let standby = replication.standby;
                        match replication.replay_lag_seconds {
                            Some(lag) => {
                                tracing::info!(standby, replay_lag_s = lag, "database_replication")
                            }
                            None => tracing::info!(standby, "database_replication"),
                        }
                    }
                }
                Err(error) => tracing::debug!(error = %error, "replication_sample_failed"),
            }
        }
    });
}

/// First SIGINT/SIGTERM: request a graceful stop. Second: exit at once with 130.
fn spawn_signal_handler(shutdown: CancellationToken, received: Arc<AtomicI32>) {
    tokio::spawn(async move {
        let Ok(mut terminate) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            tracing::error!("signal_handler_failed");
            return;
        };
        let mut count = 0;
        loop {
            let number = tokio::select! {
                _ = tokio::signal::ctrl_c() => 2,
                _ = terminate.recv() => 15,
            };
            count += 1;
            if count == 1 {
                received.store(number, Ordering::SeqCst);
                tracing::info!(signal = number, "shutdown_signal");
                shutdown.cancel();
            } else {
                tracing::warn!(signal = number, "shutdown_forced");
                logging::flush();
                std::process::exit(130);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_crypto_provider_is_installed_once_and_idempotently() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        // A TLS client configuration can be built without naming a provider.
        let roots = rustls::RootCertStore::empty();
        let _config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
    }
}
