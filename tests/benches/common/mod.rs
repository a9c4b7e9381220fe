//! What the benchmark programs share: this process's CPU time and peak resident set size, read
//! from procfs.

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
