//! Merging per-thread results and printing them (table, JSON, CSV, HDR logs).

use crate::engine::ThreadResult;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

pub const PERCENTILES: [(&str, f64); 5] = [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9), ("p99.99", 99.99)];

#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub checked: u64,
    pub mismatches: u64,
    pub examples: Vec<String>,
}

/// The merged outcome of one run against one server.
pub struct RunResult {
    pub target: String,
    pub stat_names: Vec<String>,
    pub hists: Vec<Histogram<u64>>,
    pub total: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
    pub duration_secs: f64,
    /// Per second, per command.
    pub intervals: Vec<Vec<Histogram<u64>>>,
    pub verify: Option<VerifyReport>,
    pub preload: Option<(f64, u64)>,
    pub wall_start: SystemTime,
}

impl RunResult {
    pub fn merge(
        target: String,
        stat_names: Vec<String>,
        results: Vec<ThreadResult>,
        duration_ns: Option<u64>,
        verify: bool,
        preload: bool,
        wall_start: SystemTime,
    ) -> RunResult {
        let mut hists: Vec<Histogram<u64>> = stat_names.iter().map(|_| Histogram::new(3).expect("histogram")).collect();
        let mut total = Histogram::new(3).expect("histogram");
        let mut errors = BTreeMap::new();
        let mut intervals: Vec<Vec<Histogram<u64>>> = Vec::new();
        let mut v = VerifyReport::default();
        let mut measure_start = u64::MAX;
        let mut last_reply = 0u64;
        let mut preload_ns = 0u64;
        let mut preload_errors = 0u64;
        for r in results {
            for (i, h) in r.hists.iter().enumerate() {
                let _ = hists[i].add(h);
                let _ = total.add(h);
            }
            for (k, n) in r.errors {
                *errors.entry(k).or_insert(0) += n;
            }
            for (s, per) in r.intervals.into_iter().enumerate() {
                while intervals.len() <= s {
                    intervals.push(stat_names.iter().map(|_| Histogram::new(3).expect("histogram")).collect());
                }
                for (i, h) in per.iter().enumerate() {
                    let _ = intervals[s][i].add(h);
                }
            }
            v.checked += r.verify_checked;
            v.mismatches += r.verify_mismatches;
            for e in r.verify_examples {
                if v.examples.len() < 5 {
                    v.examples.push(e);
                }
            }
            measure_start = measure_start.min(r.measure_start_ns);
            last_reply = last_reply.max(r.last_reply_ns);
            preload_ns = preload_ns.max(r.preload_ns);
            preload_errors += r.preload_errors;
        }
        let dur_ns = match duration_ns {
            Some(d) => d,
            None => last_reply.saturating_sub(measure_start),
        };
        RunResult {
            target,
            stat_names,
            hists,
            total,
            errors,
            duration_secs: dur_ns as f64 / 1e9,
            intervals,
            verify: if verify { Some(v) } else { None },
            preload: if preload { Some((preload_ns as f64 / 1e9, preload_errors)) } else { None },
            wall_start,
        }
    }

    /// Combine rounds of the same server (used for the --compare summary).
    pub fn combine(mut runs: Vec<RunResult>) -> RunResult {
        let mut acc = runs.remove(0);
        for r in runs {
            for (i, h) in r.hists.iter().enumerate() {
                let _ = acc.hists[i].add(h);
            }
            let _ = acc.total.add(&r.total);
            for (k, n) in r.errors {
                *acc.errors.entry(k).or_insert(0) += n;
            }
            acc.duration_secs += r.duration_secs;
            if let (Some(a), Some(b)) = (acc.verify.as_mut(), r.verify) {
                a.checked += b.checked;
                a.mismatches += b.mismatches;
                for e in b.examples {
                    if a.examples.len() < 5 {
                        a.examples.push(e);
                    }
                }
            }
        }
        acc
    }

    pub fn requests(&self) -> u64 {
        self.total.len()
    }

    pub fn throughput(&self) -> f64 {
        rate(self.total.len(), self.duration_secs)
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// errors / requests (1.0 when there were errors but no replies at all).
    pub fn error_rate(&self) -> f64 {
        let e = self.error_count();
        let r = self.requests();
        if r == 0 {
            if e > 0 {
                1.0
            } else {
                0.0
            }
        } else {
            e as f64 / r as f64
        }
    }
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

pub fn pct(h: &Histogram<u64>, p: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_percentile(p) as f64
    }
}

pub fn latency_json(h: &Histogram<u64>) -> Value {
    let mut m = Map::new();
    for (name, p) in PERCENTILES {
        m.insert(name.into(), json!(pct(h, p)));
    }
    m.insert("max".into(), json!(if h.is_empty() { 0.0 } else { h.max() as f64 }));
    m.insert("min".into(), json!(if h.is_empty() { 0.0 } else { h.min() as f64 }));
    m.insert("mean".into(), json!(if h.is_empty() { 0.0 } else { round3(h.mean()) }));
    Value::Object(m)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The result part of the JSON document (everything but "config" and "compare").
pub fn result_json(r: &RunResult) -> Map<String, Value> {
    let mut doc = Map::new();
    doc.insert("target".into(), json!(r.target));
    doc.insert("throughput_ops_per_sec".into(), json!(round3(r.throughput())));
    doc.insert("requests".into(), json!(r.requests()));
    doc.insert("duration_secs".into(), json!(round3(r.duration_secs)));
    doc.insert("latency_us".into(), latency_json(&r.total));
    let mut per = Map::new();
    for (i, name) in r.stat_names.iter().enumerate() {
        let h = &r.hists[i];
        per.insert(
            name.clone(),
            json!({
                "throughput_ops_per_sec": round3(rate(h.len(), r.duration_secs)),
                "requests": h.len(),
                "latency_us": latency_json(h),
            }),
        );
    }
    doc.insert("per_command".into(), Value::Object(per));
    let errors: Map<String, Value> = r.errors.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    doc.insert("errors".into(), Value::Object(errors));
    doc.insert("error_rate".into(), json!(r.error_rate()));
    if let Some(v) = &r.verify {
        doc.insert(
            "verify".into(),
            json!({"checked": v.checked, "mismatches": v.mismatches, "examples": v.examples}),
        );
    }
    if let Some((secs, errs)) = r.preload {
        doc.insert("preload".into(), json!({"duration_secs": round3(secs), "errors": errs}));
    }
    doc
}

fn fmt_us(v: f64) -> String {
    format!("{:.0}", v)
}

pub fn print_table(r: &RunResult, header: &str) {
    println!("{header}");
    println!(
        "duration {:.2} s, {} requests, {:.1} ops/s, {} errors",
        r.duration_secs,
        r.requests(),
        r.throughput(),
        r.error_count()
    );
    if let Some((secs, errs)) = r.preload {
        println!("preload: {:.2} s, {} errors", secs, errs);
    }
    println!();
    println!(
        "{:<12} {:>12} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "command", "ops/s", "requests", "p50", "p90", "p99", "p99.9", "p99.99", "max"
    );
    let row = |name: &str, h: &Histogram<u64>| {
        println!(
            "{:<12} {:>12.1} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            name,
            rate(h.len(), r.duration_secs),
            h.len(),
            fmt_us(pct(h, 50.0)),
            fmt_us(pct(h, 90.0)),
            fmt_us(pct(h, 99.0)),
            fmt_us(pct(h, 99.9)),
            fmt_us(pct(h, 99.99)),
            fmt_us(if h.is_empty() { 0.0 } else { h.max() as f64 }),
        )
    };
    for (i, name) in r.stat_names.iter().enumerate() {
        row(name, &r.hists[i]);
    }
    row("TOTAL", &r.total);
    println!("(latencies in microseconds)");
    if !r.errors.is_empty() {
        println!();
        println!("errors:");
        for (k, n) in &r.errors {
            println!("  {k:<20} {n}");
        }
    }
    if let Some(v) = &r.verify {
        println!();
        println!("verify: {} GETs checked, {} mismatches", v.checked, v.mismatches);
        for e in &v.examples {
            println!("  {e}");
        }
    }
}

pub const CSV_HEADER: &str = "target,command,throughput_ops_per_sec,requests,p50_us,p90_us,p99_us,p99.9_us,p99.99_us,max_us";

pub fn csv_rows(r: &RunResult, label: &str) -> Vec<String> {
    let row = |name: &str, h: &Histogram<u64>| {
        format!(
            "{},{},{:.3},{},{},{},{},{},{},{}",
            label,
            name,
            rate(h.len(), r.duration_secs),
            h.len(),
            pct(h, 50.0),
            pct(h, 90.0),
            pct(h, 99.0),
            pct(h, 99.9),
            pct(h, 99.99),
            if h.is_empty() { 0 } else { h.max() }
        )
    };
    let mut out: Vec<String> = r.stat_names.iter().enumerate().map(|(i, n)| row(n, &r.hists[i])).collect();
    out.push(row("TOTAL", &r.total));
    for (k, n) in &r.errors {
        out.push(format!("{label},error:{k},,{n},,,,,,"));
    }
    out
}

/// Write one HdrHistogram interval log per command (and TOTAL):
/// `<prefix><NAME>.hlog`, one interval histogram per second, values in microseconds.
pub fn write_hdr_logs(r: &RunResult, prefix: &str) -> Result<Vec<String>, String> {
    let mut written = Vec::new();
    let mut names: Vec<String> = r.stat_names.clone();
    names.push("TOTAL".into());
    for (idx, name) in names.iter().enumerate() {
        let safe: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        let path = format!("{prefix}{safe}.hlog");
        let mut buf: Vec<u8> = Vec::new();
        let mut ser = V2DeflateSerializer::new();
        {
            let mut w = IntervalLogWriterBuilder::new()
                .add_comment("[Histogram log format version 1.3]")
                .add_comment(&format!("[tessera-loadgen {} latency, values in microseconds]", name))
                .with_start_time(r.wall_start)
                .with_base_time(r.wall_start)
                .with_max_value_divisor(1000.0)
                .begin_log_with(&mut buf, &mut ser)
                .map_err(|e| format!("{path}: {e}"))?;
            let tag = Tag::new(&safe);
            for (sec, per) in r.intervals.iter().enumerate() {
                let h = if idx < r.stat_names.len() {
                    per[idx].clone()
                } else {
                    let mut t = Histogram::new(3).expect("histogram");
                    for h in per {
                        let _ = t.add(h);
                    }
                    t
                };
                w.write_histogram(&h, Duration::from_secs(sec as u64), Duration::from_secs(1), tag)
                    .map_err(|e| format!("{path}: {e}"))?;
            }
        }
        std::fs::write(&path, &buf).map_err(|e| format!("{path}: {e}"))?;
        written.push(path);
    }
    Ok(written)
}

/// Median of a non-empty slice.
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = s.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
