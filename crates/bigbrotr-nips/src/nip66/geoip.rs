//! The GeoLite2 databases of the Geo and Net checks: opening them, and keeping them fresh
//! (download when missing or older than `max_age_days`, bounded in size, verified as a MaxMind DB
//! and swapped in atomically, so a failed download never damages the file in use).

use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bigbrotr_utils::http::send_bounded;
use maxminddb::Reader;

/// Why a database could not be opened or refreshed.
#[derive(Debug, thiserror::Error)]
pub enum GeoIpError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a MaxMind DB.
    #[error("not a valid MaxMind database: {0}")]
    Invalid(String),
    /// The download failed (connection, timeout, body too large).
    #[error("download failed: {0}")]
    Download(String),
    /// The server answered with another status than 200.
    #[error("download failed: HTTP {0}")]
    Status(u16),
}

impl GeoIpError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Marker of a GeoLite2-City database ([`crate::nip66::geo::GeoDatabase`]).
#[derive(Debug)]
pub enum City {}

/// Marker of a GeoLite2-ASN database ([`crate::nip66::net::AsnDatabase`]).
#[derive(Debug)]
pub enum Asn {}

/// A MaxMind database held in memory, typed by what it holds (`K` is [`City`] or [`Asn`], so
/// one cannot be passed where the other is expected); share it as an `Arc`.
pub struct MaxMindDatabase<K> {
    reader: Reader<Vec<u8>>,
    kind: PhantomData<K>,
}

impl<K> MaxMindDatabase<K> {
    /// Reads and opens the database at `path`.
    pub fn open(path: &Path) -> Result<Self, GeoIpError> {
        let bytes = std::fs::read(path).map_err(|e| GeoIpError::io(path, e))?;
        Self::from_bytes(bytes)
    }

    /// Opens a database held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, GeoIpError> {
        let reader = Reader::from_source(bytes).map_err(|e| GeoIpError::Invalid(e.to_string()))?;
        Ok(Self {
            reader,
            kind: PhantomData,
        })
    }

    /// The database's type from its metadata, e.g. "GeoLite2-City".
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    pub(crate) fn reader(&self) -> &Reader<Vec<u8>> {
        &self.reader
    }
}

impl<K> std::fmt::Debug for MaxMindDatabase<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaxMindDatabase")
            .field("database_type", &self.database_type())
            .finish_non_exhaustive()
    }
}

/// What [`refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// The file exists and is younger than the maximum age (or no maximum age is set): no
    /// request was made.
    Fresh,
    /// A new copy was downloaded and swapped in.
    Downloaded {
        /// Its size.
        bytes: usize,
    },
}

/// Makes sure `path` holds a usable database: downloads `url` when the file is missing, or older
/// than `max_age_days` (`None`: never re-download an existing file). The body is limited to
/// `max_download_size` bytes and must be a 200 response that opens as a MaxMind DB; it is
/// written to a temporary file beside `path`, synced, then renamed over it. On any error the
/// existing file is left untouched. Timeouts are the `client`'s.
pub async fn refresh(
    path: &Path,
    url: &str,
    max_age_days: Option<u32>,
    max_download_size: usize,
    client: &reqwest::Client,
) -> Result<Refresh, GeoIpError> {
    if is_fresh(path, max_age_days).await {
        return Ok(Refresh::Fresh);
    }
    let response = send_bounded(client.get(url), max_download_size)
        .await
        .map_err(|e| GeoIpError::Download(e.to_string()))?;
    if response.status != 200 {
        return Err(GeoIpError::Status(response.status));
    }
    let body = response.body;
    let bytes = body.len();
    let target = path.to_owned();
    tokio::task::spawn_blocking(move || install(&target, body))
        .await
        .map_err(|e| GeoIpError::Download(format!("install task failed: {e}")))??;
    tracing::info!(path = %path.display(), bytes, "GeoIP database downloaded");
    Ok(Refresh::Downloaded { bytes })
}

/// Whether `path` exists and needs no download.
async fn is_fresh(path: &Path, max_age_days: Option<u32>) -> bool {
    let Ok(metadata) = tokio::fs::metadata(path).await else {
        return false;
    };
    if !metadata.is_file() {
        return false;
    }
    let Some(days) = max_age_days else {
        return true;
    };
    let max_age = Duration::from_secs(u64::from(days) * 86_400);
    match metadata.modified() {
        // A modification time in the future counts as fresh.
        Ok(modified) => SystemTime::now()
            .duration_since(modified)
            .map_or(true, |age| age < max_age),
        Err(_) => false,
    }
}

/// Verifies `body`, writes it beside `path` and renames it over `path`.
fn install(path: &Path, body: Vec<u8>) -> Result<(), GeoIpError> {
    Reader::from_source(body.as_slice()).map_err(|e| GeoIpError::Invalid(e.to_string()))?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&directory).map_err(|e| GeoIpError::io(&directory, e))?;
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "geoip.mmdb".to_owned());
    let temporary = directory.join(format!(
        ".{file_name}.{:016x}.download",
        rand::random::<u64>()
    ));
    let written = write_synced(&temporary, &body)
        .and_then(|()| std::fs::rename(&temporary, path).map_err(|e| GeoIpError::io(path, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
        return written;
    }
    // Make the rename itself durable (best effort: not every platform can sync a directory).
    if let Ok(dir) = std::fs::File::open(&directory) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn write_synced(path: &Path, body: &[u8]) -> Result<(), GeoIpError> {
    let mut file = std::fs::File::create_new(path).map_err(|e| GeoIpError::io(path, e))?;
    file.write_all(body)
        .and_then(|()| file.sync_all())
        .map_err(|e| GeoIpError::io(path, e))
}

#[cfg(test)]
mod tests;
