//! tessera-loadgen: a memtier-style load generator for RESP servers.
//!
//! See loadgen/README.md for the options, the load models and the JSON schema.

mod cli;
mod engine;
mod keygen;
mod report;
mod resp;
mod workload;

use clap::Parser;
use cli::Args;
use engine::{now_ns, Auth, RunSpec, Shared};
use keygen::Distribution;
use report::RunResult;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use workload::{compile_template, split_weight_prefix, Sizes, Workload};

const EXIT_FATAL: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_ERROR_RATE: i32 = 3;
const EXIT_VERIFY: i32 = 4;

fn main() {
    let args = Args::parse();
    std::process::exit(real_main(args));
}

struct Plan {
    spec: RunSpec,
    compare: Option<SocketAddr>,
    compare_label: String,
    label: String,
    header: String,
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {host}:{port}"))
}

fn build_plan(a: &Args) -> Result<Plan, String> {
    if a.threads == 0 || a.connections == 0 || a.pipeline == 0 {
        return Err("--threads, --connections and --pipeline must be at least 1".into());
    }
    if a.threads > 1024 || a.connections > 100_000 || a.pipeline > 1_000_000 {
        return Err("--threads, --connections or --pipeline is unreasonably large".into());
    }
    let addr = resolve(&a.host, a.port)?;
    let cpus = match &a.cpus {
        Some(s) => cli::parse_cpus(s)?,
        None => Vec::new(),
    };
    let duration_ns = match (&a.requests, &a.duration) {
        (Some(0), _) => return Err("--requests must be at least 1".into()),
        (Some(_), _) => 0,
        (None, Some(d)) => cli::parse_duration_ns(d)?,
        (None, None) => 10 * engine::NS,
    };
    if a.requests.is_none() && duration_ns == 0 {
        return Err("--duration must be greater than zero".into());
    }
    let warmup_ns = cli::parse_duration_ns(&a.warmup)?;
    let drain_timeout_ns = cli::parse_duration_ns(&a.drain_timeout)?;
    let reply_timeout_ns = cli::parse_duration_ns(&a.timeout)?;
    if reply_timeout_ns == 0 {
        return Err("--timeout must be greater than zero".into());
    }
    if let Some(r) = a.rate {
        if !(r > 0.0 && r.is_finite()) {
            return Err("--rate must be a positive number of ops/s".into());
        }
    }
    if let Some(m) = a.max_error_rate {
        if !(m >= 0.0 && m.is_finite()) {
            return Err("--max-error-rate must be a non-negative fraction (e.g. 0.01)".into());
        }
    }
    if a.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    let sizes = if let Some(l) = &a.data_size_list {
        let list = cli::parse_size_list(l)?;
        let mut cum = Vec::new();
        let mut total = 0u64;
        for (s, w) in list {
            if w > 0 {
                total += w as u64;
                cum.push((s, total));
            }
        }
        Sizes::List(cum, total)
    } else if let Some(r) = &a.data_size_range {
        let (lo, hi) = cli::parse_size_range(r)?;
        Sizes::Range(lo, hi)
    } else {
        Sizes::Fixed(a.data_size)
    };
    if sizes.max() > 512 * 1024 * 1024 {
        return Err("value size above 512 MB".into());
    }
    let dist = Distribution::parse(&a.distribution, a.keys.max(1))?;
    let (workload, desc) = if a.commands.is_empty() {
        if !a.command_weights.is_empty() {
            return Err("--command-weight needs --command".into());
        }
        let (s, g) = cli::parse_ratio(&a.ratio)?;
        let w = Workload::set_get(s, g, a.keys, &a.key_prefix, dist, sizes)?;
        (w, format!("SET:GET {s}:{g}"))
    } else {
        if a.command_weights.len() > a.commands.len() {
            return Err("more --command-weight than --command options".into());
        }
        let mut ts = Vec::new();
        for (i, c) in a.commands.iter().enumerate() {
            let (pw, text) = split_weight_prefix(c);
            let weight = pw.or(a.command_weights.get(i).copied()).unwrap_or(1);
            ts.push(compile_template(text, weight)?);
        }
        let desc = ts.iter().map(|t| format!("{}x {:?}", t.weight, t.text)).collect::<Vec<_>>().join(", ");
        (Workload::new(ts, false, a.keys, &a.key_prefix, dist, sizes)?, desc)
    };
    let total_conns = (a.threads * a.connections) as u64;
    if a.verify {
        if !workload.is_set_get {
            return Err("--verify works with the SET/GET workload (no --command)".into());
        }
        if a.keys < total_conns {
            return Err("--verify needs --keys >= threads x connections (keys are partitioned per connection)".into());
        }
    }
    let seed = a.seed.unwrap_or_else(|| {
        let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        t.as_nanos() as u64 ^ (std::process::id() as u64) << 32
    });
    // SAFETY: isatty on fd 2 is always safe.
    let progress = !a.no_progress && unsafe { libc::isatty(2) } == 1;
    let compare = match &a.compare {
        Some(s) => {
            let (h, p) = cli::parse_host_port(s)?;
            Some(resolve(&h, p)?)
        }
        None => None,
    };
    let model = match a.rate {
        Some(r) => format!("open loop at {r} ops/s"),
        None => "closed loop".into(),
    };
    let run = match a.requests {
        Some(n) => format!("{n} requests"),
        None => format!("{:.3} s", duration_ns as f64 / 1e9),
    };
    let header = format!(
        "tessera-loadgen -> {}:{} (RESP{})  {} thread(s) x {} connection(s), pipeline {}, {}\n\
         workload: {}; {} keys \"{}N\" ({}), values {} B; run: {}{}",
        a.host,
        a.port,
        a.resp,
        a.threads,
        a.connections,
        a.pipeline,
        model,
        desc,
        a.keys,
        a.key_prefix,
        workload.dist.name(),
        workload.sizes.describe(),
        run,
        if warmup_ns > 0 {
            format!(" after {:.3} s warm-up", warmup_ns as f64 / 1e9)
        } else {
            String::new()
        },
    );
    let spec = RunSpec {
        addr,
        auth: Auth {
            user: a.user.clone(),
            password: a.password.clone(),
            resp3: a.resp == 3,
            db: a.db,
        },
        threads: a.threads,
        conns_per_thread: a.connections,
        pipeline: a.pipeline,
        cpus,
        workload: Arc::new(workload),
        requests: a.requests,
        duration_ns,
        warmup_ns,
        rate: a.rate,
        preload: a.preload,
        verify: a.verify,
        hdr_intervals: a.hdr_out.is_some(),
        progress,
        seed,
        drain_timeout_ns,
        reply_timeout_ns,
        engine: a.engine,
    };
    Ok(Plan {
        spec,
        compare,
        compare_label: a.compare.clone().unwrap_or_default(),
        label: format!("{}:{}", a.host, a.port),
        header,
    })
}

/// One run against one server; prints the progress line while it goes.
fn run_once(spec: &RunSpec, label: &str) -> Result<RunResult, String> {
    let shared = Shared::new(spec.threads);
    let done = AtomicUsize::new(0);
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..spec.threads)
            .map(|tid| {
                let shared = &shared;
                let done = &done;
                std::thread::Builder::new()
                    .name(format!("loadgen-{tid}"))
                    .spawn_scoped(s, move || {
                        let r = engine::run_thread(tid, spec, shared);
                        done.fetch_add(1, Ordering::SeqCst);
                        r
                    })
                    .expect("spawn thread")
            })
            .collect();
        if spec.progress {
            progress_loop(spec, &shared, &done);
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("worker thread panicked".into())))
            .collect::<Vec<_>>()
    });
    let mut ok = Vec::new();
    let mut first_err: Option<String> = None;
    for r in results {
        match r {
            Ok(t) => ok.push(t),
            Err(e) => {
                if e != "aborted" && first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    if ok.len() != spec.threads {
        return Err("a worker thread failed".into());
    }
    let measure_start = ok.iter().map(|t| t.measure_start_ns).min().unwrap_or(0);
    let ago = now_ns().saturating_sub(measure_start);
    let wall_start = SystemTime::now().checked_sub(Duration::from_nanos(ago)).unwrap_or_else(SystemTime::now);
    Ok(RunResult::merge(
        label.to_string(),
        spec.workload.stat_names.clone(),
        ok,
        if spec.requests.is_some() { None } else { Some(spec.duration_ns) },
        spec.verify,
        spec.preload,
        wall_start,
    ))
}

fn progress_loop(spec: &RunSpec, shared: &Shared, done: &AtomicUsize) {
    let start = std::time::Instant::now();
    let mut last_n = 0u64;
    let mut last_t = start;
    let mut next = start + Duration::from_secs(1);
    let mut printed = false;
    while done.load(Ordering::SeqCst) < spec.threads {
        std::thread::sleep(Duration::from_millis(50));
        let now = std::time::Instant::now();
        if now < next {
            continue;
        }
        next += Duration::from_secs(1);
        let n = shared.completed();
        let dt = now.duration_since(last_t).as_secs_f64();
        let ops = (n - last_n) as f64 / dt.max(1e-9);
        last_n = n;
        last_t = now;
        let line = if !shared.phase_main.load(Ordering::Relaxed) {
            format!("[{:>4}s] preloading / connecting...", start.elapsed().as_secs())
        } else {
            let p99 = shared.progress_hist.lock().map(|h| report::pct(&h, 99.0)).unwrap_or(0.0);
            format!(
                "[{:>4}s] {:>12.0} ops/s   p99 {:>9.0} us   {:>12} replies",
                start.elapsed().as_secs(),
                ops,
                p99,
                n
            )
        };
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "\r\x1b[K{line}");
        let _ = e.flush();
        printed = true;
    }
    if printed {
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "\r\x1b[K");
        let _ = e.flush();
    }
}

fn config_json(a: &Args, plan: &Plan) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("load_model".into(), json!(if a.rate.is_some() { "open" } else { "closed" }));
        m.insert("seed_used".into(), json!(plan.spec.seed));
        m.insert("duration_secs_configured".into(), json!(plan.spec.duration_ns as f64 / 1e9));
        m.insert("warmup_secs".into(), json!(plan.spec.warmup_ns as f64 / 1e9));
        m.insert("total_connections".into(), json!(a.threads * a.connections));
        m.insert("data_sizes".into(), json!(plan.spec.workload.sizes.describe()));
        m.insert(
            "commands".into(),
            json!(plan
                .spec
                .workload
                .templates
                .iter()
                .map(|t| json!({"template": t.text, "name": t.name, "weight": t.weight}))
                .collect::<Vec<_>>()),
        );
    }
    v
}

fn real_main(a: Args) -> i32 {
    let plan = match build_plan(&a) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("tessera-loadgen: {e}");
            return EXIT_USAGE;
        }
    };
    let mut worst_error_rate = 0.0f64;
    let mut mismatches = 0u64;
    let check = |r: &RunResult, worst: &mut f64, mm: &mut u64| {
        *worst = worst.max(r.error_rate());
        if let Some(v) = &r.verify {
            *mm += v.mismatches;
        }
    };

    match plan.compare {
        None => {
            let r = match run_once(&plan.spec, &plan.label) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("tessera-loadgen: {e}");
                    return EXIT_FATAL;
                }
            };
            check(&r, &mut worst_error_rate, &mut mismatches);
            if let Some(prefix) = &a.hdr_out {
                match report::write_hdr_logs(&r, prefix) {
                    Ok(files) => eprintln!("tessera-loadgen: wrote {}", files.join(", ")),
                    Err(e) => {
                        eprintln!("tessera-loadgen: {e}");
                        return EXIT_FATAL;
                    }
                }
            }
            if a.json {
                let mut doc = report::result_json(&r);
                doc.insert("config".into(), config_json(&a, &plan));
                println!("{}", Value::Object(doc));
            } else if a.csv {
                println!("{}", report::CSV_HEADER);
                for l in report::csv_rows(&r, &plan.label) {
                    println!("{l}");
                }
            } else {
                report::print_table(&r, &plan.header);
            }
        }
        Some(b_addr) => {
            let mut spec_a = plan.spec.clone();
            let mut spec_b = plan.spec.clone();
            spec_b.addr = b_addr;
            let mut runs_a = Vec::new();
            let mut runs_b = Vec::new();
            for round in 1..=a.rounds {
                for (which, spec, label, runs) in [
                    ("A", &mut spec_a, &plan.label, &mut runs_a),
                    ("B", &mut spec_b, &plan.compare_label, &mut runs_b),
                ] {
                    if spec.progress {
                        eprintln!("round {round}/{}: server {which} ({label})", a.rounds);
                    }
                    let r = match run_once(spec, label) {
                        Ok(r) => r,
                        Err(e) => {
                            eprintln!("tessera-loadgen: server {which} ({label}): {e}");
                            return EXIT_FATAL;
                        }
                    };
                    // Preload each server only before its first round.
                    spec.preload = false;
                    check(&r, &mut worst_error_rate, &mut mismatches);
                    if let Some(prefix) = &a.hdr_out {
                        if let Err(e) = report::write_hdr_logs(&r, &format!("{prefix}{which}{round}-")) {
                            eprintln!("tessera-loadgen: {e}");
                            return EXIT_FATAL;
                        }
                    }
                    runs.push(r);
                }
            }
            let ratios = |f: &dyn Fn(&RunResult) -> f64| -> Vec<f64> {
                runs_a
                    .iter()
                    .zip(runs_b.iter())
                    .map(|(x, y)| {
                        let (fa, fb) = (f(x), f(y));
                        if fa > 0.0 {
                            fb / fa
                        } else {
                            0.0
                        }
                    })
                    .collect()
            };
            let tp = ratios(&|r| r.throughput());
            let p50 = ratios(&|r| report::pct(&r.total, 50.0));
            let p99 = ratios(&|r| report::pct(&r.total, 99.0));
            let summary = |v: &[f64]| {
                let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
                let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                (report::median(v), min, max)
            };
            let (tp_m, tp_lo, tp_hi) = summary(&tp);
            let (p50_m, p50_lo, p50_hi) = summary(&p50);
            let (p99_m, p99_lo, p99_hi) = summary(&p99);
            if a.json {
                let mut rounds = Vec::new();
                for (i, (x, y)) in runs_a.iter().zip(runs_b.iter()).enumerate() {
                    for (which, r) in [("A", x), ("B", y)] {
                        rounds.push(json!({
                            "round": i + 1,
                            "server": which,
                            "target": r.target,
                            "throughput_ops_per_sec": r.throughput(),
                            "requests": r.requests(),
                            "duration_secs": r.duration_secs,
                            "latency_us": report::latency_json(&r.total),
                            "errors": r.error_count(),
                        }));
                    }
                }
                let ra = RunResult::combine(runs_a);
                let rb = RunResult::combine(runs_b);
                let mut doc = report::result_json(&ra);
                let stat = |m: f64, lo: f64, hi: f64, per: &[f64]| json!({"median": m, "min": lo, "max": hi, "per_round": per});
                let mut cmp = Map::new();
                cmp.insert("a".into(), json!(plan.label));
                cmp.insert("b".into(), json!(plan.compare_label));
                cmp.insert("rounds".into(), json!(a.rounds));
                cmp.insert("runs".into(), Value::Array(rounds));
                cmp.insert(
                    "ratio_b_over_a".into(),
                    json!({
                        "throughput": stat(tp_m, tp_lo, tp_hi, &tp),
                        "p50": stat(p50_m, p50_lo, p50_hi, &p50),
                        "p99": stat(p99_m, p99_lo, p99_hi, &p99),
                    }),
                );
                cmp.insert("b_result".into(), Value::Object(report::result_json(&rb)));
                doc.insert("compare".into(), Value::Object(cmp));
                doc.insert("config".into(), config_json(&a, &plan));
                println!("{}", Value::Object(doc));
            } else if a.csv {
                println!("round,server,target,throughput_ops_per_sec,requests,p50_us,p99_us,errors");
                for (i, (x, y)) in runs_a.iter().zip(runs_b.iter()).enumerate() {
                    for (which, r) in [("A", x), ("B", y)] {
                        println!(
                            "{},{},{},{:.3},{},{},{},{}",
                            i + 1,
                            which,
                            r.target,
                            r.throughput(),
                            r.requests(),
                            report::pct(&r.total, 50.0),
                            report::pct(&r.total, 99.0),
                            r.error_count()
                        );
                    }
                }
                println!("ratio_b_over_a,metric,median,min,max");
                println!("ratio,throughput,{tp_m:.4},{tp_lo:.4},{tp_hi:.4}");
                println!("ratio,p50,{p50_m:.4},{p50_lo:.4},{p50_hi:.4}");
                println!("ratio,p99,{p99_m:.4},{p99_lo:.4},{p99_hi:.4}");
            } else {
                println!("{}", plan.header);
                println!("compare: A = {}, B = {}, {} rounds (A B A B ...)", plan.label, plan.compare_label, a.rounds);
                println!();
                println!(
                    "{:>5} {:>6} {:>14} {:>10} {:>10} {:>10} {:>8}",
                    "round", "server", "ops/s", "p50 us", "p99 us", "max us", "errors"
                );
                for (i, (x, y)) in runs_a.iter().zip(runs_b.iter()).enumerate() {
                    for (which, r) in [("A", x), ("B", y)] {
                        println!(
                            "{:>5} {:>6} {:>14.1} {:>10} {:>10} {:>10} {:>8}",
                            i + 1,
                            which,
                            r.throughput(),
                            report::pct(&r.total, 50.0),
                            report::pct(&r.total, 99.0),
                            if r.total.is_empty() { 0 } else { r.total.max() },
                            r.error_count()
                        );
                    }
                }
                println!();
                println!("ratio B/A (median, spread min-max over rounds):");
                println!("  throughput {tp_m:.3}  ({tp_lo:.3} - {tp_hi:.3})");
                println!("  p50        {p50_m:.3}  ({p50_lo:.3} - {p50_hi:.3})");
                println!("  p99        {p99_m:.3}  ({p99_lo:.3} - {p99_hi:.3})");
                let va = runs_a.iter().filter_map(|r| r.verify.as_ref()).map(|v| v.mismatches).sum::<u64>();
                let vb = runs_b.iter().filter_map(|r| r.verify.as_ref()).map(|v| v.mismatches).sum::<u64>();
                if a.verify {
                    println!("verify mismatches: A {va}, B {vb}");
                }
            }
        }
    }

    if mismatches > 0 {
        eprintln!("tessera-loadgen: --verify found {mismatches} mismatching GET replies");
        return EXIT_VERIFY;
    }
    if let Some(max) = a.max_error_rate {
        if worst_error_rate > max {
            eprintln!("tessera-loadgen: error rate {worst_error_rate:.6} exceeds --max-error-rate {max}");
            return EXIT_ERROR_RATE;
        }
    }
    0
}
