//! SORT and SORT_RO against a real redis-server 7.0.15 (differential, RESP2
//! then RESP3, Tessera at 2 shards: the source, the BY / GET keys and the
//! STORE destination spread over both), plus a torn-read check at 4 shards:
//! SORT ... BY / GET over keys that a concurrent cross-shard MSET rewrites.
//!
//! ALPHA sorts compare with strcoll; the elements here are ASCII letters and
//! digits of one case, whose order is the same in every locale. Ties in ALPHA
//! BY sorts (Redis's qsort leaves their order undefined) are avoided.

mod common;

use common::diff::*;
use common::*;

fn script_sources(d: &mut Diff) {
    d.ss(&[
        "RPUSH l 3 1 2 10 -5 2.5 007",
        "SORT l",
        "SORT l DESC",
        "SORT l ALPHA",
        "SORT l ALPHA DESC",
        "SORT l LIMIT 1 3",
        "SORT l LIMIT 0 0",
        "SORT l LIMIT -5 2",
        "SORT l LIMIT 5 100",
        "SORT l LIMIT 100 2",
        "SORT l LIMIT 2 -1",
        "SORT l DESC LIMIT 1 2",
        "SORT l ASC DESC ASC",
        "SORT_RO l",
        "SORT_RO l DESC LIMIT 0 3",
        "SADD si 5 3 9 1 -2",
        "SORT si",
        "SORT si DESC",
        "SORT si ALPHA",
        "SORT si BY nosort",
        "SADD sh x5 x3 x9",
        "SORT sh ALPHA",
        "SORT sh ALPHA DESC LIMIT 1 1",
        "SORT sh",
        "ZADD z 3 c 1 a 2 b 5 e 4 d",
        "SORT z ALPHA",
        "SORT z BY nosort",
        "SORT z BY nosort DESC",
        "SORT z BY nosort LIMIT 1 2",
        "SORT z BY nosort DESC LIMIT 1 2",
        "SORT z BY nosort LIMIT 10 2",
        "SORT z",
        "OBJECT ENCODING z",
        "SORT nokey",
        "SORT nokey ALPHA LIMIT 0 5",
        "RPUSH e ''",
        "SORT e",
        "RPUSH ws ' 4' 3",
        "SORT ws",
        "RPUSH inf inf -inf 0",
        "SORT inf",
        "RPUSH nan nan",
        "SORT nan",
        "SET str v",
        "SORT str",
        "HSET h f v",
        "SORT h",
        "SORT l BY nosort",
        "SORT l BY nosort DESC",
        "SORT l BY nosort LIMIT 2 3",
        "SORT l BY nosort DESC LIMIT 2 3",
    ]);
    d.cb(&[b"RPUSH", b"nul", b"3\x00x", b"1"]);
    // Last: Redis never clears errno before strtod, so after the ERANGE of
    // 1e400 a stale errno fails every later numeric SORT in the same batch.
    d.ss(&["SORT nul", "RPUSH big 1e400", "SORT big", "FLUSHALL"]);
}

fn script_syntax(d: &mut Diff) {
    d.ss(&[
        "RPUSH l 2 1",
        "SORT",
        "SORT l LIMIT",
        "SORT l LIMIT 1",
        "SORT l LIMIT a 1",
        "SORT l LIMIT 1 b",
        "SORT l LIMIT 1 99999999999999999999",
        "SORT l BY",
        "SORT l GET",
        "SORT l STORE",
        "SORT l FOO",
        "SORT_RO l STORE dst",
        "SORT_RO",
        "SORT str LIMIT x 1",
        "SET str v",
        "SORT str FOO",
        "SORT str LIMIT 0 1",
        "SORT_RO str",
        "RPUSH bad a b",
        "SORT bad",
        "SORT bad STORE dst",
        "EXISTS dst",
        "SORT bad ALPHA",
        "FLUSHALL",
    ]);
}

fn script_patterns(d: &mut Diff) {
    d.ss(&[
        "RPUSH ids 1 2 3 4 5",
        "MSET w_1 50 w_2 10 w_3 40 w_4 20 w_5 30",
        "MSET n_1 one n_2 two n_3 three n_4 four n_5 five",
        "HSET o_1 w 5 name alice",
        "HSET o_2 w 3 name bob",
        "HSET o_3 w 1 name carol",
        "HSET o_4 w 4",
        "SORT ids BY w_*",
        "SORT ids BY w_* DESC",
        "SORT ids BY w_* GET n_*",
        "SORT ids BY w_* GET # GET n_*",
        "SORT ids BY w_* GET n_* GET # GET missing_* GET nostar",
        "SORT ids BY w_* LIMIT 1 2 GET n_*",
        "SORT ids BY w_* DESC LIMIT 0 3 GET # GET n_*",
        "SORT ids BY o_*->w",
        "SORT ids BY o_*->w GET o_*->name",
        "SORT ids BY o_*->w GET o_*->name GET o_*->nofield GET o_*->",
        "SORT ids BY n_* ALPHA",
        "SORT ids BY n_* ALPHA DESC GET n_*",
        "SORT ids BY n_* ALPHA LIMIT 1 3",
        "SORT ids BY missing_*",
        "SORT ids BY w_*->f",
        "SORT ids BY nosort GET n_*",
        "SORT ids BY nosort DESC GET # GET w_*",
        "SORT ids GET n_*",
        "SORT ids GET #",
        "SORT_RO ids BY w_* GET n_*",
        "SORT_RO ids BY o_*->w GET o_*->name",
        "SET n_9 nine",
        "RPUSH ids 9",
        "SORT ids BY n_*",
        "SORT ids BY w_* GET n_*",
        "SADD sids 1 2 3",
        "SORT sids BY w_* GET n_*",
        "ZADD zids 1 1 2 2 3 3",
        "SORT zids BY w_* DESC GET n_*",
        "SET w_x 1.5",
        "SET w_y 1.25",
        "RPUSH xy x y",
        "SORT xy BY w_*",
        "LPUSH h_list o_1",
        "SORT ids BY h_list",
        "FLUSHALL",
    ]);
}

fn script_store(d: &mut Diff) {
    d.ss(&[
        "RPUSH a 3 1 2",
        "SORT a STORE b",
        "LRANGE b 0 -1",
        "TYPE b",
        "OBJECT ENCODING b",
        "SORT a DESC STORE c",
        "LRANGE c 0 -1",
        "SET d str",
        "EXPIRE d 100",
        "SORT a STORE d",
        "TTL d",
        "LRANGE d 0 -1",
        "SORT a LIMIT 5 5 STORE b",
        "EXISTS b",
        "SORT nokey STORE c",
        "EXISTS c",
        "MSET w_1 3 w_2 2 w_3 1 n_1 x n_3 z",
        "SORT a BY w_* GET n_* GET # STORE b",
        "LRANGE b 0 -1",
        "SORT a BY w_* GET n_* STORE c",
        "LRANGE c 0 -1",
        "SADD s y x z",
        "SORT s BY nosort STORE b",
        "LRANGE b 0 -1",
        "SORT s BY nosort DESC STORE b",
        "LRANGE b 0 -1",
        "SORT s BY nosort LIMIT 1 1 STORE b",
        "LRANGE b 0 -1",
        "SORT a STORE a",
        "LRANGE a 0 -1",
        "SORT a STORE x STORE y",
        "EXISTS x y",
        "FLUSHALL",
    ]);
}

#[test]
fn sort_sources_and_limits() {
    run_scripted("sort_sources", script_sources);
}

#[test]
fn sort_syntax_and_type_errors() {
    run_scripted("sort_syntax", script_syntax);
}

#[test]
fn sort_by_and_get_patterns_across_shards() {
    run_scripted("sort_patterns", script_patterns);
}

#[test]
fn sort_store_across_shards() {
    run_scripted("sort_store", script_store);
}

/// A writer rewrites w_1..w_N and n_1..n_N with one cross-shard MSET per
/// generation (weights and names carry the generation); readers SORT by the
/// weights and GET the names. Every reply must come from one generation.
#[test]
fn sort_patterns_never_see_a_torn_mset_at_4_shards() {
    let srv = TesseraServer::start(4, &[]);
    let port = srv.port;
    let n = 20;
    let mut c = Client::connect(port);
    let ids: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let mut push: Vec<&str> = vec!["RPUSH", "ids"];
    push.extend(ids.iter().map(|s| s.as_str()));
    c.cmd(&push);
    let mset = move |g: usize| -> Vec<String> {
        let mut a = vec!["MSET".to_string()];
        for i in 1..=n {
            a.push(format!("w_{i}"));
            // Weights reverse order every generation.
            a.push(if g.is_multiple_of(2) { i } else { n + 1 - i }.to_string());
            a.push(format!("n_{i}"));
            a.push(format!("g{g}"));
        }
        a
    };
    let first: Vec<String> = mset(0);
    c.cmd(&first.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = Client::connect(port);
            let mut g = 1;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let a = mset(g);
                c.cmd(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
                g += 1;
            }
            g
        })
    };
    let mut checked = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        let v = c.cmd_value(&["SORT", "ids", "BY", "w_*", "GET", "#", "GET", "n_*"]);
        let a = v.as_array().expect("array");
        assert_eq!(a.len(), 2 * n);
        let ids: Vec<usize> = a.iter().step_by(2).map(|x| x.as_str().unwrap().parse().unwrap()).collect();
        let gens: Vec<String> = a.iter().skip(1).step_by(2).map(|x| x.as_str().unwrap()).collect();
        let g: usize = gens[0][1..].parse().unwrap();
        assert!(gens.iter().all(|x| *x == gens[0]), "names from several generations: {gens:?}");
        let want: Vec<usize> = if g.is_multiple_of(2) { (1..=n).collect() } else { (1..=n).rev().collect() };
        assert_eq!(ids, want, "order from another generation than the names ({})", gens[0]);
        checked += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let gens = writer.join().unwrap();
    assert!(checked > 50 && gens > 50, "too little overlap: {checked} sorts, {gens} generations");
}
