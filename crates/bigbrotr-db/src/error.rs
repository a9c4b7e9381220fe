//! The database layer's error type.

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The driver reported an error (connection, SQL, decoding).
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// Applying or checking migrations failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A batch larger than `batch.max_size` was passed to a bulk function.
    #[error("batch of {size} rows exceeds batch.max_size {max}")]
    BatchTooLarge {
        /// The rows passed.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// A client-side deadline expired before the database answered.
    #[error("{category} operation timed out after {seconds}s")]
    Timeout {
        /// The timeout category (query, batch, cleanup, refresh).
        category: &'static str,
        /// The deadline that expired.
        seconds: f64,
    },
    /// An identifier that would be interpolated into SQL is not a plain lower-case name.
    #[error("invalid SQL identifier {0:?}: must match ^[a-z_][a-z0-9_]*$")]
    InvalidIdentifier(String),
    /// The database schema is older (or newer) than this binary expects.
    #[error("{0}")]
    Schema(String),
    /// A writer was pointed at a read-only standby (a server in recovery).
    #[error(
        "the database {database:?} at {host}:{port} is a read-only standby (in recovery): \
         this program writes, so it must connect to the primary"
    )]
    Standby {
        /// `pool.database.host`.
        host: String,
        /// `pool.database.port`.
        port: u16,
        /// `pool.database.database`.
        database: String,
    },
    /// The configuration is invalid; the message names the key.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl DbError {
    /// A short, stable class name for error counters (`errors_<class>`), echoing the exception
    /// classes the original counted: `TimeoutError`, `ConnectionError`, `PostgresError`,
    /// `DatabaseError`.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Timeout { .. } | Self::Sqlx(sqlx::Error::PoolTimedOut) => "TimeoutError",
            Self::Sqlx(error) if crate::pool::is_transient(error) => "ConnectionError",
            Self::Sqlx(sqlx::Error::Database(_)) => "PostgresError",
            _ => "DatabaseError",
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = DbError> = std::result::Result<T, E>;
