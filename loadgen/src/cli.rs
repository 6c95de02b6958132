//! Command line options and the small parsers behind them.

use clap::Parser;
use serde::Serialize;

fn mask_password<S: serde::Serializer>(p: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(_) => s.serialize_str("********"),
        None => s.serialize_none(),
    }
}

/// Load generator for RESP (Redis protocol) servers.
#[derive(Parser, Debug, Clone, Serialize)]
#[command(name = "tessera-loadgen", version, about, long_about = None)]
pub struct Args {
    /// Server host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Server port.
    #[arg(short = 'p', long, default_value_t = 6379)]
    pub port: u16,
    /// Password for AUTH (or HELLO ... AUTH with --resp 3).
    #[arg(short = 'a', long)]
    #[serde(serialize_with = "mask_password")]
    pub password: Option<String>,
    /// ACL user name for AUTH (default user if omitted).
    #[arg(long)]
    pub user: Option<String>,
    /// Protocol version: 2, or 3 (sends HELLO 3 on connect).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub resp: u8,
    /// Database number to SELECT on connect.
    #[arg(long)]
    pub db: Option<u32>,

    /// Number of load threads; each runs its own epoll event loop.
    #[arg(short = 't', long, default_value_t = 1)]
    pub threads: usize,
    /// Connections per thread.
    #[arg(short = 'c', long, default_value_t = 50)]
    pub connections: usize,
    /// Pipeline depth: requests in flight per connection.
    #[arg(short = 'P', long, default_value_t = 1)]
    pub pipeline: usize,
    /// Pin threads to these CPUs, e.g. "0,1" or "2-5" (thread i -> i-th CPU, round robin).
    #[arg(long)]
    pub cpus: Option<String>,

    /// SET:GET weights for the default workload.
    #[arg(long, default_value = "1:10")]
    pub ratio: String,
    /// Key space size: keys are PREFIX0 .. PREFIX(N-1).
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    /// Key name prefix.
    #[arg(long, default_value = "key:")]
    pub key_prefix: String,
    /// Key distribution: uniform | sequential | gaussian | zipf:THETA.
    #[arg(long, default_value = "uniform")]
    pub distribution: String,
    /// Value size in bytes.
    #[arg(short = 'd', long, default_value_t = 3)]
    pub data_size: usize,
    /// Uniformly random value size in MIN-MAX (inclusive); overrides --data-size.
    #[arg(long)]
    pub data_size_range: Option<String>,
    /// Weighted value sizes SIZE:WEIGHT,... ; overrides --data-size and --data-size-range.
    #[arg(long)]
    pub data_size_list: Option<String>,
    /// Command template, repeatable, replaces the SET/GET workload. Placeholders
    /// __key__ and __data__; optional "WEIGHT:" prefix, e.g. "3:HSET h:__key__ f __data__".
    #[arg(long = "command", value_name = "TEMPLATE")]
    pub commands: Vec<String>,
    /// Weight of the i-th --command (repeatable, in the same order).
    #[arg(long = "command-weight", value_name = "WEIGHT")]
    pub command_weights: Vec<u32>,
    /// Fill the whole key space with SETs before the measured run.
    #[arg(long)]
    pub preload: bool,

    /// Total number of measured requests over all connections.
    #[arg(short = 'n', long, conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Run time: 10, 10s, 500ms, 2m, 1h (default 10s unless --requests).
    #[arg(long)]
    pub duration: Option<String>,
    /// Warm-up time before measuring (same syntax as --duration).
    #[arg(long, default_value = "0")]
    pub warmup: String,
    /// Open loop: total request rate (ops/s) spread over all connections;
    /// latency is measured from each request's intended send time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long to wait for outstanding replies once the run is over.
    #[arg(long, default_value = "5s")]
    pub drain_timeout: String,
    /// Drop (and reconnect) a connection that has waited this long for a reply.
    #[arg(long, default_value = "10s")]
    pub timeout: String,
    /// Random seed (default: derived from the clock).
    #[arg(long)]
    pub seed: Option<u64>,

    /// Exit non-zero (3) if errors/requests exceeds this fraction.
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// Print one JSON document on stdout.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV on stdout.
    #[arg(long)]
    pub csv: bool,
    /// Write HdrHistogram interval logs PREFIX<COMMAND>.hlog (one per command, plus TOTAL).
    #[arg(long, value_name = "PREFIX")]
    pub hdr_out: Option<String>,
    /// Never print the per-second progress line (it is only shown on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,

    /// Also run the workload against HOST:PORT, alternating rounds A B A B ...
    #[arg(long, value_name = "HOST:PORT")]
    pub compare: Option<String>,
    /// Number of rounds per server with --compare.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,

    /// Correctness mode: check every GET against the last acknowledged SET.
    #[arg(long)]
    pub verify: bool,

    /// Event loop of the load threads: io_uring (falls back to epoll if the kernel refuses it) or epoll.
    #[arg(long, value_enum, default_value_t = Engine::IoUring)]
    pub engine: Engine,
}

/// I/O engine of the load threads.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Engine {
    /// Completion-based: one io_uring per thread.
    #[value(name = "io_uring")]
    #[serde(rename = "io_uring")]
    IoUring,
    /// Readiness-based: epoll over non-blocking sockets.
    #[value(name = "epoll")]
    #[serde(rename = "epoll")]
    Epoll,
}

/// Parse "10", "10s", "1.5s", "500ms", "250us", "2m", "1h" into nanoseconds.
pub fn parse_duration_ns(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("bad duration {s:?} (examples: 10, 10s, 500ms, 2m)"));
    }
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let mult = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1e9,
        "ms" => 1e6,
        "us" => 1e3,
        "m" | "min" | "mins" => 60e9,
        "h" => 3600e9,
        u => return Err(format!("bad duration unit {u:?} in {s:?} (use s, ms, m or h)")),
    };
    let ns = v * mult;
    if !ns.is_finite() || ns > 1e18 {
        return Err(format!("duration {s:?} too large"));
    }
    Ok(ns.round() as u64)
}

/// Parse "S:G" weights.
pub fn parse_ratio(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s.split_once(':').ok_or_else(|| format!("bad --ratio {s:?}, expected SET:GET like 1:10"))?;
    let a: u32 = a.trim().parse().map_err(|_| format!("bad --ratio {s:?}"))?;
    let b: u32 = b.trim().parse().map_err(|_| format!("bad --ratio {s:?}"))?;
    if a == 0 && b == 0 {
        return Err("--ratio 0:0 leaves nothing to send".into());
    }
    Ok((a, b))
}

/// Parse "MIN-MAX".
pub fn parse_size_range(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s.split_once('-').ok_or_else(|| format!("bad --data-size-range {s:?}, expected MIN-MAX"))?;
    let a: usize = a.trim().parse().map_err(|_| format!("bad --data-size-range {s:?}"))?;
    let b: usize = b.trim().parse().map_err(|_| format!("bad --data-size-range {s:?}"))?;
    if a > b {
        return Err(format!("--data-size-range {s:?}: MIN > MAX"));
    }
    Ok((a, b))
}

/// Parse "SIZE:WEIGHT,SIZE:WEIGHT,...".
pub fn parse_size_list(s: &str) -> Result<Vec<(usize, u32)>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let (sz, w) = item
            .split_once(':')
            .ok_or_else(|| format!("bad --data-size-list item {item:?}, expected SIZE:WEIGHT"))?;
        let sz: usize = sz.trim().parse().map_err(|_| format!("bad size in {item:?}"))?;
        let w: u32 = w.trim().parse().map_err(|_| format!("bad weight in {item:?}"))?;
        out.push((sz, w));
    }
    if out.is_empty() {
        return Err(format!("empty --data-size-list {s:?}"));
    }
    if out.iter().all(|&(_, w)| w == 0) {
        return Err("--data-size-list weights are all zero".into());
    }
    Ok(out)
}

/// Parse "0,1,4-7".
pub fn parse_cpus(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        if let Some((a, b)) = item.split_once('-') {
            let a: usize = a.trim().parse().map_err(|_| format!("bad --cpus item {item:?}"))?;
            let b: usize = b.trim().parse().map_err(|_| format!("bad --cpus item {item:?}"))?;
            if a > b || b >= 1024 {
                return Err(format!("bad --cpus range {item:?}"));
            }
            out.extend(a..=b);
        } else {
            let c: usize = item.parse().map_err(|_| format!("bad --cpus item {item:?}"))?;
            if c >= 1024 {
                return Err(format!("bad --cpus item {item:?}"));
            }
            out.push(c);
        }
    }
    if out.is_empty() {
        return Err("empty --cpus".into());
    }
    Ok(out)
}

/// Split "host:port" (also "[v6]:port").
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (h, p) = s.rsplit_once(':').ok_or_else(|| format!("bad --compare {s:?}, expected HOST:PORT"))?;
    let p: u16 = p.parse().map_err(|_| format!("bad port in {s:?}"))?;
    let h = h.trim_start_matches('[').trim_end_matches(']');
    Ok((if h.is_empty() { "127.0.0.1".to_string() } else { h.to_string() }, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("10").unwrap(), 10_000_000_000);
        assert_eq!(parse_duration_ns("10s").unwrap(), 10_000_000_000);
        assert_eq!(parse_duration_ns(" 2m ").unwrap(), 120_000_000_000);
        assert_eq!(parse_duration_ns("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(parse_duration_ns("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration_ns("250us").unwrap(), 250_000);
        assert_eq!(parse_duration_ns("1h").unwrap(), 3_600_000_000_000);
        assert_eq!(parse_duration_ns("0").unwrap(), 0);
        for bad in ["", "s", "10x", "-1", "1e999", "ten", "1.2.3s"] {
            assert!(parse_duration_ns(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn ratios() {
        assert_eq!(parse_ratio("1:10").unwrap(), (1, 10));
        assert_eq!(parse_ratio("0:1").unwrap(), (0, 1));
        assert_eq!(parse_ratio(" 3 : 2 ").unwrap(), (3, 2));
        for bad in ["0:0", "1", "a:b", "1:-1", "1:2:3", ""] {
            assert!(parse_ratio(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn size_lists() {
        assert_eq!(parse_size_list("32:10,1024:1").unwrap(), vec![(32, 10), (1024, 1)]);
        assert_eq!(parse_size_list("3:1").unwrap(), vec![(3, 1)]);
        assert_eq!(parse_size_list("1:0, 2:5,").unwrap(), vec![(1, 0), (2, 5)]);
        for bad in ["", "32", "32:", "a:1", "1:0", "1:-2", "1:2:3"] {
            assert!(parse_size_list(bad).is_err(), "{bad:?} should fail");
        }
        assert_eq!(parse_size_range("1-10").unwrap(), (1, 10));
        assert!(parse_size_range("10-1").is_err());
        assert!(parse_size_range("10").is_err());
    }

    #[test]
    fn cpus_and_hosts() {
        assert_eq!(parse_cpus("0,1").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpus("2-4,7").unwrap(), vec![2, 3, 4, 7]);
        assert!(parse_cpus("x").is_err());
        assert!(parse_cpus("3-1").is_err());
        assert_eq!(parse_host_port("localhost:7000").unwrap(), ("localhost".into(), 7000));
        assert_eq!(parse_host_port("[::1]:7000").unwrap(), ("::1".into(), 7000));
        assert!(parse_host_port("nohost").is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
