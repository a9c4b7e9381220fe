//! The non-blocking log writer as a process uses it: every line queued before
//! `logging::flush` reaches standard error at exit, and a blocked standard error never blocks the
//! process (lines beyond the queue are dropped, counted and reported at exit). Each test runs
//! this test binary again as a child that logs (`BIGBROTR_LOG_CHILD`), since the writer is
//! process-wide; the child and the test signal each other with files in a temporary directory.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bigbrotr_core::cli::{LogFormat, LogLevel};
use bigbrotr_core::logging;

const CHILD: &str = "BIGBROTR_LOG_CHILD";
const DIR: &str = "BIGBROTR_LOG_CHILD_DIR";

/// Waits for `path` to exist, at most `within`.
fn await_file(path: &Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while !path.exists() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// In the child: logs `lines` lines; with a directory, writes how long that took to
/// `emitted` and waits for `draining` before it flushes; then exits.
fn child(lines: usize) {
    logging::init(LogLevel::Info, LogFormat::Kv, "logtest");
    let started = Instant::now();
    for n in 0..lines {
        tracing::info!(target: "bigbrotr_logtest", n, padding = "x".repeat(64), "line");
    }
    if let Ok(dir) = std::env::var(DIR) {
        let dir = PathBuf::from(dir);
        let took = started.elapsed().as_millis().to_string();
        std::fs::write(dir.join("emitted"), took).unwrap();
        assert!(await_file(&dir.join("draining"), Duration::from_secs(60)));
        // Let the writer catch up with the queue before the report is queued.
        std::thread::sleep(Duration::from_millis(300));
    }
    logging::flush();
    // Out at once, as a daemon's `main` returns: nothing written later would be seen.
    std::process::exit(0);
}

/// Starts this test again as the child, with `mode` (and `dir`) in its environment.
fn spawn(test: &str, mode: &str, dir: Option<&Path>) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([test, "--exact", "--test-threads=1"])
        .env(CHILD, mode)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(dir) = dir {
        command.env(DIR, dir);
    }
    command.spawn().unwrap()
}

fn count(stderr: &str, needle: &str) -> usize {
    stderr.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn every_queued_line_is_written_at_exit() {
    if std::env::var(CHILD).as_deref() == Ok("flush") {
        child(5_000);
        return;
    }
    let child = spawn("every_queued_line_is_written_at_exit", "flush", None);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    // Fewer lines than the queue holds: none is dropped, and every one is written out before the
    // process ends, although the writer thread is still busy when the last is queued.
    assert_eq!(
        count(&stderr, "info logtest line n="),
        5_000,
        "{stderr:.2000}"
    );
    assert_eq!(count(&stderr, "log_lines_dropped"), 0);
    let last = stderr.lines().rfind(|l| l.contains("line n=")).unwrap();
    assert!(last.starts_with("info logtest line n=4999 "), "{last}");
}

#[test]
fn a_blocked_stderr_drops_lines_instead_of_blocking_and_counts_them() {
    const LINES: usize = 100_000;
    if std::env::var(CHILD).as_deref() == Ok("blocked") {
        child(LINES);
        return;
    }
    let dir = std::env::temp_dir().join(format!("bigbrotr-log-writer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = spawn(
        "a_blocked_stderr_drops_lines_instead_of_blocking_and_counts_them",
        "blocked",
        Some(&dir),
    );
    // Standard error is not read until the child has logged everything: its pipe fills after
    // about 64 KiB, and a blocking writer would stop the child there (10 MB of lines).
    let emitted = dir.join("emitted");
    if !await_file(&emitted, Duration::from_secs(60)) {
        let _ = child.kill();
        panic!("the child blocked on its full standard error");
    }
    let took_ms: u64 = std::fs::read_to_string(&emitted).unwrap().parse().unwrap();
    std::fs::write(dir.join("draining"), "").unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(took_ms < 30_000, "logging {LINES} lines took {took_ms} ms");
    let written = count(&stderr, "info logtest line n=");
    let report = stderr
        .lines()
        .find(|l| l.starts_with("warning cli log_lines_dropped count="))
        .unwrap_or_else(|| panic!("no report; {written} lines written"));
    let dropped: usize = report.rsplit('=').next().unwrap().parse().unwrap();
    assert!(dropped > 0, "{written} written, {dropped} dropped");
    // Every line was either written or dropped, and the queue was full while stderr was blocked.
    assert_eq!(written + dropped, LINES, "{written} + {dropped}");
    assert!(written >= logging::QUEUED_LINES, "{written} written");
}
