//! The GeoLite2 databases of the Geo and Net checks: opening them, and keeping them fresh
//! (download when missing or older than `max_age_days`, bounded in size, verified as a MaxMind DB
//! and swapped in atomically, so a failed download never damages the file in use). A download
//! comes from MaxMind's own service (a tar.gz behind the account's ID and licence key) or from a
//! URL serving the `.mmdb` itself (a mirror).

use std::io::{Read, Write};
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
    /// MaxMind refused the credentials (401) or the edition to this account (403).
    #[error(
        "download failed: HTTP {0}: MaxMind refused the account ID and licence key (check both, \
         and that the account may download this edition)"
    )]
    Credentials(u16),
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

/// Where [`refresh_from`] downloads a database from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A URL serving the `.mmdb` file itself (a mirror).
    Url(&'a str),
    /// MaxMind's download service.
    MaxMind(MaxMindDownload<'a>),
}

/// One edition from MaxMind's download service: `GET <base_url>/<edition_id>/download?suffix=
/// tar.gz` with HTTP basic authentication (account ID, licence key), answered with (a redirect
/// to) a tar.gz holding `<edition_id>_<date>/<edition_id>.mmdb`, the layout `geoipupdate` reads.
#[derive(Clone, Copy)]
pub struct MaxMindDownload<'a> {
    /// `https://download.maxmind.com/geoip/databases` in production.
    pub base_url: &'a str,
    /// `GeoLite2-City`, `GeoLite2-ASN`, ...
    pub edition_id: &'a str,
    /// The MaxMind account ID.
    pub account_id: &'a str,
    /// The licence key (never logged).
    pub license_key: &'a str,
}

impl MaxMindDownload<'_> {
    /// The edition's download URL (no credentials in it).
    pub fn url(&self) -> String {
        format!(
            "{}/{}/download?suffix=tar.gz",
            self.base_url.trim_end_matches('/'),
            self.edition_id
        )
    }
}

impl std::fmt::Debug for MaxMindDownload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaxMindDownload")
            .field("url", &self.url())
            .field("account_id", &self.account_id)
            .field("license_key", &"<redacted>")
            .finish()
    }
}

impl Source<'_> {
    /// The URL requested (no credentials in it), for logs.
    pub fn url(&self) -> String {
        match self {
            Source::Url(url) => (*url).to_owned(),
            Source::MaxMind(download) => download.url(),
        }
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

/// [`refresh_from`] a URL serving the `.mmdb` itself.
pub async fn refresh(
    path: &Path,
    url: &str,
    max_age_days: Option<u32>,
    max_download_size: usize,
    client: &reqwest::Client,
) -> Result<Refresh, GeoIpError> {
    refresh_from(
        path,
        &Source::Url(url),
        max_age_days,
        max_download_size,
        client,
    )
    .await
}

/// Makes sure `path` holds a usable database: downloads it from `source` when the file is
/// missing, or older than `max_age_days` (`None`: never re-download an existing file). The
/// response must be a 200 of at most `max_download_size` bytes; from MaxMind, the edition's
/// `.mmdb` is taken out of the tar.gz (itself at most `max_download_size` bytes, the whole
/// archive at most twice that once decompressed). The database must open as a MaxMind DB; it is
/// written to a temporary file beside `path`, synced, then renamed over it. On any error the
/// existing file is left untouched. Timeouts are the `client`'s.
pub async fn refresh_from(
    path: &Path,
    source: &Source<'_>,
    max_age_days: Option<u32>,
    max_download_size: usize,
    client: &reqwest::Client,
) -> Result<Refresh, GeoIpError> {
    if is_fresh(path, max_age_days).await {
        return Ok(Refresh::Fresh);
    }
    let request = match source {
        Source::Url(url) => client.get(*url),
        Source::MaxMind(download) => client
            .get(download.url())
            .basic_auth(download.account_id, Some(download.license_key)),
    };
    let response = send_bounded(request, max_download_size)
        .await
        .map_err(|e| GeoIpError::Download(e.to_string()))?;
    match (source, response.status) {
        (_, 200) => {}
        (Source::MaxMind(_), status @ (401 | 403)) => {
            return Err(GeoIpError::Credentials(status));
        }
        (_, status) => return Err(GeoIpError::Status(status)),
    }
    let body = response.body;
    let edition = match source {
        Source::Url(_) => None,
        Source::MaxMind(download) => Some(download.edition_id.to_owned()),
    };
    let target = path.to_owned();
    let bytes = tokio::task::spawn_blocking(move || {
        let database = match edition {
            Some(edition) => extract_mmdb(&body, &edition, max_download_size)?,
            None => body,
        };
        let bytes = database.len();
        install(&target, database).map(|()| bytes)
    })
    .await
    .map_err(|e| GeoIpError::Download(format!("install task failed: {e}")))??;
    tracing::info!(path = %path.display(), bytes, "GeoIP database downloaded");
    Ok(Refresh::Downloaded { bytes })
}

/// The `<edition>.mmdb` file of a MaxMind tar.gz (in a dated directory), at most `max_bytes`;
/// decompression stops at twice that, so a compressed bomb costs bounded work.
pub fn extract_mmdb(
    archive: &[u8],
    edition: &str,
    max_bytes: usize,
) -> Result<Vec<u8>, GeoIpError> {
    let wanted = format!("{edition}.mmdb");
    let invalid = |e: std::io::Error| GeoIpError::Invalid(format!("not a tar.gz archive: {e}"));
    let limit = (max_bytes as u64).saturating_mul(2);
    let decompressed = flate2::read::GzDecoder::new(archive).take(limit);
    let mut tar = tar::Archive::new(decompressed);
    for entry in tar.entries().map_err(invalid)? {
        let entry = entry.map_err(invalid)?;
        let matches = entry.header().entry_type().is_file()
            && entry
                .path()
                .ok()
                .and_then(|path| path.file_name().map(|name| name == wanted.as_str()))
                .unwrap_or(false);
        if !matches {
            continue;
        }
        let size = entry.size();
        if size > max_bytes as u64 {
            return Err(GeoIpError::Download(format!(
                "{wanted} in the archive is too large: {size} bytes (limit {max_bytes})"
            )));
        }
        let mut database = Vec::with_capacity(size as usize);
        entry
            .take(size)
            .read_to_end(&mut database)
            .map_err(invalid)?;
        if database.len() as u64 != size {
            return Err(GeoIpError::Invalid(format!(
                "{wanted} is cut short in the archive ({} of {size} bytes)",
                database.len()
            )));
        }
        return Ok(database);
    }
    Err(GeoIpError::Invalid(format!(
        "the archive holds no {wanted}"
    )))
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
