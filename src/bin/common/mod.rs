//! What the two benchmark binaries (`hashar-bench`, `hashar-sms-bench`) share: a loopback
//! guard for URLs, the latency histogram, a deterministic generator, the server's memory
//! from `/proc`, number formatting. (A directory module: cargo takes `src/bin/*.rs` files
//! as binaries, not `src/bin/common/mod.rs`.)

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use anyhow::{anyhow, bail, Context};
use hdrhistogram::Histogram;

/// How many error bodies to print to stderr.
pub const MAX_PRINTED_ERRORS: u64 = 5;
/// Per-request timeout: a request answered slower than this is an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// splitmix64: a tiny, good-enough deterministic generator (no dependency needed).
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// Latencies in microseconds: 1 µs .. 60 s, 3 significant digits.
pub fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("creating a histogram")
}

/// 127.0.0.1, [::1] or localhost.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip == Ipv4Addr::LOCALHOST,
        Ok(std::net::IpAddr::V6(ip)) => ip == Ipv6Addr::LOCALHOST,
        Err(_) => bare == "localhost",
    }
}

/// Refuses anything but a plain-HTTP loopback `--url`; returns `path` on it.
pub fn loopback_endpoint(raw: &str, path: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(raw).with_context(|| format!("--url {raw:?} is not a URL"))?;
    if url.scheme() != "http" {
        bail!("--url {raw:?}: only http:// is supported");
    }
    if !url.host_str().is_some_and(is_loopback_host) {
        bail!("--url {raw:?}: refusing a non-loopback host; only 127.0.0.1, localhost or [::1] may be benchmarked");
    }
    Ok(format!("{}{path}", raw.trim_end_matches('/')))
}

/// A `kB` field of `/proc/PID/status` (VmRSS, VmHWM).
pub fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .ok_or_else(|| anyhow!("{path} has no {field}"))?;
    let number = line.trim().trim_end_matches("kB").trim();
    number
        .parse()
        .with_context(|| format!("{path}: {field} {line:?}"))
}

/// Microseconds as milliseconds (3 decimals, i.e. exact).
pub fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
