//! Cross-shard atomicity under concurrency (Tessera at 2 and 4 shards).
//!
//! Key groups are built so that their keys land on EVERY shard (computed with
//! Tessera's own `key_hash_slot` + `shard_of_slot`, cross-checked against an
//! independent CRC16). Then, for a bounded time:
//! * writers `MSET` a whole group to one value while readers `MGET` it: a
//!   reader must never see a mix of values;
//! * concurrent `MSETNX` on overlapping groups: all-or-nothing, afterwards
//!   every group is untouched or entirely one winner's value;
//! * `DEL` of a whole group is observed atomically (all nil or all present);
//! * `RENAME` back and forth across shards: `EXISTS src dst` is always 1.

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use tessera::runtime::shard_of_slot;
use tessera::util::slot::key_hash_slot;

/// Each scenario runs at least this long...
const RUN_TIME: Duration = Duration::from_millis(1500);
/// ...and then until every counter reached `MIN_OPS`, but never longer than this.
const MAX_TIME: Duration = Duration::from_secs(12);
const MIN_OPS: u64 = 100;

/// Sleep RUN_TIME, then until all counters reach MIN_OPS (or MAX_TIME passed).
fn run_until_enough(counters: &[&AtomicU64]) {
    let t0 = Instant::now();
    std::thread::sleep(RUN_TIME);
    while t0.elapsed() < MAX_TIME && counters.iter().any(|c| c.load(Ordering::Relaxed) < MIN_OPS) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn shard_of(key: &str, shards: usize) -> usize {
    let slot = key_hash_slot(key.as_bytes());
    assert_eq!(
        slot,
        local_key_slot(key.as_bytes()),
        "tessera's key_hash_slot({key:?}) disagrees with CRC16 mod 16384"
    );
    assert!(slot < 16384);
    let shard = shard_of_slot(slot, shards);
    assert!(shard < shards);
    shard
}

/// `n` disjoint groups of `size` (>= shards, >= 4) keys, each spanning every shard.
fn key_groups(tag: &str, n: usize, size: usize, shards: usize) -> Vec<Vec<String>> {
    assert!(size >= 4 && size >= shards);
    let mut out = Vec::new();
    for g in 0..n {
        let mut keys: Vec<String> = Vec::new();
        let mut covered = vec![false; shards];
        let mut i = 0;
        while keys.len() < size {
            let k = format!("{tag}:g{g}:k{i}");
            i += 1;
            let s = shard_of(&k, shards);
            let missing = covered.iter().filter(|c| !**c).count();
            // first make sure every shard is covered, then fill up
            if !covered[s] || missing == 0 || keys.len() + missing < size {
                covered[s] = true;
                keys.push(k);
            }
        }
        out.push(keys);
    }
    for g in &out {
        assert!(g.len() >= 4);
        let mut seen = vec![false; shards];
        for k in g {
            seen[shard_of(k, shards)] = true;
        }
        assert!(seen.iter().all(|s| *s), "group {g:?} does not span all {shards} shards: {seen:?}");
    }
    out
}

fn mget(c: &mut Client, keys: &[String]) -> Vec<Option<Vec<u8>>> {
    let mut args: Vec<&[u8]> = vec![b"MGET"];
    args.extend(keys.iter().map(|k| k.as_bytes()));
    let raw = c.cmd_bytes(&args);
    let v = Value::parse(&raw);
    let arr = v.as_array().unwrap_or_else(|| panic!("MGET returned {}", escape(&raw)));
    assert_eq!(arr.len(), keys.len());
    arr.iter()
        .map(|x| match x {
            Value::Bulk(b) => Some(b.clone()),
            x if x.is_null() => None,
            other => panic!("MGET element {other:?}"),
        })
        .collect()
}

fn show(vals: &[Option<Vec<u8>>]) -> String {
    vals.iter()
        .map(|v| v.as_ref().map_or("nil".to_string(), |b| escape(b)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mset_args<'a>(cmd: &'a str, keys: &'a [String], value: &'a str) -> Vec<&'a [u8]> {
    let mut args: Vec<&[u8]> = vec![cmd.as_bytes()];
    for k in keys {
        args.push(k.as_bytes());
        args.push(value.as_bytes());
    }
    args
}

/// Tiny deterministic PRNG per thread.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn mset_mget_never_mixed(shards: usize) {
    let server = TesseraServer::start(shards, &[]);
    let groups = Arc::new(key_groups("mm", 4, 6.max(shards * 2), shards));
    {
        let mut c = server.client();
        for g in groups.iter() {
            assert_eq!(c.cmd_bytes(&mset_args("MSET", g, "init")), b"+OK\r\n");
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let writes = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for w in 0..2 {
            let (groups, stop, writes) = (groups.clone(), stop.clone(), writes.clone());
            let mut c = server.client();
            s.spawn(move || {
                let mut rng = Rng(0x9E37_79B9 + w as u64);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let g = &groups[rng.below(groups.len())];
                    let val = format!("w{w}:{n}");
                    let r = c.cmd_bytes(&mset_args("MSET", g, &val));
                    assert_eq!(r, b"+OK\r\n", "MSET replied {}", escape(&r));
                    n += 1;
                    writes.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for rd in 0..2 {
            let (groups, stop, reads) = (groups.clone(), stop.clone(), reads.clone());
            let mut c = server.client();
            s.spawn(move || {
                let mut rng = Rng(0x1234_5678 + rd as u64);
                while !stop.load(Ordering::Relaxed) {
                    let g = &groups[rng.below(groups.len())];
                    let vals = mget(&mut c, g);
                    if vals.iter().any(|v| v != &vals[0]) || vals[0].is_none() {
                        stop.store(true, Ordering::Relaxed);
                        panic!("MGET of a group spanning {shards} shards saw mixed values: [{}]\n  keys: {g:?}", show(&vals));
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        run_until_enough(&[&reads, &writes]);
        stop.store(true, Ordering::Relaxed);
    });
    let (r, w) = (reads.load(Ordering::Relaxed), writes.load(Ordering::Relaxed));
    eprintln!("atomicity[mset/mget, {shards} shards]: {w} MSETs, {r} MGETs, never mixed");
    assert!(
        r >= MIN_OPS && w >= MIN_OPS,
        "too few operations in {MAX_TIME:?} to mean anything: {w} MSETs, {r} MGETs"
    );
}

#[test]
fn mset_mget_atomic_2_shards() {
    mset_mget_never_mixed(2);
}

#[test]
fn mset_mget_atomic_4_shards() {
    mset_mget_never_mixed(4);
}

/// Rounds of concurrent MSETNX on overlapping unions of groups (S_i = G_i ∪
/// G_{i+1}); a reader watches during the round.
fn msetnx_all_or_nothing(shards: usize) {
    let server = TesseraServer::start(shards, &[]);
    let n_groups = 4;
    let groups = key_groups("nx", n_groups, 4.max(shards), shards);
    let unions: Arc<Vec<Vec<String>>> = Arc::new(
        (0..n_groups)
            .map(|i| groups[i].iter().chain(groups[(i + 1) % n_groups].iter()).cloned().collect())
            .collect(),
    );
    let groups = Arc::new(groups);
    let writers = 3;
    let deadline = Instant::now() + RUN_TIME;
    let mut rounds = 0;
    let mut admin = server.client();
    let mut wins_total = 0;
    let hard_deadline = Instant::now() + MAX_TIME;
    while (Instant::now() < deadline || rounds < 10) && Instant::now() < hard_deadline {
        assert_eq!(admin.cmd(&["FLUSHALL"]), b"+OK\r\n");
        let barrier = Arc::new(Barrier::new(writers + 1));
        let done = Arc::new(AtomicBool::new(false));
        // (writer, union index) of each successful MSETNX
        let wins: Vec<(usize, usize)> = std::thread::scope(|s| {
            let mut hs = Vec::new();
            for w in 0..writers {
                let (unions, barrier) = (unions.clone(), barrier.clone());
                let mut c = server.client();
                hs.push(s.spawn(move || {
                    let mut rng = Rng(0xABCDEF + (rounds * 31 + w) as u64);
                    let mut order: Vec<usize> = (0..unions.len()).collect();
                    for i in (1..order.len()).rev() {
                        order.swap(i, rng.below(i + 1));
                    }
                    barrier.wait();
                    let mut won = Vec::new();
                    for i in order {
                        let val = format!("w{w}:u{i}");
                        let r = c.cmd_bytes(&mset_args("MSETNX", &unions[i], &val));
                        match r.as_slice() {
                            b":1\r\n" => won.push((w, i)),
                            b":0\r\n" => {}
                            _ => panic!("MSETNX replied {}", escape(&r)),
                        }
                    }
                    won
                }));
            }
            let (groups, done2) = (groups.clone(), done.clone());
            let mut rc = server.client();
            let reader = s.spawn(move || {
                let mut n = 0;
                while !done2.load(Ordering::Relaxed) || n < 5 {
                    for g in groups.iter() {
                        let vals = mget(&mut rc, g);
                        if vals.iter().any(|v| v != &vals[0]) {
                            panic!("during concurrent MSETNX a group was partially set: [{}]\n  keys: {g:?}", show(&vals));
                        }
                    }
                    n += 1;
                }
            });
            barrier.wait();
            let wins: Vec<(usize, usize)> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
            done.store(true, Ordering::Relaxed);
            reader.join().unwrap();
            wins
        });
        // verify the final state
        let mut owner: Vec<Option<String>> = vec![None; n_groups];
        for &(w, i) in &wins {
            for gi in [i, (i + 1) % n_groups] {
                assert!(
                    owner[gi].is_none(),
                    "two successful MSETNX wrote group {gi}: {:?} and w{w}:u{i} (wins {wins:?})",
                    owner[gi]
                );
                owner[gi] = Some(format!("w{w}:u{i}"));
            }
        }
        assert!(!wins.is_empty(), "no MSETNX succeeded on an empty database");
        for (gi, g) in groups.iter().enumerate() {
            let vals = mget(&mut admin, g);
            match &owner[gi] {
                Some(v) => assert!(
                    vals.iter().all(|x| x.as_deref() == Some(v.as_bytes())),
                    "group {gi} should be entirely {v:?}, found [{}] (wins {wins:?})",
                    show(&vals)
                ),
                None => assert!(
                    vals.iter().all(|x| x.is_none()),
                    "group {gi} should be untouched, found [{}] (wins {wins:?})",
                    show(&vals)
                ),
            }
        }
        wins_total += wins.len();
        rounds += 1;
    }
    eprintln!("atomicity[msetnx, {shards} shards]: {rounds} rounds, {wins_total} successful MSETNX, all-or-nothing held");
    assert!(rounds >= 3, "only {rounds} MSETNX rounds in {MAX_TIME:?}");
}

#[test]
fn msetnx_all_or_nothing_2_shards() {
    msetnx_all_or_nothing(2);
}

#[test]
fn msetnx_all_or_nothing_4_shards() {
    msetnx_all_or_nothing(4);
}

fn del_group_atomic(shards: usize) {
    let server = TesseraServer::start(shards, &[]);
    let groups = Arc::new(key_groups("del", 2, 4.max(shards * 2), shards));
    let stop = Arc::new(AtomicBool::new(false));
    let observed = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]); // [all nil, all present]
    let cycles = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for (gi, _) in groups.iter().enumerate() {
            // one writer per group, so DEL must return the whole group size
            let (groups, stop, cycles) = (groups.clone(), stop.clone(), cycles.clone());
            let mut c = server.client();
            s.spawn(move || {
                let g = &groups[gi];
                let mut n = 0u64;
                let mut dargs: Vec<&[u8]> = vec![b"DEL"];
                dargs.extend(g.iter().map(|k| k.as_bytes()));
                while !stop.load(Ordering::Relaxed) {
                    let val = format!("v{n}");
                    assert_eq!(c.cmd_bytes(&mset_args("MSET", g, &val)), b"+OK\r\n");
                    let r = c.cmd_bytes(&dargs);
                    assert_eq!(r, format!(":{}\r\n", g.len()).into_bytes(), "DEL of a freshly set group replied {}", escape(&r));
                    n += 1;
                    cycles.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for rd in 0..2 {
            let (groups, stop, observed) = (groups.clone(), stop.clone(), observed.clone());
            let mut c = server.client();
            s.spawn(move || {
                let mut i = rd;
                while !stop.load(Ordering::Relaxed) {
                    let g = &groups[i % groups.len()];
                    i += 1;
                    let vals = mget(&mut c, g);
                    if vals.iter().all(|v| v.is_none()) {
                        observed[0].fetch_add(1, Ordering::Relaxed);
                    } else if vals.iter().all(|v| v.is_some() && *v == vals[0]) {
                        observed[1].fetch_add(1, Ordering::Relaxed);
                    } else {
                        stop.store(true, Ordering::Relaxed);
                        panic!("MGET during MSET/DEL of a whole group saw a partial state: [{}]\n  keys: {g:?}", show(&vals));
                    }
                }
            });
        }
        run_until_enough(&[&observed[0], &observed[1], &cycles]);
        stop.store(true, Ordering::Relaxed);
    });
    let (nil, present) = (observed[0].load(Ordering::Relaxed), observed[1].load(Ordering::Relaxed));
    let cycles = cycles.load(Ordering::Relaxed);
    eprintln!("atomicity[del, {shards} shards]: {cycles} MSET+DEL cycles, readers saw {nil} all-nil and {present} all-present groups, never partial");
    assert!(nil >= MIN_OPS && present >= MIN_OPS && cycles >= MIN_OPS, "too few operations in {MAX_TIME:?}");
}

#[test]
fn del_group_atomic_2_shards() {
    del_group_atomic(2);
}

#[test]
fn del_group_atomic_4_shards() {
    del_group_atomic(4);
}

fn rename_cross_shard(shards: usize) {
    let server = TesseraServer::start(shards, &[]);
    // a src/dst pair on different shards
    let (src, dst) = {
        let mut pick = None;
        'outer: for i in 0..1000 {
            for j in 0..1000 {
                let (a, b) = (format!("rn:src{i}"), format!("rn:dst{j}"));
                if shard_of(&a, shards) != shard_of(&b, shards) {
                    pick = Some((a, b));
                    break 'outer;
                }
            }
        }
        pick.expect("keys on different shards")
    };
    assert_ne!(shard_of(&src, shards), shard_of(&dst, shards));
    let mut c = server.client();
    assert_eq!(c.cmd(&["SET", &src, "payload"]), b"+OK\r\n");
    let stop = Arc::new(AtomicBool::new(false));
    let renames = Arc::new(AtomicU64::new(0));
    let checks = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        {
            let (stop, renames, src, dst) = (stop.clone(), renames.clone(), src.clone(), dst.clone());
            s.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (a, b) = if n.is_multiple_of(2) { (&src, &dst) } else { (&dst, &src) };
                    let r = c.cmd(&["RENAME", a, b]);
                    if r != b"+OK\r\n" {
                        stop.store(true, Ordering::Relaxed);
                        panic!("RENAME {a} {b} replied {}", escape(&r));
                    }
                    n += 1;
                    renames.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for rd in 0..2 {
            let (stop, checks, src, dst) = (stop.clone(), checks.clone(), src.clone(), dst.clone());
            let mut c = server.client();
            s.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if (n + rd).is_multiple_of(2) {
                        let r = c.cmd(&["EXISTS", &src, &dst]);
                        if r != b":1\r\n" {
                            stop.store(true, Ordering::Relaxed);
                            panic!("EXISTS {src} {dst} during cross-shard RENAME returned {} (must always be 1)", escape(&r));
                        }
                    } else {
                        let vals = mget(&mut c, &[src.clone(), dst.clone()]);
                        let present: Vec<_> = vals.iter().flatten().collect();
                        if present.len() != 1 || present[0] != b"payload" {
                            stop.store(true, Ordering::Relaxed);
                            panic!(
                                "MGET {src} {dst} during cross-shard RENAME saw [{}] (must be exactly one 'payload')",
                                show(&vals)
                            );
                        }
                    }
                    n += 1;
                    checks.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        run_until_enough(&[&renames, &checks]);
        stop.store(true, Ordering::Relaxed);
    });
    let (r, k) = (renames.load(Ordering::Relaxed), checks.load(Ordering::Relaxed));
    eprintln!("atomicity[rename, {shards} shards]: {r} RENAMEs, {k} checks, always exactly one key");
    assert!(r >= MIN_OPS && k >= MIN_OPS, "too few operations in {MAX_TIME:?}: {r} RENAMEs, {k} checks");
}

#[test]
fn rename_cross_shard_atomic_2_shards() {
    rename_cross_shard(2);
}

#[test]
fn rename_cross_shard_atomic_4_shards() {
    rename_cross_shard(4);
}

#[test]
fn key_groups_span_every_shard() {
    for shards in [1, 2, 3, 4, 8] {
        for g in key_groups("span", 5, 4.max(shards), shards) {
            let mut seen = vec![false; shards];
            for k in &g {
                seen[shard_of(k, shards)] = true;
            }
            assert!(seen.iter().all(|s| *s));
        }
    }
    // hash tags: same tag, same slot
    assert_eq!(key_hash_slot(b"{user1}.a"), key_hash_slot(b"{user1}.b"));
    assert_eq!(key_hash_slot(b"foo"), 12182);
    assert_eq!(key_hash_slot(b"123456789"), 0x31C3 & 16383);
}
