//! The geo family against a real redis-server 7.0.15, byte for byte, in
//! RESP2 and RESP3, Tessera at 2 shards with sources and destinations on
//! both shards ("a"/"b", "c"/"d" and "k0"/"k2" are on different shards).

mod common;

use common::diff::*;

/// A deterministic pseudo-random stream (no dependency on a crate).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64) / ((1u64 << 53) as f64)
    }
}

const CITIES: &[(&str, f64, f64)] = &[
    ("palermo", 13.361389, 38.115556),
    ("paris", 2.352222, 48.856613),
    ("nyc", -74.006, 40.7128),
    ("tokyo", 139.6917, 35.6895),
    ("sydney", 151.2093, -33.8688),
];

/// 200 points around the cities (up to ~100 km off), as GEOADD arguments.
fn dataset(d: &mut Diff, key: &str) {
    let mut r = Lcg(42);
    let mut args: Vec<String> = vec!["GEOADD".into(), key.into()];
    for i in 0..200 {
        let (name, lon, lat) = CITIES[i % CITIES.len()];
        let dlon = (r.next() - 0.5) * 2.0;
        let dlat = (r.next() - 0.5) * 2.0;
        args.push(format!("{:.6}", lon + dlon));
        args.push(format!("{:.6}", lat + dlat));
        args.push(format!("{name}-{i}"));
    }
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    d.c(&a);
}

fn script_basic(d: &mut Diff) {
    d.ss(&[
        "GEOADD a 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
        "GEOADD a NX 13.361389 38.115556 Palermo 12 37 Agrigento",
        "GEOADD a XX 13.5 38.2 Palermo 11 36 New",
        "GEOADD a XX CH 13.6 38.3 Palermo 11 36 New",
        "GEOADD a CH NX 13.6 38.3 Palermo 11.5 36.5 New2",
        "GEOADD a CH 13.6 38.3 Palermo",
        "GEOADD a NX XX 1 1 x",
        "GEOADD a 1 1",
        "GEOADD a 1 1 x 2",
        "GEOADD a CH 1 1",
        "GEOADD a 181 10 bad",
        "GEOADD a -180.000001 10 bad",
        "GEOADD a 10 85.06 bad",
        "GEOADD a 10 -85.05112879 bad",
        "GEOADD a 1 1 ok 200 200 bad",
        "GEOADD a abc 10 bad",
        "GEOADD a 10 nan bad",
        "GEOADD a inf 10 bad",
        "GEOADD a 180 85.05112878 ne -180 -85.05112878 sw 0 0 zero -0 0 negzero",
        "GEOADD a 179.9999 0.5 am1 -179.9999 0.5 am2 179.5 -10 am3 -179.5 -10 am4",
        "GEOADD a 0 84.9 np1 90 84.8 np2 180 84.7 np3 -90 -84.9 sp1",
        "ZRANGE a 0 -1 WITHSCORES",
        "OBJECT ENCODING a",
        "ZSCORE a Palermo",
        "ZSCORE a ne",
        "ZSCORE a sw",
        "GEOPOS a Palermo Catania nosuch ne sw zero negzero am1 am2 np3 sp1",
        "GEOPOS a",
        "GEOPOS nokey a b",
        "GEOHASH a Palermo Catania nosuch ne sw zero am1 np1",
        "GEOHASH a",
        "GEOHASH nokey x",
        "GEODIST a Palermo Catania",
        "GEODIST a Palermo Catania m",
        "GEODIST a Palermo Catania KM",
        "GEODIST a Palermo Catania ft",
        "GEODIST a Palermo Catania mi",
        "GEODIST a Palermo Catania yd",
        "GEODIST a Palermo Catania km extra",
        "GEODIST a Palermo nosuch",
        "GEODIST a Palermo Palermo",
        "GEODIST a ne sw km",
        "GEODIST a am1 am2",
        "GEODIST a np1 np3 mi",
        "GEODIST nokey a b",
        "GEODIST nokey a b yd",
        // a plain zset member with a non-geo score
        "ZADD a 12345678901234567890 huge -5 neg 0.5 half",
        "GEOPOS a huge neg half",
        "GEOHASH a neg half",
        "GEODIST a neg half",
        "GEOSEARCH a FROMLONLAT -180 -85 BYRADIUS 100 km WITHHASH WITHDIST WITHCOORD",
        "GEOSEARCH a FROMLONLAT 180 85 BYRADIUS 100 km WITHHASH WITHDIST WITHCOORD",
        "GEOSEARCH a FROMMEMBER half BYBOX 10 10 km WITHHASH",
        // wrong types
        "SET str v",
        "GEOADD str 1 1 x",
        "GEOADD str 1000 1 x",
        "GEOPOS str x",
        "GEOHASH str x",
        "GEODIST str a b",
        "GEODIST str a b yd",
        "GEOSEARCH str FROMLONLAT 0 0 BYRADIUS 1 km",
        "GEOSEARCH str FROMMEMBER x BYRADIUS 1 km",
        "GEORADIUS str 0 0 1 km",
        "GEORADIUS_RO str 0 0 1 km",
        "GEORADIUSBYMEMBER str x 1 km",
        "GEORADIUSBYMEMBER_RO str x 1 km",
        "GEOSEARCHSTORE b str FROMLONLAT 0 0 BYRADIUS 1 km",
        "GEORADIUS str 0 0 1 km STORE b",
        "GEOSEARCHSTORE str a FROMLONLAT 13 38 BYRADIUS 500 km",
        "TYPE str",
        "GEOADD c 1 1 x",
        "RPUSH lst x",
        "GEOADD lst 1 1 x",
    ]);
}

fn script_errors(d: &mut Diff) {
    d.ss(&[
        "GEOADD a 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
        "GEOSEARCH a",
        "GEOSEARCH a FROMLONLAT 15 37",
        "GEOSEARCH a BYRADIUS 200 km",
        "GEOSEARCH a FROMLONLAT 15 37 BYRADIUS 200 km FROMMEMBER Palermo",
        "GEOSEARCH a FROMMEMBER Palermo FROMLONLAT 15 37 BYRADIUS 200 km",
        "GEOSEARCH a FROMLONLAT 15 37 BYRADIUS 200 km BYBOX 1 1 km",
        "GEOSEARCH a FROMLONLAT 15 37 BYBOX 1 1 km BYRADIUS 200 km",
        "geosearch a FROMLONLAT 15 37",
        "GeoSearch a BYBOX 1 1 km",
        "GEOSEARCH a FROMLONLAT 15 37 BYRADIUS x km",
        "GEOSEARCH a FROMLONLAT 15 37 BYRADIUS -1 km",
        "GEOSEARCH a FROMLONLAT 15 37 BYRADIUS 1 yd",
        "GEOSEARCH a FROMLONLAT 15 37 BYBOX x 1 km",
        "GEOSEARCH a FROMLONLAT 15 37 BYBOX 1 x km",
        "GEOSEARCH a FROMLONLAT 15 37 BYBOX -1 1 km",
        "GEOSEARCH a FROMLONLAT 15 37 BYBOX 1 -1 km",
        "GEOSEARCH a FROMLONLAT 15 37 BYBOX 1 1 yd",
        "GEOSEARCH a FROMLONLAT 15 37 BYBOX 1 1",
        "GEOSEARCH a FROMLONLAT 200 37 BYRADIUS 1 km",
        "GEOSEARCH a FROMLONLAT x 37 BYRADIUS 1 km",
        "GEOSEARCH a FROMLONLAT 15 BYRADIUS 1 km",
        "GEOSEARCH a FROMMEMBER nosuch BYRADIUS 1 km",
        "GEOSEARCH a FROMMEMBER Palermo BYRADIUS 1 km COUNT 0",
        "GEOSEARCH a FROMMEMBER Palermo BYRADIUS 1 km COUNT -1",
        "GEOSEARCH a FROMMEMBER Palermo BYRADIUS 1 km COUNT x",
        "GEOSEARCH a FROMMEMBER Palermo BYRADIUS 1 km COUNT",
        "GEOSEARCH a FROMMEMBER Palermo BYRADIUS 1 km ANY",
        "GEOSEARCH a FROMMEMBER Palermo BYRADIUS 1 km STORE b",
        "GEOSEARCH a FROMMEMBER Palermo BYRADIUS 1 km STOREDIST",
        "GEOSEARCH a FROMMEMBER Palermo BYRADIUS 1 km foo",
        "GEOSEARCH nokey FROMMEMBER Palermo BYRADIUS 1 km",
        "GEOSEARCH nokey FROMMEMBER Palermo",
        "GEOSEARCH nokey FROMLONLAT 1 1 BYRADIUS 1 km WITHDIST",
        "GEOSEARCHSTORE b a FROMMEMBER Palermo BYRADIUS 200 km WITHDIST",
        "GEOSEARCHSTORE b a FROMMEMBER Palermo BYRADIUS 200 km WITHCOORD",
        "GEOSEARCHSTORE b a FROMMEMBER Palermo BYRADIUS 200 km STORE c",
        "GEOSEARCHSTORE b a FROMMEMBER Palermo",
        "GEOSEARCHSTORE b nokey FROMMEMBER Palermo BYBOX 1 1 km",
        "GEORADIUS a 15 37 200 km STORE b WITHDIST",
        "GEORADIUS a 15 37 200 km WITHHASH STOREDIST b",
        "GEORADIUS a 15 37 200 km STORE",
        "GEORADIUS a 15 37 200 km FROMMEMBER Palermo",
        "GEORADIUS a 15 37 200 km BYBOX 1 1 km",
        "GEORADIUS a 15 37 x km",
        "GEORADIUS a 15 37 -5 km",
        "GEORADIUS a 15 37 5 parsec",
        "GEORADIUS a 15 100 5 km",
        "GEORADIUS a 15 37 200 km ANY",
        "GEORADIUS a 15 37 200 km COUNT 0",
        "GEORADIUS_RO a 15 37 200 km STORE b",
        "GEORADIUS_RO a 15 37 200 km STOREDIST b",
        "GEORADIUSBYMEMBER a nosuch 200 km",
        "GEORADIUSBYMEMBER a Palermo x km",
        "GEORADIUSBYMEMBER a Palermo 200 km WITHDIST STORE b",
        "GEORADIUSBYMEMBER_RO a Palermo 200 km STORE b",
        "GEORADIUSBYMEMBER nokey nosuch 200 km",
        "GEORADIUSBYMEMBER nokey nosuch x km",
        "GEORADIUSBYMEMBER nokey nosuch 200 km STORE b WITHDIST",
        "GEORADIUSBYMEMBER nokey nosuch 200 km foo",
        "GEORADIUS nokey 15 37 200 km",
        "GEORADIUS nokey 15 37 200 km STORE b",
        "GEORADIUS a 15 37",
        "GEOSEARCH a FROMMEMBER Palermo BYRADIUS 0 km",
        "GEOSEARCH a FROMMEMBER Palermo BYBOX 0 0 m WITHCOORD WITHDIST WITHHASH",
        // pathological but valid numbers
        "GEOSEARCH a FROMLONLAT 15 37 BYRADIUS inf km WITHDIST",
        "GEOSEARCH a FROMLONLAT 15 37 BYRADIUS 1e308 km WITHDIST",
        "GEOSEARCH a FROMLONLAT 15 37 BYBOX inf inf m WITHDIST",
        "GEOSEARCH a FROMLONLAT 15 37 BYBOX 1e308 1 km",
        "GEOSEARCH a FROMLONLAT 15 37 BYRADIUS 1e-300 m",
        "GEOSEARCH a FROMLONLAT 15 37 BYRADIUS 0x100 km ASC",
        "GEOSEARCH a FROMLONLAT -0 -0 BYRADIUS 20000 km DESC COUNT 9223372036854775807",
        "GEOSEARCH a FROMLONLAT 15 37 BYRADIUS 200 km COUNT 9223372036854775808",
        "GEOSEARCH a FROMLONLAT 15 37 BYRADIUS nan km",
        "GEOSEARCH a FROMLONLAT 15 37 BYRADIUS '' km",
        "GEOSEARCH a FROMLONLAT ' 15' 37 BYRADIUS 200 km",
        "GEOADD a 180.0000000000001 0 x",
        "GEOADD a 1e300 0 x",
        "GEOADD a -200 -0 x",
        "GEOADD a 0 -1e-7 ok -inf 0 x",
        "GEOADD a 0 85.0511287800000001 x",
        "GEOADD a 0 85.05112878000001 x",
        "GEOSEARCH a FROMLONLAT 0 -90 BYRADIUS 1 km",
        "GEORADIUS a 0.1234567 95.55555555 1 km",
        "GEOADD a 1e-320 -1e-320 tiny",
        "GEOPOS a tiny",
        "GEODIST a tiny Palermo mi",
    ]);
}

/// Every option combination of the searches on the 200-point dataset.
fn script_search(d: &mut Diff) {
    dataset(d, "a");
    d.ss(&[
        "ZCARD a",
        "OBJECT ENCODING a",
        "ZRANGE a 0 9 WITHSCORES",
        "GEOPOS a palermo-0 paris-1 nyc-2 tokyo-3 sydney-4",
        "GEOHASH a palermo-0 paris-1 nyc-2 tokyo-3 sydney-4",
        "GEODIST a palermo-0 paris-1 km",
        "GEODIST a nyc-2 tokyo-3 mi",
        "GEODIST a sydney-4 sydney-9 ft",
    ]);
    let centres: &[&[&str]] = &[
        &["FROMLONLAT", "13.361389", "38.115556"],
        &["FROMMEMBER", "paris-1"],
        &["FROMLONLAT", "-74", "40.7"],
        &["FROMMEMBER", "sydney-4"],
        &["FROMLONLAT", "139.7", "35.7"],
    ];
    let shapes: &[&[&str]] = &[
        &["BYRADIUS", "50", "km"],
        &["BYRADIUS", "120000", "m"],
        &["BYRADIUS", "40", "mi"],
        &["BYRADIUS", "300000", "ft"],
        &["BYBOX", "100", "60", "km"],
        &["BYBOX", "200", "200", "km"],
        &["BYBOX", "50", "120", "mi"],
        &["BYRADIUS", "2000", "km"],
    ];
    let opts: &[&[&str]] = &[
        &[],
        &["ASC"],
        &["DESC"],
        &["WITHDIST"],
        &["WITHCOORD", "ASC"],
        &["WITHHASH", "DESC"],
        &["WITHDIST", "WITHCOORD", "WITHHASH", "ASC"],
        &["COUNT", "3"],
        &["COUNT", "5", "DESC", "WITHDIST"],
        &["COUNT", "4", "ANY"],
        &["COUNT", "4", "ANY", "ASC", "WITHDIST"],
        &["COUNT", "1000", "WITHCOORD"],
        &["WITHHASH", "COUNT", "2", "ANY", "DESC"],
    ];
    for c in centres {
        for s in shapes {
            for o in opts {
                let mut cmd = vec!["GEOSEARCH", "a"];
                cmd.extend_from_slice(c);
                cmd.extend_from_slice(s);
                cmd.extend_from_slice(o);
                d.c(&cmd);
            }
        }
    }
    // GEORADIUS / GEORADIUSBYMEMBER and the _RO forms
    for o in opts {
        for base in [
            &["GEORADIUS", "a", "13.4", "38.1", "100", "km"][..],
            &["GEORADIUS_RO", "a", "2.35", "48.85", "60", "mi"][..],
            &["GEORADIUSBYMEMBER", "a", "nyc-7", "80", "km"][..],
            &["GEORADIUSBYMEMBER_RO", "a", "tokyo-8", "150000", "m"][..],
        ] {
            let mut cmd = base.to_vec();
            cmd.extend_from_slice(o);
            d.c(&cmd);
        }
    }
    // STORE / STOREDIST, destination on the other shard ("b") and on either
    // shard ("c", "d"), followed by the stored zsets
    d.ss(&[
        "GEOSEARCHSTORE b a FROMLONLAT 13.36 38.11 BYRADIUS 100 km",
        "ZRANGE b 0 -1 WITHSCORES",
        "OBJECT ENCODING b",
        "GEOSEARCHSTORE c a FROMMEMBER paris-1 BYBOX 150 150 km STOREDIST",
        "ZRANGE c 0 -1 WITHSCORES",
        "GEOSEARCHSTORE d a FROMMEMBER paris-1 BYBOX 150 150 km STOREDIST COUNT 3 DESC",
        "ZRANGE d 0 -1 WITHSCORES",
        "GEOSEARCHSTORE d a FROMMEMBER paris-1 BYBOX 150 150 km COUNT 2 ANY",
        "ZRANGE d 0 -1 WITHSCORES",
        "GEOSEARCHSTORE a a FROMMEMBER nyc-2 BYRADIUS 10000 km STOREDIST COUNT 200",
        "ZCARD a",
        "OBJECT ENCODING a",
        "ZRANGE a 0 4 WITHSCORES",
        "CONFIG SET zset-max-listpack-entries 3",
        "GEOSEARCHSTORE k0 a FROMMEMBER nyc-2 BYRADIUS 10000 km COUNT 3",
        "OBJECT ENCODING k0",
        "GEOSEARCHSTORE k0 a FROMMEMBER nyc-2 BYRADIUS 10000 km COUNT 4",
        "OBJECT ENCODING k0",
        "GEOADD k2 1 1 a 2 2 b 3 3 c",
        "OBJECT ENCODING k2",
        "GEOADD k2 4 4 d",
        "OBJECT ENCODING k2",
        "CONFIG SET zset-max-listpack-entries 128",
    ]);
    dataset(d, "a");
    d.ss(&[
        "GEORADIUS a -74 40.7 80 km STORE b",
        "ZRANGE b 0 -1 WITHSCORES",
        "GEORADIUS a -74 40.7 80 km STOREDIST k2 COUNT 4",
        "ZRANGE k2 0 -1 WITHSCORES",
        "GEORADIUS a -74 40.7 80 mi STORE k2 STOREDIST k0",
        "EXISTS k2",
        "ZRANGE k0 0 -1 WITHSCORES",
        "GEORADIUSBYMEMBER a sydney-4 90 km STOREDIST c ASC",
        "ZRANGE c 0 -1 WITHSCORES",
        "GEORADIUSBYMEMBER a sydney-4 90 km STORE d DESC COUNT 2",
        "ZRANGE d 0 -1 WITHSCORES",
        "OBJECT ENCODING d",
        // nothing found, or no source: the destination is deleted
        "GEOSEARCHSTORE b a FROMLONLAT 0 0 BYRADIUS 1 km",
        "EXISTS b",
        "GEORADIUS nokey 0 0 1 km STORE c",
        "EXISTS c",
        "GEOSEARCHSTORE d nokey FROMLONLAT 0 0 BYRADIUS 1 km",
        "EXISTS d",
        "GEOSEARCHSTORE d nokey FROMLONLAT 0 0 BYRADIUS 1 km",
        // STORE and STOREDIST: the last one wins
        "GEORADIUS a -74 40.7 80 km STOREDIST k0 STORE k2 COUNT 3",
        "EXISTS k0",
        "ZRANGE k2 0 -1 WITHSCORES",
        // equal distances: members at the same place
        "GEOADD dup 10 10 m1 10 10 m2 10 10 m3 10.1 10 far 10 10 m0 9.9 10 far2",
        "GEOSEARCH dup FROMLONLAT 10 10 BYRADIUS 50 km ASC WITHDIST",
        "GEOSEARCH dup FROMLONLAT 10 10 BYRADIUS 50 km DESC",
        "GEOSEARCH dup FROMLONLAT 10 10 BYRADIUS 50 km ASC COUNT 2",
        "GEOSEARCH dup FROMLONLAT 10 10 BYRADIUS 50 km DESC COUNT 3",
        "GEOSEARCH dup FROMLONLAT 10 10 BYRADIUS 50 km ASC",
        // inside MULTI and a script
        "MULTI",
        "GEOADD k3 1 1 x 1.01 1.01 y",
        "GEOSEARCHSTORE k1 k3 FROMLONLAT 1 1 BYRADIUS 10 km",
        "GEOSEARCH k3 FROMLONLAT 1 1 BYRADIUS 10 km WITHDIST",
        "ZRANGE k1 0 -1 WITHSCORES",
        "EXEC",
        "EVAL 'return redis.call(\"GEOSEARCHSTORE\", KEYS[1], KEYS[2], \"FROMMEMBER\", \"x\", \"BYRADIUS\", 5, \"km\", \"STOREDIST\")' 2 k0 k3",
        "ZRANGE k0 0 -1 WITHSCORES",
    ]);
}

/// Poles, the antimeridian, the huge radii where neighbour boxes repeat.
fn script_edges(d: &mut Diff) {
    let mut r = Lcg(7);
    let mut args: Vec<String> = vec!["GEOADD".into(), "k0".into()];
    for i in 0..120 {
        let (lon, lat) = match i % 4 {
            0 => (180.0 - r.next() * 2.0, (r.next() - 0.5) * 20.0),
            1 => (-180.0 + r.next() * 2.0, (r.next() - 0.5) * 20.0),
            2 => ((r.next() - 0.5) * 360.0, 85.05 - r.next() * 6.0),
            _ => ((r.next() - 0.5) * 360.0, -85.05 + r.next() * 6.0),
        };
        args.push(format!("{lon:.5}"));
        args.push(format!("{lat:.5}"));
        args.push(format!("e{i}"));
    }
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    d.c(&a);
    d.ss(&[
        "OBJECT ENCODING k0",
        "GEOSEARCH k0 FROMLONLAT 180 0 BYRADIUS 300 km ASC WITHDIST",
        "GEOSEARCH k0 FROMLONLAT -180 0 BYRADIUS 300 km DESC WITHCOORD",
        "GEOSEARCH k0 FROMLONLAT 179.9 5 BYBOX 600 1000 km ASC WITHHASH",
        "GEOSEARCH k0 FROMLONLAT -179.9 -5 BYBOX 600 1000 km",
        "GEOSEARCH k0 FROMLONLAT 0 85 BYRADIUS 500 km ASC WITHDIST",
        "GEOSEARCH k0 FROMLONLAT 100 85.05112878 BYRADIUS 1000 km WITHCOORD",
        "GEOSEARCH k0 FROMLONLAT 0 -85 BYBOX 2000 800 km ASC WITHDIST",
        "GEOSEARCH k0 FROMLONLAT 0 -85.05112878 BYRADIUS 3000 km",
        "GEOSEARCH k0 FROMLONLAT 0 0 BYRADIUS 5000 km",
        "GEOSEARCH k0 FROMLONLAT 0 0 BYRADIUS 10000 km ASC",
        "GEOSEARCH k0 FROMLONLAT 0 0 BYRADIUS 20000 km COUNT 10 ANY",
        "GEOSEARCH k0 FROMLONLAT 0 0 BYRADIUS 20000 km DESC COUNT 7 WITHDIST",
        "GEOSEARCH k0 FROMLONLAT 0 0 BYBOX 40000 20000 km WITHDIST",
        "GEOSEARCH k0 FROMMEMBER e0 BYRADIUS 0 m WITHDIST",
        "GEOSEARCH k0 FROMMEMBER e0 BYRADIUS 1 m WITHDIST WITHCOORD",
        "GEOSEARCH k0 FROMMEMBER e2 BYBOX 1000 1000 km ASC WITHDIST",
        "GEOSEARCH k0 FROMMEMBER e3 BYRADIUS 700 mi DESC WITHDIST",
        "GEORADIUS k0 180 0 1000 km ASC COUNT 5 WITHDIST",
        "GEORADIUSBYMEMBER k0 e1 500 km WITHCOORD ASC",
        "GEOSEARCHSTORE k2 k0 FROMLONLAT 180 0 BYRADIUS 400 km STOREDIST",
        "ZRANGE k2 0 -1 WITHSCORES",
    ]);
}

#[test]
fn geo_basic() {
    run_scripted("geo_basic", script_basic);
}

#[test]
fn geo_errors() {
    run_scripted("geo_errors", script_errors);
}

#[test]
fn geo_search() {
    run_scripted("geo_search", script_search);
}

#[test]
fn geo_edges() {
    run_scripted("geo_edges", script_edges);
}

/// STORE given twice: the key specs name the first destination, the command
/// stores into the last. Tessera refuses rather than write a key on a shard
/// it did not lock (Redis, single-threaded, stores into the last one).
#[test]
fn geo_store_twice_never_writes_unrouted_key() {
    let srv = common::TesseraServer::start(SHARDS, &[]);
    let mut c = srv.client();
    c.cmd(&["GEOADD", "a", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"]);
    let r = c.cmd_value(&["GEORADIUS", "a", "15", "37", "200", "km", "STORE", "b", "STORE", "c"]);
    assert!(r.is_error(), "{r:?}");
    assert_eq!(c.cmd_value(&["EXISTS", "b", "c"]).as_int(), Some(0));
    // given once, each works, across shards
    assert_eq!(c.cmd_value(&["GEORADIUS", "a", "15", "37", "200", "km", "STORE", "b"]).as_int(), Some(2));
    assert_eq!(c.cmd_value(&["GEORADIUS", "a", "15", "37", "200", "km", "STOREDIST", "c"]).as_int(), Some(2));
    assert_eq!(c.cmd_value(&["ZCARD", "b"]).as_int(), Some(2));
    assert_eq!(c.cmd_value(&["ZCARD", "c"]).as_int(), Some(2));
}

/// A seeded random run: points all over the globe (dense clusters and
/// sparse ones), random centres, shapes, units and options, byte for byte.
fn script_random(d: &mut Diff) {
    // many equal distances: the full sort (glibc's merge sort) is stable,
    // COUNT takes Redis's partial quicksort
    let mut args: Vec<String> = vec!["GEOADD".into(), "ties".into()];
    for i in 0..60 {
        args.extend(["10".into(), "10".into(), format!("m{i:02}")]);
        args.extend([format!("{}", if i % 2 == 0 { 9.9 } else { 10.1 }), "10".into(), format!("n{i:02}")]);
        args.extend([format!("{}", 10.0 + (i % 7) as f64 * 0.01), "10".into(), format!("o{i:02}")]);
    }
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    d.c(&a);
    for o in [
        &["ASC"][..],
        &["DESC"],
        &["COUNT", "10"],
        &["COUNT", "70", "DESC"],
        &["COUNT", "1", "DESC"],
        &["COUNT", "100", "ASC", "WITHDIST"],
        &["COUNT", "179"],
    ] {
        let mut cmd = vec!["GEOSEARCH", "ties", "FROMLONLAT", "10", "10", "BYRADIUS", "50", "km"];
        cmd.extend_from_slice(o);
        d.c(&cmd);
    }
    for n in (1..180).step_by(6) {
        let n = n.to_string();
        for dir in ["ASC", "DESC"] {
            d.c(&["GEOSEARCH", "ties", "FROMLONLAT", "10.02", "10", "BYBOX", "100", "10", "km", dir, "COUNT", &n]);
        }
        d.c(&["GEORADIUS", "ties", "10.03", "10", "30", "km", "COUNT", &n, "STORE", "k1"]);
        d.c(&["ZRANGE", "k1", "0", "-1", "WITHSCORES"]);
    }
    let mut r = Lcg(20240607);
    let mut args: Vec<String> = vec!["GEOADD".into(), "c".into()];
    for i in 0..300 {
        let (lon, lat) = if i % 3 == 0 {
            ((r.next() - 0.5) * 360.0, (r.next() - 0.5) * 170.0)
        } else {
            (12.0 + (r.next() - 0.5) * 4.0, 45.0 + (r.next() - 0.5) * 4.0)
        };
        args.push(format!("{lon:.7}"));
        args.push(format!("{lat:.7}"));
        args.push(format!("p{i}"));
    }
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    d.c(&a);
    let units = ["m", "km", "ft", "mi", "KM"];
    for i in 0..300 {
        let mut cmd: Vec<String> = Vec::new();
        let unit = units[(r.next() * units.len() as f64) as usize];
        let scale = match unit {
            "m" => 1000.0,
            "ft" => 3280.0,
            "mi" => 0.62,
            _ => 1.0,
        };
        let size = |r: &mut Lcg| format!("{:.3}", scale * 10f64.powf(r.next() * 4.0));
        let (lon, lat) = if r.next() < 0.6 {
            (12.0 + (r.next() - 0.5) * 5.0, 45.0 + (r.next() - 0.5) * 5.0)
        } else {
            ((r.next() - 0.5) * 360.0, (r.next() - 0.5) * 170.0)
        };
        let kind = i % 4;
        if kind == 3 {
            cmd.extend([
                "GEORADIUS".to_string(),
                "c".into(),
                format!("{lon:.6}"),
                format!("{lat:.6}"),
                size(&mut r),
                unit.into(),
            ]);
        } else {
            cmd.extend(["GEOSEARCH".to_string(), "c".into()]);
            if r.next() < 0.3 {
                cmd.extend(["FROMMEMBER".to_string(), format!("p{}", (r.next() * 300.0) as usize)]);
            } else {
                cmd.extend(["FROMLONLAT".to_string(), format!("{lon:.6}"), format!("{lat:.6}")]);
            }
            if kind == 0 {
                cmd.extend(["BYBOX".to_string(), size(&mut r), size(&mut r), unit.into()]);
            } else {
                cmd.extend(["BYRADIUS".to_string(), size(&mut r), unit.into()]);
            }
        }
        for (p, o) in [(0.5, "WITHDIST"), (0.4, "WITHCOORD"), (0.3, "WITHHASH")] {
            if r.next() < p {
                cmd.push(o.into());
            }
        }
        let x = r.next();
        if x < 0.3 {
            cmd.push("ASC".into());
        } else if x < 0.5 {
            cmd.push("DESC".into());
        }
        if r.next() < 0.4 {
            cmd.extend(["COUNT".to_string(), format!("{}", 1 + (r.next() * 20.0) as usize)]);
            if r.next() < 0.4 {
                cmd.push("ANY".into());
            }
        }
        let a: Vec<&str> = cmd.iter().map(|s| s.as_str()).collect();
        d.c(&a);
        if i % 25 == 0 {
            let m1 = format!("p{}", (r.next() * 300.0) as usize);
            let m2 = format!("p{}", (r.next() * 300.0) as usize);
            d.c(&["GEODIST", "c", &m1, &m2, unit]);
            d.c(&["GEOPOS", "c", &m1, &m2]);
            d.c(&["GEOHASH", "c", &m1, &m2]);
        }
    }
}

#[test]
fn geo_random() {
    run_scripted("geo_random", script_random);
}
