//! Micro-benchmarks of the hot paths: RESP parsing and reply encoding, key
//! hashing and slot routing, keyspace lookups and inserts, a cross-shard
//! mailbox round trip, and active-expiry sampling. Run with `make bench`.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tessera::keyspace::{Db, Value};
use tessera::protocol::{Parsed, Parser, Reply};

fn pipeline(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        let k = format!("key:{:012}", i);
        v.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n${}\r\n{}\r\n$3\r\nxxx\r\n", k.len(), k).as_bytes());
    }
    v
}

fn parse(c: &mut Criterion) {
    let buf = pipeline(16);
    let mut g = c.benchmark_group("resp");
    g.throughput(Throughput::Elements(16));
    g.bench_function("parse_pipeline_16_set", |b| {
        let mut p = Parser::default();
        let mut args = Vec::with_capacity(8);
        b.iter(|| {
            let mut pos = 0;
            while let Ok(Parsed::Command { consumed, .. }) = p.parse(&buf[pos..], &mut args, true) {
                pos += consumed;
            }
            black_box(pos)
        })
    });
    g.bench_function("encode_16_bulk_replies", |b| {
        let mut r = Reply::new(false);
        b.iter(|| {
            r.buf.clear();
            for _ in 0..16 {
                r.bulk(black_box(b"some-value-of-moderate-size"));
            }
            black_box(r.buf.len())
        })
    });
    g.finish();
}

fn routing(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..1024).map(|i| format!("key:{:012}", i).into_bytes()).collect();
    c.bench_function("slot/key_hash_slot_1024_keys", |b| {
        b.iter(|| keys.iter().map(|k| tessera::util::slot::key_hash_slot(k) as u64).sum::<u64>())
    });
    c.bench_function("slot/shard_of_key_4_shards_1024_keys", |b| {
        b.iter(|| keys.iter().map(|k| tessera::runtime::shard_of_key(k, 4)).sum::<usize>())
    });
}

fn keyspace(c: &mut Criterion) {
    let mut db = Db::default();
    let keys: Vec<Vec<u8>> = (0..100_000).map(|i| format!("key:{:012}", i).into_bytes()).collect();
    for k in &keys {
        db.set(k, Value::from_bytes(b"xxx"), 0, 0);
    }
    let mut i = 0usize;
    c.bench_function("keyspace/get_hit_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(db.lookup_read(&keys[i], 1).is_some())
        })
    });
    c.bench_function("keyspace/write_lookup_modify_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            if let Some(mut e) = db.lookup_write(&keys[i], 1) {
                *e.val_mut() = Value::Int(i as i64);
            }
        })
    });
    c.bench_function("keyspace/set_overwrite_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            db.set(&keys[i], Value::from_bytes(b"yyy"), 0, 1);
        })
    });
    c.bench_function("keyspace/insert_fresh_10k", |b| {
        b.iter_batched(
            Db::default,
            |mut d| {
                for k in keys.iter().take(10_000) {
                    d.set(k, Value::Int(1), 0, 0);
                }
                d
            },
            BatchSize::LargeInput,
        )
    });
}

fn expiry(c: &mut Criterion) {
    c.bench_function("expire/sample_20_of_10k_half_expired", |b| {
        b.iter_batched(
            || {
                let mut db = Db::default();
                for i in 0..10_000u64 {
                    db.set(format!("k{i}").as_bytes(), Value::Int(1), if i % 2 == 0 { 10 } else { u64::MAX / 2 }, 0);
                }
                db
            },
            |mut db| {
                let mut x = 0x9E3779B97F4A7C15u64;
                black_box(db.expire_sample(20, 100, || tessera::util::rand::next(&mut x), |_| true))
            },
            BatchSize::LargeInput,
        )
    });
}

/// A job pushed to another thread's inbox and answered through a oneshot:
/// the shape of every cross-shard hop (the wake-up path is glommio's).
fn mailbox(c: &mut Criterion) {
    use crossbeam_queue::SegQueue;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    type Job = Box<dyn FnOnce() + Send>;
    let q: Arc<SegQueue<Job>> = Arc::new(SegQueue::new());
    let stop = Arc::new(AtomicBool::new(false));
    let (q2, s2) = (q.clone(), stop.clone());
    let worker = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            match q2.pop() {
                Some(j) => j(),
                None => std::hint::spin_loop(),
            }
        }
    });
    c.bench_function("mailbox/round_trip_spinning_receiver", |b| {
        b.iter(|| {
            let done = Arc::new(AtomicBool::new(false));
            let d = done.clone();
            q.push(Box::new(move || d.store(true, Ordering::Release)));
            while !done.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
        })
    });
    stop.store(true, Ordering::Relaxed);
    let _ = worker.join();
}

criterion_group!(benches, parse, routing, keyspace, expiry, mailbox);
criterion_main!(benches);
