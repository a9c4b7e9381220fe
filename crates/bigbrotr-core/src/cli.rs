//! The command line shared by every daemon (the original's flags, default paths and exit codes).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Log verbosity; the names are the original's (`--log-level INFO` works too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "lower")]
pub enum LogLevel {
    /// Everything, including per-relay detail.
    #[value(alias = "DEBUG")]
    Debug,
    /// Cycle progress (the default).
    #[value(alias = "INFO")]
    Info,
    /// Problems that do not stop a cycle.
    #[value(alias = "WARNING", alias = "warn", alias = "WARN")]
    Warning,
    /// Failures only.
    #[value(alias = "ERROR")]
    Error,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `<level> <logger> <message> key=value ...`, as the original.
    Kv,
    /// One JSON object per line.
    Json,
}

/// Flags of every `bigbrotr-<service>` binary.
#[derive(Debug, Clone, Parser)]
#[command(version, about = "A BigBrotr daemon", long_about = None)]
pub struct Cli {
    /// Service configuration file [default: config/services/<service>.yaml].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Database configuration file.
    #[arg(long, value_name = "PATH", default_value = "config/brotr.yaml")]
    pub brotr_config: PathBuf,
    /// Log verbosity.
    #[arg(long, value_enum, default_value_t = LogLevel::Info, ignore_case = true)]
    pub log_level: LogLevel,
    /// Log format [default: the service config's `log_format`, else kv].
    #[arg(long, value_enum, ignore_case = true)]
    pub log_format: Option<LogFormat>,
    /// Run one cycle (cleanup, then run) and exit: 0 on success, 1 on failure.
    #[arg(long)]
    pub once: bool,
}

impl Cli {
    /// The service configuration path, defaulting to `config/services/<service>.yaml`.
    pub fn config_path(&self, service: &str) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("config/services/{service}.yaml")))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_originals() {
        let cli = Cli::parse_from(["bigbrotr-seeder"]);
        assert_eq!(
            cli.config_path("seeder"),
            PathBuf::from("config/services/seeder.yaml")
        );
        assert_eq!(cli.brotr_config, PathBuf::from("config/brotr.yaml"));
        assert_eq!(cli.log_level, LogLevel::Info);
        assert!(!cli.once);
        assert_eq!(cli.log_format, None);
    }

    #[test]
    fn accepts_the_originals_upper_case_levels_and_json() {
        let cli = Cli::parse_from([
            "x",
            "--log-level",
            "DEBUG",
            "--log-format",
            "json",
            "--once",
            "--config",
            "a.yaml",
        ]);
        assert_eq!(cli.log_level, LogLevel::Debug);
        assert_eq!(cli.log_format, Some(LogFormat::Json));
        assert!(cli.once);
        assert_eq!(cli.config_path("seeder"), PathBuf::from("a.yaml"));
        assert!(Cli::try_parse_from(["x", "--log-level", "loud"]).is_err());
    }
}
