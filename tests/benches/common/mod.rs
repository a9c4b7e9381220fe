//! What the benchmark programs share: CPU time and peak resident set size of this process or of
//! a daemon it started, read from procfs; the child process that runs the relays so the daemon's
//! figures are its own; the release binaries of the daemons run as processes of their own; and
//! the 1,000,000-event archive of the read side's benchmarks (API, DVM), generated server-side.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use bigbrotr_testkit::TestDb;
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgPool;

/// User + system CPU seconds of this process.
#[allow(dead_code)] // used by some benchmark programs only
pub(crate) fn cpu_seconds() -> f64 {
    cpu_seconds_of("self")
}

/// User + system CPU seconds of process `pid` (`"self"`: this one).
#[allow(dead_code)] // used by some benchmark programs only
pub(crate) fn cpu_seconds_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Peak resident set size in MiB (since the start, or the last [`reset_peak_rss`]).
#[allow(dead_code)] // used by some benchmark programs only
pub(crate) fn peak_rss_mib() -> f64 {
    peak_rss_mib_of("self")
}

/// Peak resident set size (`VmHWM`) of process `pid` in MiB (`"self"`: this one).
#[allow(dead_code)] // used by some benchmark programs only
pub(crate) fn peak_rss_mib_of(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

/// Resets the peak resident set size to the current one.
#[allow(dead_code)] // used by some benchmark programs only
pub(crate) fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// In the child: prints `lines` and `READY` on stdout, then serves until stdin closes.
#[allow(dead_code)] // used by the programs that run relays in a child
pub(crate) async fn announce_and_serve(lines: Vec<String>) {
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}").unwrap();
    }
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    drop(out);
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).unwrap_or(0) > 0 {}
    })
    .await
    .unwrap();
}

/// Starts this program again as the child (with `key=value` in its environment) and returns it
/// with the lines it announced before `READY`, split on whitespace. Closing the child's stdin
/// stops it.
#[allow(dead_code)] // used by the programs that run relays in a child
pub(crate) fn spawn_child(key: &str, value: &str) -> (Child, Vec<Vec<String>>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(std::env::args().skip(1))
        .env(key, value)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        if line == "READY" {
            break;
        }
        lines.push(line.split_whitespace().map(str::to_owned).collect());
    }
    (child, lines)
}

/// A daemon's release binary (`target/release/<name>`, next to this bench's
/// `target/release/deps/<bench>-…`), or the path in `BIGBROTR_<NAME>_BIN`
/// (`bigbrotr-api` → `BIGBROTR_API_BIN`).
#[allow(dead_code)] // used by some benchmark programs only
pub(crate) fn release_binary(name: &str) -> PathBuf {
    let variable = format!("{}_BIN", name.replace('-', "_").to_ascii_uppercase());
    if let Ok(path) = std::env::var(&variable) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --release -p {name}` first (the Makefile's bench \
         targets do)",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1 (free when asked).
#[allow(dead_code)] // used by some benchmark programs only
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A daemon's release binary running as a process of its own, killed when dropped; its
/// directory (configuration files and log) is removed then unless the bench is panicking.
#[allow(dead_code)] // used by some benchmark programs only
pub(crate) struct DaemonProcess {
    child: Child,
    dir: PathBuf,
    name: String,
}

#[allow(dead_code)] // used by some benchmark programs only
impl DaemonProcess {
    /// Starts the release binary `name` (`bigbrotr-api`, …) with `--brotr-config` pointing at
    /// `db` and `--config` holding `config` (YAML is a superset of JSON), `env` added to its
    /// environment, its output in a log file.
    pub(crate) fn start(
        name: &str,
        db: &TestDb,
        config: &serde_json::Value,
        env: &[(&str, String)],
    ) -> Self {
        let dir = std::env::temp_dir().join(format!("{name}-bench-{}", free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let brotr = dir.join("brotr.yaml");
        std::fs::write(&brotr, serde_json::to_string(&db.config()).unwrap()).unwrap();
        let service = dir.join("service.yaml");
        std::fs::write(&service, config.to_string()).unwrap();
        let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
        let mut command = Command::new(release_binary(name));
        command
            .arg("--config")
            .arg(&service)
            .arg("--brotr-config")
            .arg(&brotr)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().unwrap();
        eprintln!("{name} started, configuration and log in {}", dir.display());
        Self {
            child,
            dir,
            name: name.to_owned(),
        }
    }

    /// The process id, as procfs names it.
    pub(crate) fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// What the daemon logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Panics with the daemon's log when it has exited.
    pub(crate) fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited ({status}): {}", self.name, self.log());
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Events in the archive of [`load_archive`].
#[allow(dead_code)] // used by some benchmark programs only
pub(crate) const ARCHIVE_EVENTS: i64 = 1_000_000;

/// Events generated per statement (each chunk on one connection).
const ARCHIVE_CHUNK: i64 = 250_000;

/// 200 relays (170 clearnet, 20 tor, 5 i2p, 5 loki).
const RELAYS_SQL: &str = "
INSERT INTO relay (url, network, discovered_at)
SELECT CASE WHEN r < 170 THEN 'wss://relay' || r || '.example.com'
            WHEN r < 190 THEN 'ws://' || md5(r::text) || 'abcdefghijklmnopqrstuvw.onion'
            WHEN r < 195 THEN 'ws://' || md5(r::text) || '.i2p'
            ELSE 'ws://' || md5(r::text) || '.loki' END,
       CASE WHEN r < 170 THEN 'clearnet' WHEN r < 190 THEN 'tor'
            WHEN r < 195 THEN 'i2p' ELSE 'loki' END,
       1700000000 + r
FROM generate_series(0, 199) r";

/// Events `start ..= end` and their sightings: ids and signatures from md5 (uniformly spread,
/// like real ids; event `i` has the id `md5(i) || md5(-i)`), 20,000 authors with a skewed
/// activity, the kind mix of an archive (35 % notes, reactions, profiles, contacts, relay lists,
/// long-form with a `d` tag, ephemeral, DMs, files), `created_at` over a year from 1700000000, a
/// `p` tag on three events in four, 16–127 characters of content; each event seen on one relay
/// and every other one on a second.
fn events_sql(start: i64, end: i64) -> String {
    format!(
        "CREATE TEMP TABLE g AS
         SELECT i, decode(md5(i::text) || md5((-i)::text), 'hex') AS id,
           decode(md5('a' || ((abs(hashint8(i)) % 20000) * (abs(hashint8(i + 7)) % 20000) / 20000)::text)
                  || md5('pk'), 'hex') AS pubkey,
           (ARRAY[1,1,1,1,1,1,7,7,0,3,10002,30023,30023,20001,4,1000,1063,30000,1,6])
               [1 + abs(hashint8(i * 3)) % 20] AS kind,
           1700000000 + (abs(hashint8(i * 5)) % (365 * 86400))::bigint AS created_at
         FROM generate_series({start}, {end}) i;
         INSERT INTO event (id, pubkey, created_at, kind, tags, tagvalues, content, sig)
         SELECT id, pubkey, created_at, kind, t.tags, tags_to_tagvalues(t.tags),
                left(repeat(md5(i::text || 'c'), 4), 16 + (abs(hashint8(i * 17)) % 112)::int),
                decode(md5(i::text || 's') || md5(i::text || 'i') || md5(i::text || 'g')
                       || md5(i::text || 'n'), 'hex')
         FROM g CROSS JOIN LATERAL (SELECT CASE
             WHEN kind >= 30000 THEN jsonb_build_array(jsonb_build_array('d', 'd' || (i % 7)),
                                                       jsonb_build_array('p', md5(i::text)))
             WHEN i % 4 = 0 THEN '[]'::jsonb
             ELSE jsonb_build_array(jsonb_build_array('p', md5(i::text))) END AS tags) t;
         CREATE TEMP TABLE rl AS SELECT array_agg(url ORDER BY url) AS u FROM relay;
         INSERT INTO event_relay (event_id, relay_url, seen_at)
         SELECT id, rl.u[1 + abs(hashint8(i * 11)) % 200], created_at FROM g, rl;
         INSERT INTO event_relay (event_id, relay_url, seen_at)
         SELECT id, rl.u[1 + abs(hashint8(i * 13)) % 200], created_at + 60
         FROM g, rl WHERE i % 2 = 0 ON CONFLICT DO NOTHING;
         DROP TABLE g; DROP TABLE rl;"
    )
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", &sql[..sql.len().min(200)]));
}

/// Generates the read side's archive in `db` with set-based SQL: 200 relays, [`ARCHIVE_EVENTS`]
/// events and their sightings (see `events_sql`), the capture triggers of migration 0004 off
/// while loading (their delta rows are not what is measured, and reads never touch them), then
/// `VACUUM ANALYZE`. Returns the seconds it took.
#[allow(dead_code)] // used by some benchmark programs only
pub(crate) async fn load_archive(db: &TestDb) -> f64 {
    let pool = db.pool();
    let started = Instant::now();
    exec(
        pool,
        "ALTER TABLE event DISABLE TRIGGER USER; ALTER TABLE event_relay DISABLE TRIGGER USER;
         ALTER TABLE relay DISABLE TRIGGER USER",
    )
    .await;
    exec(pool, RELAYS_SQL).await;
    let mut start = 1;
    while start <= ARCHIVE_EVENTS {
        let end = (start + ARCHIVE_CHUNK - 1).min(ARCHIVE_EVENTS);
        // One connection: the temporary tables live in its session.
        let mut conn = pool.acquire().await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(events_sql(start, end)))
            .execute(&mut *conn)
            .await
            .unwrap();
        start = end + 1;
    }
    exec(
        pool,
        "ALTER TABLE event ENABLE TRIGGER USER; ALTER TABLE event_relay ENABLE TRIGGER USER;
         ALTER TABLE relay ENABLE TRIGGER USER",
    )
    .await;
    exec(pool, "VACUUM ANALYZE").await;
    started.elapsed().as_secs_f64()
}

/// What [`load_archive`] stored.
#[allow(dead_code)] // used by some benchmark programs only
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArchiveSize {
    pub(crate) events: i64,
    pub(crate) sightings: i64,
    /// `event`'s partitions with their indexes, in MiB.
    pub(crate) event_mib: f64,
    /// The whole database, in MiB.
    pub(crate) database_mib: f64,
}

/// Counts and sizes of the archive in `db`; checks it holds [`ARCHIVE_EVENTS`] events.
#[allow(dead_code)] // used by some benchmark programs only
pub(crate) async fn archive_size(db: &TestDb) -> ArchiveSize {
    let (events, sightings): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM event), (SELECT count(*) FROM event_relay)")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(events, ARCHIVE_EVENTS);
    let (event_mib, database_mib): (f64, f64) = sqlx::query_as(
        "SELECT ((SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits
                  WHERE inhparent = 'event'::regclass) / 1048576.0)::float8,
                (pg_database_size(current_database()) / 1048576.0)::float8",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    ArchiveSize {
        events,
        sightings,
        event_mib,
        database_mib,
    }
}
