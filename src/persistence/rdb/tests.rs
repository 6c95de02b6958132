//! Round trips of every type and encoding, payloads byte-compared with what
//! Redis 7.0.15 DUMPs, whole files, and damaged input (never a panic).

use super::decode::{payload_value, verify_payload, FileParser, LoadError, Reader, Record};
use super::encode::{dump_payload, file_header, AccessHint, Encoder};
use super::{opcode, types, Limits, CRC64};
use crate::keyspace::types::zset::{AddFlags, Limits as ZLimits};
use crate::keyspace::types::{Hash, List, Set, ZSet};
use crate::keyspace::Value;

const LIM: Limits = Limits {
    hash_entries: 512,
    hash_value: 64,
    set_intset: 512,
    zset_entries: 128,
    zset_value: 64,
};

fn list(items: &[&[u8]]) -> Value {
    let mut l = List::new();
    for i in items {
        l.push_back(i);
    }
    Value::List(Box::new(l))
}

fn set(items: &[&[u8]]) -> Value {
    let mut s = Set::for_member(items[0]);
    for i in items {
        s.add(i, 512);
    }
    Value::Set(Box::new(s))
}

fn hash(pairs: &[(&[u8], &[u8])]) -> Value {
    let mut h = Hash::new();
    for (f, v) in pairs {
        h.set(f, v, 512, 64);
    }
    Value::Hash(h)
}

fn zset(pairs: &[(f64, &[u8])]) -> Value {
    let mut z = ZSet::new(false);
    for (s, m) in pairs {
        z.add(*s, m, AddFlags::default(), ZLimits { entries: 128, value: 64 });
    }
    Value::ZSet(z)
}

fn roundtrip(v: &Value) -> Value {
    for compress in [true, false] {
        let p = dump_payload(v, compress);
        assert!(verify_payload(&p, false));
        let back = payload_value(&p, &LIM).unwrap_or_else(|e| panic!("{e} for {v:?}"));
        assert_eq!(&back, v);
        assert_eq!(back.encoding(), v.encoding(), "{v:?}");
    }
    payload_value(&dump_payload(v, true), &LIM).unwrap()
}

fn big_list(n: usize, len: usize) -> Value {
    let mut l = List::new();
    for i in 0..n {
        let mut e = format!("{i}-").into_bytes();
        e.resize(len.max(e.len()), b'x');
        l.push_back(&e);
    }
    Value::List(Box::new(l))
}

#[test]
fn crc64_is_redis_crc64() {
    // crc64.c's self-test value.
    assert_eq!(CRC64.checksum(b"123456789"), 0xe9c6d914c4b8d9ca);
}

#[test]
fn every_type_and_encoding_round_trips() {
    roundtrip(&Value::from_bytes(b"hello"));
    roundtrip(&Value::from_bytes(b"12345"));
    roundtrip(&Value::from_bytes(b"-9223372036854775808"));
    roundtrip(&Value::from_bytes(b"9223372036854775808"));
    roundtrip(&Value::from_bytes(b"007"));
    roundtrip(&Value::from_bytes(&[b'z'; 100]));
    roundtrip(&Value::from_bytes(&b"abcdefghij".repeat(100)));
    roundtrip(&Value::from_bytes(b""));
    roundtrip(&list(&[b"a", b"1", b"", b"-5", &[b'q'; 5000]]));
    roundtrip(&big_list(3000, 10));
    roundtrip(&big_list(50, 300));
    roundtrip(&set(&[b"1", b"2", b"-70000", b"9223372036854775807"]));
    roundtrip(&set(&[b"1", b"x", b"y"]));
    let many: Vec<Vec<u8>> = (0..600).map(|i| i.to_string().into_bytes()).collect();
    let refs: Vec<&[u8]> = many.iter().map(|v| &v[..]).collect();
    let s = roundtrip(&set(&refs));
    assert_eq!(s.encoding(), "hashtable");
    roundtrip(&hash(&[(b"f", b"v"), (b"n", b"12"), (b"neg", b"-3")]));
    roundtrip(&hash(&[(b"f", &[b'v'; 100]), (b"g", b"1")]));
    let fields: Vec<(Vec<u8>, Vec<u8>)> = (0..700).map(|i| (format!("f{i}").into_bytes(), format!("{i}").into_bytes())).collect();
    let refs: Vec<(&[u8], &[u8])> = fields.iter().map(|(a, b)| (&a[..], &b[..])).collect();
    assert_eq!(roundtrip(&hash(&refs)).encoding(), "hashtable");
    roundtrip(&zset(&[
        (1.0, b"a"),
        (2.5, b"b"),
        (-0.125, b"c"),
        (f64::INFINITY, b"d"),
        (f64::NEG_INFINITY, b"e"),
        (1e300, b"f"),
    ]));
    let members: Vec<(f64, Vec<u8>)> = (0..300).map(|i| ((i % 17) as f64 * 0.5, format!("m{i}").into_bytes())).collect();
    let mut z = ZSet::new(false);
    for (s, m) in &members {
        z.add(*s, m, AddFlags::default(), ZLimits { entries: 128, value: 64 });
    }
    assert_eq!(roundtrip(&Value::ZSet(z)).encoding(), "skiplist");
}

/// DUMP output Redis 7.0.15 produced for the same values (rdbcompression yes).
#[test]
fn dump_payloads_are_byte_identical_to_redis() {
    let cases: Vec<(Value, &[u8])> = vec![
        (Value::from_bytes(b"123456"), b"\x00\xc2@\xe2\x01\x00\n\x00C&G\xf4C\x19r\x83"),
        (Value::from_bytes(b"12345678901"), b"\x00\x0b12345678901\n\x000NR\xd7'\x17e\x10"),
        (
            Value::from_bytes(&[b'a'; 32]),
            b"\x00\xc3\t \x01aa\xe0\x13\x00\x01aa\n\x00\n\xaa\x0e\xcb\xf5\xef0\xf3",
        ),
        (
            Value::from_bytes(b"hello hello hello hello hello world world world"),
            b"\x00\xc3\x17/\x06hello h\xe0\x0e\x05\x04world\xe0\x01\x05\x01ld\n\x00R\x99\xa4g\x9d_I\x99",
        ),
        (
            list(&[b"a", b"1"]),
            b"\x12\x01\x02\x0c\x0c\x00\x00\x00\x02\x00\x81a\x02\x01\x01\xff\n\x00\x94\x96+#\xac\x17\xaa\x85",
        ),
        (
            set(&[b"1", b"2", b"3", b"70000"]),
            b"\x0b\x18\x04\x00\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00p\x11\x01\x00\n\x00\xef.e!\xe3\x85\xa2*",
        ),
        (
            hash(&[(b"f", b"v"), (b"n", b"12")]),
            b"\x10\x12\x12\x00\x00\x00\x04\x00\x81f\x02\x81v\x02\x81n\x02\x0c\x01\xff\n\x00\x016\x94\x81\xd3[\x89t",
        ),
        (
            zset(&[(1.0, b"a"), (2.5, b"b")]),
            b"\x11\x14\x14\x00\x00\x00\x04\x00\x81a\x02\x01\x01\x81b\x02\x832.5\x04\xff\n\x00\xd4Ln\xa4\xf6D\xd9\xd7",
        ),
    ];
    for (v, want) in cases {
        assert_eq!(dump_payload(&v, true), want, "{v:?}");
        assert_eq!(payload_value(want, &LIM).unwrap(), v);
    }
}

#[test]
fn payload_checks() {
    let p = dump_payload(&Value::from_bytes(b"x"), true);
    assert!(!verify_payload(&p[..9], false));
    let mut bad = p.clone();
    bad[1] ^= 1;
    assert!(!verify_payload(&bad, false));
    assert!(verify_payload(&bad, true), "skip-checksum accepts");
    let mut newer = p.clone();
    let n = newer.len();
    newer[n - 10] = 11;
    assert!(!verify_payload(&newer, true), "newer RDB version");
    // An empty collection and an unknown type are bad data.
    let mut e = Encoder::new(false);
    e.put_u8(types::LIST_QUICKLIST_2);
    e.put_len(0);
    assert_eq!(Reader::new(&e.buf[1..]).value(types::LIST_QUICKLIST_2, &LIM), Err(LoadError::Empty));
    assert!(payload_value(&[200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], &LIM).is_err());
}

/// The old encodings and plain lists, written by hand as old Redis versions did.
#[test]
fn older_encodings_load() {
    let mut e = Encoder::new(false);
    // LIST (type 1): count + strings.
    e.put_len(3);
    for s in [&b"a"[..], b"1", b"ccc"] {
        e.put_string(s);
    }
    let v = Reader::new(&e.buf).value(types::LIST, &LIM).unwrap();
    assert_eq!(v, list(&[b"a", b"1", b"ccc"]));
    // ZSET (type 3): string scores, with the special lengths for inf/nan.
    let mut e = Encoder::new(false);
    e.put_len(3);
    e.put_string(b"a");
    e.buf.extend_from_slice(b"\x031.5");
    e.put_string(b"b");
    e.put_u8(254);
    e.put_string(b"c");
    e.put_u8(255);
    let v = Reader::new(&e.buf).value(types::ZSET, &LIM).unwrap();
    assert_eq!(v, zset(&[(1.5, b"a"), (f64::INFINITY, b"b"), (f64::NEG_INFINITY, b"c")]));
    assert_eq!(v.encoding(), "listpack");
    let mut e = Encoder::new(false);
    e.put_len(1);
    e.put_string(b"a");
    e.put_u8(253);
    assert!(Reader::new(&e.buf).value(types::ZSET, &LIM).is_err(), "NaN score");
    // HASH_ZIPMAP.
    let mut e = Encoder::new(false);
    e.put_string(b"\x02\x03foo\x03\x02bar\x00\x00\x01k\x01\x00v\xff");
    let v = Reader::new(&e.buf).value(types::HASH_ZIPMAP, &LIM).unwrap();
    assert_eq!(v, hash(&[(b"foo", b"bar"), (b"k", b"v")]));
    assert_eq!(v.encoding(), "listpack");
    // A ziplist (LIST_ZIPLIST, HASH_ZIPLIST, ZSET_ZIPLIST, a LIST_QUICKLIST node).
    let zl = |entries: &[&[u8]]| {
        let mut body = Vec::new();
        let mut prev = 0usize;
        let mut tail = 10;
        for s in entries {
            tail = 10 + body.len();
            body.push(prev as u8);
            body.push(s.len() as u8);
            body.extend_from_slice(s);
            prev = s.len() + 2;
        }
        let mut z = Vec::new();
        z.extend_from_slice(&((10 + body.len() + 1) as u32).to_le_bytes());
        z.extend_from_slice(&(tail as u32).to_le_bytes());
        z.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        z.extend_from_slice(&body);
        z.push(0xff);
        z
    };
    let mut e = Encoder::new(false);
    e.put_string(&zl(&[b"x", b"y"]));
    assert_eq!(Reader::new(&e.buf).value(types::LIST_ZIPLIST, &LIM).unwrap(), list(&[b"x", b"y"]));
    assert_eq!(Reader::new(&e.buf).value(types::HASH_ZIPLIST, &LIM).unwrap(), hash(&[(b"x", b"y")]));
    let mut e = Encoder::new(false);
    e.put_string(&zl(&[b"m", b"2.5", b"n", b"3"]));
    assert_eq!(Reader::new(&e.buf).value(types::ZSET_ZIPLIST, &LIM).unwrap(), zset(&[(2.5, b"m"), (3.0, b"n")]));
    let mut e = Encoder::new(false);
    e.put_len(2);
    e.put_string(&zl(&[b"a", b"b"]));
    e.put_string(&zl(&[b"c"]));
    assert_eq!(Reader::new(&e.buf).value(types::LIST_QUICKLIST, &LIM).unwrap(), list(&[b"a", b"b", b"c"]));
    // Duplicates are corrupt.
    let mut e = Encoder::new(false);
    e.put_string(&zl(&[b"x", b"1", b"x", b"2"]));
    assert!(Reader::new(&e.buf).value(types::HASH_ZIPLIST, &LIM).is_err());
}

/// Loading converts as Redis's loader does under the configured limits.
#[test]
fn loaded_encodings_follow_the_limits() {
    let small = Limits {
        hash_entries: 2,
        hash_value: 4,
        set_intset: 2,
        zset_entries: 2,
        zset_value: 4,
    };
    let h = dump_payload(&hash(&[(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]), true);
    assert_eq!(payload_value(&h, &small).unwrap().encoding(), "hashtable");
    // A listpack is not converted for long values (only the count is checked) ...
    let h = dump_payload(&hash(&[(b"a", b"123456789")]), true);
    assert_eq!(payload_value(&h, &small).unwrap().encoding(), "listpack");
    // ... but a ZSET_2 is packed only when both limits allow.
    let mut z = ZSet::new(true);
    z.insert_new(1.0, b"abcdefgh");
    let p = dump_payload(&Value::ZSet(z.clone()), true);
    assert_eq!(payload_value(&p, &small).unwrap().encoding(), "skiplist");
    assert_eq!(payload_value(&p, &LIM).unwrap().encoding(), "listpack");
    let s = dump_payload(&set(&[b"1", b"2", b"3"]), true);
    assert_eq!(payload_value(&s, &small).unwrap().encoding(), "hashtable");
}

fn sample_file(checksum: bool) -> Vec<u8> {
    let mut f = file_header(1_700_000_000, 123456, false);
    let mut e = Encoder::new(true);
    e.put_db_start(0, 3, 1);
    e.put_key_value(b"s", &Value::from_bytes(b"v"), 0, AccessHint::None);
    e.put_key_value(b"l", &list(&[b"a", b"b"]), 4_000_000_000_000, AccessHint::Idle(7));
    e.put_key_value(b"z", &zset(&[(1.0, b"a")]), 0, AccessHint::Freq(9));
    e.put_db_start(3, 1, 0);
    e.put_key_value(b"h", &hash(&[(b"f", b"v")]), 0, AccessHint::None);
    e.put_u8(opcode::EOF);
    f.extend_from_slice(&e.buf);
    let crc = if checksum { CRC64.checksum(&f) } else { 0 };
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

/// Every record of a file, values decoded: the loader's work in one thread.
type Loaded = (u64, Vec<u8>, Value, Option<i64>);

fn read_all(f: &[u8]) -> Result<Vec<Loaded>, String> {
    let mut p = FileParser::new(f).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    loop {
        match p.next_record().map_err(|e| e.to_string())? {
            Record::Key(k) => {
                let v = Reader::at(f, k.value_at).value(k.rtype, &LIM).map_err(|e| e.to_string())?;
                out.push((k.db, k.key.to_vec(), v, k.expire_ms));
            }
            Record::Eof(Some(sum)) => {
                if sum != 0 && sum != p.computed_crc() {
                    return Err("RDB CRC error".into());
                }
                return Ok(out);
            }
            Record::Eof(None) => return Ok(out),
            _ => {}
        }
    }
}

#[test]
fn whole_files_parse() {
    let f = sample_file(true);
    let got = read_all(&f).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[1].1, b"l");
    assert_eq!(got[1].3, Some(4_000_000_000_000));
    assert_eq!(got[3].0, 3);
    assert_eq!(got[3].2, hash(&[(b"f", b"v")]));
    assert!(read_all(&sample_file(false)).is_ok(), "a zero checksum is not checked");
    let mut aux = FileParser::new(&f).unwrap();
    match aux.next_record().unwrap() {
        Record::Aux(k, v) => assert_eq!((&k[..], &v[..]), (&b"redis-ver"[..], crate::REDIS_VERSION.as_bytes())),
        r => panic!("{r:?}"),
    }
    assert!(FileParser::new(b"REDIS0011").is_err());
    assert!(FileParser::new(b"RUBIS0010").is_err());
}

/// Truncations and bit flips of a valid file are errors, never panics (a
/// flip may also leave a file that still reads: a changed string byte).
#[test]
fn damaged_files_never_panic() {
    let mut f = sample_file(true);
    // A bigger file: more structure to damage.
    let tail = f.split_off(f.len() - 9);
    let mut e = Encoder::new(true);
    e.put_db_start(5, 4, 0);
    e.put_key_value(b"big", &big_list(200, 20), 0, AccessHint::None);
    e.put_key_value(b"ints", &set(&[b"1", b"5", b"-3"]), 0, AccessHint::None);
    e.put_key_value(b"txt", &Value::from_bytes(&b"compress me ".repeat(20)), 0, AccessHint::None);
    e.put_key_value(b"zz", &zset(&[(0.5, b"x"), (7.0, b"y")]), 0, AccessHint::None);
    f.extend_from_slice(&e.buf);
    f.extend_from_slice(&tail[..1]);
    let crc = CRC64.checksum(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    assert!(read_all(&f).is_ok());
    for cut in 0..f.len() {
        assert!(read_all(&f[..cut]).is_err(), "truncated at {cut} must fail");
    }
    let mut x = 0x9E3779B97F4A7C15u64;
    for _ in 0..20_000 {
        let mut d = f.clone();
        let flips = 1 + crate::util::rand::next(&mut x) % 3;
        for _ in 0..flips {
            // Past the magic: a damaged version number can turn the checksum off.
            let i = 9 + (crate::util::rand::next(&mut x) % (d.len() - 9) as u64) as usize;
            d[i] ^= 1 << (crate::util::rand::next(&mut x) % 8);
        }
        // With the checksum any change is caught; without it, no panic either.
        if d != f {
            assert!(read_all(&d).is_err(), "a flipped file passed its checksum");
        }
        let n = d.len();
        d[n - 8..].copy_from_slice(&[0; 8]);
        let _ = read_all(&d);
    }
}

#[test]
fn damaged_payloads_never_panic() {
    let vals = [
        big_list(100, 5),
        set(&[b"1", b"2", b"x"]),
        set(&[b"1", b"2"]),
        hash(&[(b"a", b"1"), (b"b", b"x")]),
        zset(&[(1.0, b"a"), (2.0, b"b")]),
        Value::from_bytes(&b"abc".repeat(30)),
    ];
    let mut x = 42u64;
    for v in vals {
        let p = dump_payload(&v, true);
        for cut in 0..p.len() {
            let _ = payload_value(&p[..cut], &LIM);
        }
        for _ in 0..3000 {
            let mut d = p.clone();
            let i = (crate::util::rand::next(&mut x) % (d.len() - 10) as u64) as usize;
            d[i] = crate::util::rand::next(&mut x) as u8;
            let _ = payload_value(&d, &LIM);
        }
    }
}

fn stream_value() -> Value {
    use crate::keyspace::types::stream::{Group, Nack, StreamId};
    let mut s = crate::keyspace::types::Stream::new();
    for i in 1..=230u64 {
        let f: &[u8] = if i % 5 == 0 { b"other" } else { b"f" };
        let v = i.to_string();
        s.append(&[f, v.as_bytes(), b"name", b"some text"], Some((StreamId::new(i, i % 3), true)), 0)
            .unwrap();
    }
    s.delete(StreamId::new(7, 1));
    s.delete(StreamId::new(150, 0));
    s.max_deleted_entry_id = StreamId::new(150, 0);
    let mut g = Group::new(StreamId::new(9, 0), 9);
    g.consumers.insert(
        b"alice"[..].into(),
        crate::keyspace::types::stream::Consumer {
            seen_time: 1_700_000_000_000,
            pel: [StreamId::new(3, 0), StreamId::new(4, 1)].into_iter().collect(),
        },
    );
    for id in [StreamId::new(3, 0), StreamId::new(4, 1)] {
        g.pel.insert(
            id,
            Nack {
                delivery_time: 1_700_000_000_001,
                delivery_count: 2,
                consumer: b"alice"[..].into(),
            },
        );
    }
    s.groups.insert(b"g"[..].into(), g);
    s.groups.insert(b"empty"[..].into(), Group::new(StreamId::MIN, -1));
    Value::Stream(Box::new(s))
}

/// A stream survives DUMP/RESTORE unchanged, and damaged stream payloads are
/// errors or streams that every operation can still walk: never a panic.
#[test]
fn streams_round_trip_and_damage_never_panics() {
    use crate::keyspace::types::stream::{StreamId, TrimBy};
    let v = stream_value();
    roundtrip(&v);
    let p = dump_payload(&v, false);
    let mut x = 7u64;
    let exercise = |v: Value| {
        if let Value::Stream(mut s) = v {
            s.range(StreamId::MIN, StreamId::MAX, false, |_, _| true);
            s.range(StreamId::MIN, StreamId::MAX, true, |_, _| true);
            let _ = s.rax_nodes();
            s.delete(StreamId::new(10, 1));
            s.trim(TrimBy::MaxLen(50), false, 0);
            s.trim(TrimBy::MinId(StreamId::new(200, 0)), true, 100);
            let _ = s.append(&[b"a", b"b"], None, 5);
        }
    };
    for cut in 0..p.len() {
        if let Ok(v) = payload_value(&p[..cut], &LIM) {
            exercise(v);
        }
    }
    for _ in 0..4000 {
        let mut d = p.clone();
        let i = (crate::util::rand::next(&mut x) % (d.len() - 10) as u64) as usize;
        d[i] = crate::util::rand::next(&mut x) as u8;
        if let Ok(v) = payload_value(&d, &LIM) {
            exercise(v);
        }
    }
    // Skipping a stream in a file lands where its value ends.
    let mut r = Reader::new(&p);
    let t = r.u8().unwrap();
    r.skip_value(t).unwrap();
    assert_eq!(r.pos(), p.len() - 10);
}

/// Redis 5/6's STREAM_LISTPACKS (no first ID, tombstone, counters): the
/// missing fields are derived as rdbLoadObject derives them.
#[test]
fn old_stream_encoding_loads_with_derived_counters() {
    use crate::keyspace::types::stream::StreamId;
    let mut s = crate::keyspace::types::Stream::new();
    for i in 1..=5u64 {
        s.append(&[b"f", b"v"], Some((StreamId::new(i, 0), true)), 0).unwrap();
    }
    s.delete(StreamId::new(1, 0));
    let mut e = Encoder::new(false);
    e.put_u8(types::STREAM_LISTPACKS);
    e.put_len(s.node_count() as u64);
    for (id, lp) in s.nodes() {
        e.put_string(&id.encode());
        e.put_string(lp);
    }
    e.put_len(s.length);
    e.put_len(5);
    e.put_len(0);
    e.put_len(2);
    for (name, last) in [(&b"early"[..], 0u64), (&b"late"[..], 5)] {
        e.put_string(name);
        e.put_len(last);
        e.put_len(0);
        e.put_len(1);
        e.buf.extend_from_slice(&StreamId::new(2, 0).encode());
        e.put_millis(1_600_000_000_000);
        e.put_len(3);
        e.put_len(1);
        e.put_string(b"alice");
        e.put_millis(1_600_000_000_001);
        e.put_len(1);
        e.buf.extend_from_slice(&StreamId::new(2, 0).encode());
    }
    e.buf.extend_from_slice(&9u16.to_le_bytes());
    let crc = CRC64.checksum(&e.buf);
    e.buf.extend_from_slice(&crc.to_le_bytes());
    assert!(verify_payload(&e.buf, false));
    let Value::Stream(got) = payload_value(&e.buf, &LIM).unwrap() else {
        panic!("a stream")
    };
    assert_eq!(got.length, 4);
    assert_eq!(got.entries_added, 4, "the length, as Redis assumes");
    assert_eq!(got.first_id, StreamId::new(2, 0));
    assert_eq!(got.max_deleted_entry_id, StreamId::MIN);
    assert_eq!(got.groups[&b"early"[..]].entries_read, 0);
    assert_eq!(got.groups[&b"late"[..]].entries_read, 4);
    assert_eq!(got.groups[&b"late"[..]].pel[&StreamId::new(2, 0)].delivery_count, 3);
    // Then it is written as Redis 7.0 writes it.
    assert_eq!(dump_payload(&Value::Stream(got), false)[0], types::STREAM_LISTPACKS_2);
}
