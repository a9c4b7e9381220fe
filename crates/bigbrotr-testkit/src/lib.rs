//! Test support (dev-only): a private PostgreSQL database per test, cloned from a migrated
//! template, dropped when the test passes and kept (with its name printed) when it fails.
//!
//! `socks` provides an observable SOCKS5 proxy that stands in for Tor, I2P and Lokinet.
//!
//! The server comes from `BIGBROTR_TEST_DATABASE_URL` (set by `make test`, which starts a
//! throwaway cluster with `tests/pg-cluster.sh`); a developer may point it at any server where
//! the user may create databases and roles.

pub mod dns;
pub mod front;
pub mod mmdb;
pub mod relays;
pub mod socks;
pub mod tcp;

use std::str::FromStr;

use bigbrotr_db::Brotr;
use bigbrotr_db::config::BrotrConfig;
use bigbrotr_db::migrate::{self, Variant};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};

/// The environment variable naming the test server.
pub const DATABASE_URL_ENV: &str = "BIGBROTR_TEST_DATABASE_URL";

/// Serialises template creation across test processes.
const TEMPLATE_LOCK_KEY: i64 = 0x0074_6573_746b_6974;

/// A throwaway database with the full schema.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    options: PgConnectOptions,
    pool: PgPool,
}

/// The server's connection options (pointing at its maintenance database).
pub fn server_options() -> PgConnectOptions {
    let url = std::env::var(DATABASE_URL_ENV).unwrap_or_else(|_| {
        panic!("{DATABASE_URL_ENV} is not set: run `make test`, or point it at a PostgreSQL server")
    });
    PgConnectOptions::from_str(&url)
        .unwrap_or_else(|e| panic!("{DATABASE_URL_ENV} is not a valid URL: {e}"))
        .disable_statement_logging()
}

impl TestDb {
    /// A fresh BigBrotr database.
    pub async fn new() -> Self {
        Self::with_variant(Variant::BigBrotr).await
    }

    /// A fresh database of the given variant.
    pub async fn with_variant(variant: Variant) -> Self {
        let server = server_options();
        let template = ensure_template(&server, variant).await;
        let name = format!("bigbrotr_test_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect_with(&server)
            .await
            .expect("connect to the test server");
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE {template}"
        )))
        .execute(&mut admin)
        .await
        .expect("clone the template database");
        admin.close().await.ok();
        let options = server.clone().database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect_with(options.clone())
            .await
            .expect("connect to the test database");
        Self {
            name,
            options,
            pool,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A pool of at most five connections to it (as the superuser).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Connection options for it (as the superuser).
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// A facade over the pool with the default configuration.
    pub fn brotr(&self) -> Brotr {
        Brotr::from_pool(self.pool.clone(), BrotrConfig::default())
    }

    /// A facade over the pool with `config`.
    pub fn brotr_with(&self, config: BrotrConfig) -> Brotr {
        Brotr::from_pool(self.pool.clone(), config)
    }

    /// Where the server listens, for a [`tcp::TcpProxy`] in front of it.
    pub fn proxy_target(&self) -> tcp::ProxyTarget {
        match self.options.get_socket() {
            Some(dir) => {
                tcp::ProxyTarget::Unix(dir.join(format!(".s.PGSQL.{}", self.options.get_port())))
            }
            None => {
                let host = self.options.get_host();
                let addr = format!("{host}:{}", self.options.get_port())
                    .parse()
                    .expect("the test server is reached by IP address or Unix socket");
                tcp::ProxyTarget::Tcp(addr)
            }
        }
    }

    /// Connection options for this database through a proxy at `address`.
    pub fn options_via(&self, address: std::net::SocketAddr) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host(&address.ip().to_string())
            .port(address.port())
            .username(self.options.get_username())
            .database(&self.name)
            .disable_statement_logging()
    }

    /// A `brotr.yaml`-style configuration pointing at this database as the superuser (for code
    /// that connects by itself, like the daemons). Its password environment variable is
    /// empty: no password (the cluster trusts local users).
    pub fn config(&self) -> BrotrConfig {
        let mut config = BrotrConfig::default();
        let db = &mut config.pool.database;
        db.host = match self.options.get_socket() {
            Some(socket_dir) => socket_dir.display().to_string(),
            None => self.options.get_host().to_owned(),
        };
        db.port = self.options.get_port();
        db.database = self.name.clone();
        db.user = self.options.get_username().to_owned();
        db.password_env = String::new();
        config
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: keeping database {} for inspection", self.name);
            return;
        }
        let name = self.name.clone();
        let server = server_options();
        // Drop cannot await: drop the database from a helper thread with its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut admin = PgConnection::connect_with(&server).await?;
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// Creates the migrated template database for `variant` once per schema fingerprint; concurrent
/// test processes wait on an advisory lock.
async fn ensure_template(server: &PgConnectOptions, variant: Variant) -> String {
    let template = format!(
        "bigbrotr_tpl_{}_{}",
        variant.as_str(),
        migrate::schema_fingerprint()
    );
    let mut admin = PgConnection::connect_with(server)
        .await
        .expect("connect to the test server");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK_KEY)
        .execute(&mut admin)
        .await
        .expect("lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await
            .expect("look up the template");
    if !exists {
        let building = format!("{template}_building");
        for statement in [
            format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
            format!("CREATE DATABASE {building}"),
        ] {
            sqlx::raw_sql(AssertSqlSafe(statement))
                .execute(&mut admin)
                .await
                .expect("prepare the template database");
        }
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(server.clone().database(&building))
            .await
            .expect("connect to the template database");
        migrate::migrate(&pool, Some(variant), &[])
            .await
            .expect("migrate the template database");
        pool.close().await;
        for statement in [
            format!("ALTER DATABASE {building} RENAME TO {template}"),
            format!("ALTER DATABASE {template} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"),
        ] {
            sqlx::raw_sql(AssertSqlSafe(statement))
                .execute(&mut admin)
                .await
                .expect("finish the template database");
        }
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(TEMPLATE_LOCK_KEY)
        .execute(&mut admin)
        .await
        .expect("unlock");
    admin.close().await.ok();
    template
}
