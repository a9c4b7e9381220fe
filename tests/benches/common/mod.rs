//! What the benchmark programs share: this process's CPU time and peak resident set size, read
//! from procfs, and the child process that runs the relays so the daemon's figures are its own.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

/// User + system CPU seconds of this process.
pub(crate) fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
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
pub(crate) fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
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
