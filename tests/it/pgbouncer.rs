//! The facade behind PgBouncer in transaction mode (the deployments' topology): many client
//! connections multiplexed over two server connections. Server-side prepared statements break
//! there (a control query proves the setup would catch it); the facade's unnamed statements in
//! explicit transactions must not.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bigbrotr_db::Brotr;
use bigbrotr_db::config::BrotrConfig;
use bigbrotr_models::service_state::{ServiceName, ServiceState, ServiceStateType};
use bigbrotr_testkit::TestDb;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::fixtures::relay;

/// The environment variable naming the PgBouncer binary (`make test` provides one).
const PGBOUNCER_ENV: &str = "BIGBROTR_TEST_PGBOUNCER";

struct Bouncer {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

async fn start_bouncer(db: &TestDb) -> Bouncer {
    let binary = std::env::var(PGBOUNCER_ENV).unwrap_or_else(|_| {
        panic!("{PGBOUNCER_ENV} is not set: run `make test` (it provides PgBouncer)")
    });
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("bigbrotr-pgbouncer-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = db
        .options()
        .get_socket()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| db.options().get_host().to_owned());
    let ini = format!(
        "[databases]\n\
         bigbrotr = host={socket} port={pg_port} dbname={name} user=postgres\n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {dir}/userlist.txt\n\
         pool_mode = transaction\n\
         default_pool_size = 2\n\
         max_client_conn = 100\n\
         ignore_startup_parameters = extra_float_digits,statement_timeout\n\
         logfile = {dir}/pgbouncer.log\n",
        pg_port = db.options().get_port(),
        name = db.name(),
        dir = dir.display(),
    );
    std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
    std::fs::write(dir.join("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
    let ini_path = dir.join("pgbouncer.ini").display().to_string();
    // PgBouncer refuses to run as root.
    let mut command = if is_root() {
        Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(&dir)
            .status()
            .unwrap();
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &binary, &ini_path]);
        c
    } else {
        let mut c = Command::new(&binary);
        c.arg(&ini_path);
        c
    };
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pgbouncer");
    // From here on, Drop stops and reaps the process whatever happens.
    let bouncer = Bouncer { child, dir, port };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return bouncer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(bouncer.dir.join("pgbouncer.log")).unwrap_or_default();
    drop(bouncer);
    panic!("pgbouncer did not start: {log}");
}

fn through(bouncer: &Bouncer) -> PgConnectOptions {
    PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(bouncer.port)
        .database("bigbrotr")
        .username("postgres")
}

#[tokio::test]
async fn the_facade_works_through_pgbouncer_in_transaction_mode() {
    let db = TestDb::new().await;
    let bouncer = start_bouncer(&db).await;

    // Control: the driver's default (named, cached prepared statements) fails here, so this
    // setup does detect statement leakage across server connections.
    let naive = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(through(&bouncer))
        .await
        .unwrap();
    let attempts = (0..200).map(|i| {
        let naive = naive.clone();
        async move {
            sqlx::query_scalar::<_, i32>("SELECT $1::int")
                .bind(i)
                .fetch_one(&naive)
                .await
        }
    });
    let naive_errors = futures_join(attempts)
        .await
        .iter()
        .filter(|r| r.is_err())
        .count();
    naive.close().await;
    assert!(
        naive_errors > 0,
        "named statements should collide behind PgBouncer"
    );

    // The facade: every call through PgBouncer succeeds.
    let mut config = BrotrConfig::default();
    config.pool.limits.max_size = 8;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(through(&bouncer))
        .await
        .unwrap();
    let brotr = Brotr::from_pool(pool, config);
    let calls = (0..200).map(|i| {
        let brotr = brotr.clone();
        async move {
            let url = format!("wss://r{}.example.com", i % 50);
            brotr.insert_relays(&[relay(&url, i)]).await?;
            brotr
                .upsert_service_state(&[ServiceState::new(
                    ServiceName::Finder,
                    ServiceStateType::Cursor,
                    url.as_str(),
                    json!({ "timestamp": i }),
                )
                .unwrap()])
                .await?;
            brotr
                .get_service_state(ServiceName::Finder, ServiceStateType::Cursor, Some(&url))
                .await?;
            brotr.relay_count().await
        }
    });
    let results = futures_join(calls).await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert_eq!(brotr.relay_count().await.unwrap(), 50);
}

/// Runs futures concurrently on the current task and collects their outputs in order.
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}
