//! The seeder: loads relay URLs from a seed file into the database, as validator candidates or,
//! with `seed.to_validate: false`, straight into `relay`. Meant to run with `--once`.
//!
//! Blank lines and lines starting with `#` are skipped; every invalid line is reported with its
//! line number and never aborts the run; URLs that are already relays or candidates are skipped,
//! so a re-run is idempotent.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bigbrotr_core::clock;
use bigbrotr_core::config::{BaseServiceConfig, ConfigError, Validate};
use bigbrotr_core::metrics::names::seeder as names;
use bigbrotr_core::runner::{Context, Daemon};
use bigbrotr_models::relay::{Relay, parse_relay};
use bigbrotr_models::service_state::ServiceName;
use serde::{Deserialize, Serialize};

/// The largest seed file accepted (the original's is about 300 KB).
pub const MAX_SEED_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// `seeder.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeederConfig {
    /// The keys every service has.
    #[serde(flatten)]
    pub base: BaseServiceConfig,
    /// `seed:`.
    pub seed: SeedConfig,
}

/// `seed:` — where the URLs come from and where they go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedConfig {
    /// The seed file, relative to the working directory.
    pub file_path: PathBuf,
    /// Insert as validator candidates (true) or directly as relays (false).
    pub to_validate: bool,
}

impl Default for SeedConfig {
    fn default() -> Self {
        Self {
            file_path: PathBuf::from("static/seed_relays.txt"),
            to_validate: true,
        }
    }
}

impl Validate for SeederConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.base.validate()?;
        if self.seed.file_path.as_os_str().is_empty() {
            return Err(ConfigError("seed.file_path must not be empty".into()));
        }
        Ok(())
    }
}

/// One rejected line of a seed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLine {
    /// 1-based line number.
    pub line: usize,
    /// The line's text (lossily decoded, trimmed).
    pub text: String,
    /// Why it was rejected.
    pub reason: String,
}

/// The relays found in a seed file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedSeed {
    /// Valid relays, deduplicated by canonical URL, in file order.
    pub relays: Vec<Relay>,
    /// Lines that are not valid relay URLs.
    pub invalid: Vec<InvalidLine>,
    /// Valid lines whose canonical URL appeared earlier in the file.
    pub duplicates: usize,
    /// Non-blank, non-comment lines.
    pub candidates: usize,
}

/// Parses seed-file contents: blank and `#` lines are skipped, each other line must be a relay
/// URL (sanitised to its canonical form). Lines are bytes: a line that is not UTF-8 is reported,
/// not fatal.
pub fn parse_seed(contents: &[u8], discovered_at: i64) -> ParsedSeed {
    let mut parsed = ParsedSeed::default();
    let mut seen = HashSet::new();
    for (index, raw) in contents.split(|b| *b == b'\n').enumerate() {
        let line_number = index + 1;
        let text = match std::str::from_utf8(raw) {
            Ok(text) => text.trim(),
            Err(_) => {
                parsed.candidates += 1;
                parsed.invalid.push(InvalidLine {
                    line: line_number,
                    text: String::from_utf8_lossy(raw).trim().to_owned(),
                    reason: "not valid UTF-8".into(),
                });
                continue;
            }
        };
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        parsed.candidates += 1;
        match parse_relay(text, discovered_at) {
            Ok(relay) => {
                if seen.insert(relay.url().to_owned()) {
                    parsed.relays.push(relay);
                } else {
                    parsed.duplicates += 1;
                }
            }
            Err(error) => parsed.invalid.push(InvalidLine {
                line: line_number,
                text: text.to_owned(),
                reason: error.to_string(),
            }),
        }
    }
    parsed
}

/// Reads a seed file, refusing files over [`MAX_SEED_FILE_BYTES`].
pub async fn read_seed_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let metadata = tokio::fs::metadata(path)
        .await
        .with_context(|| format!("cannot open seed file {}", path.display()))?;
    if metadata.len() > MAX_SEED_FILE_BYTES {
        anyhow::bail!(
            "seed file {} is {} bytes, more than the {MAX_SEED_FILE_BYTES} accepted",
            path.display(),
            metadata.len()
        );
    }
    tokio::fs::read(path)
        .await
        .with_context(|| format!("cannot read seed file {}", path.display()))
}

/// What one seeding run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// Valid, distinct relays in the file.
    pub valid: usize,
    /// Invalid lines.
    pub invalid: usize,
    /// Rows added (candidates or relays); the rest were already known.
    pub inserted: u64,
}

/// The seeder daemon.
#[derive(Debug)]
pub struct Seeder {
    config: SeederConfig,
}

impl Seeder {
    /// A seeder with `config`.
    pub fn new(config: SeederConfig) -> Self {
        Self { config }
    }

    /// Loads the seed file once: parse, report invalid lines, insert in batches.
    pub async fn seed(&self, ctx: &Context) -> anyhow::Result<SeedReport> {
        let path = &self.config.seed.file_path;
        let contents = read_seed_file(path).await?;
        let now = clock::now();
        let parsed = parse_seed(&contents, now);
        for invalid in &parsed.invalid {
            tracing::warn!(
                line = invalid.line,
                url = %invalid.text,
                error = %invalid.reason,
                "relay_parse_failed"
            );
        }
        tracing::info!(
            path = %path.display(),
            lines = parsed.candidates,
            valid = parsed.relays.len(),
            invalid = parsed.invalid.len(),
            duplicates = parsed.duplicates,
            to_validate = self.config.seed.to_validate,
            "seed_file_parsed"
        );
        let total = parsed.relays.len();
        let mut processed = 0;
        let mut inserted = 0;
        for chunk in parsed.relays.chunks(ctx.brotr.batch_max_size()) {
            if ctx.is_stopping() {
                tracing::warn!(processed, total, "seed_interrupted");
                break;
            }
            inserted += if self.config.seed.to_validate {
                ctx.brotr.insert_candidates(chunk, now).await?
            } else {
                ctx.brotr.insert_relays(chunk).await?
            };
            processed += chunk.len();
            tracing::info!(processed, total, inserted, "seed_progress");
        }
        let report = SeedReport {
            valid: total,
            invalid: parsed.invalid.len(),
            inserted,
        };
        ctx.metrics
            .set_gauge(names::RELAYS_SEEDED, report.inserted as f64);
        tracing::info!(
            valid = report.valid,
            invalid = report.invalid,
            inserted = report.inserted,
            skipped = report.valid as u64 - report.inserted.min(report.valid as u64),
            "seed_completed"
        );
        Ok(report)
    }
}

impl Daemon for Seeder {
    const NAME: ServiceName = ServiceName::Seeder;
    type Config = SeederConfig;

    fn base(config: &SeederConfig) -> &BaseServiceConfig {
        &config.base
    }

    async fn build(config: SeederConfig, _ctx: &Context) -> anyhow::Result<Self> {
        Ok(Self::new(config))
    }

    async fn run(&mut self, ctx: &Context) -> anyhow::Result<()> {
        self.seed(ctx).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests;
