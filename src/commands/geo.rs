//! The geo family (Redis 7.0.15 geo.c): points are members of a sorted set
//! whose scores are 52-bit geohashes (`util::geohash`). GEOADD is ZADD with
//! computed scores; the searches scan the 9 geohash boxes around the centre
//! as score ranges. The STORE forms (GEORADIUS ... STORE, GEOSEARCHSTORE)
//! are plans: the search runs on the source's shard, the result is stored
//! on the destination's shard inside the same transaction.

use super::table::{Ctx, HopLost, PlanFn, Table, Tx};
use super::zsets;
use crate::keyspace::types::zset::{Limits, ZSet};
use crate::keyspace::Value;
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::util::geohash::{self, Search, Shape};
use crate::util::num::{string2d, string2ll};

pub fn register(t: &mut Table) {
    t.keyed("geoadd", geoadd);
    t.keyed("geopos", geopos);
    t.keyed("geodist", geodist);
    t.keyed("geohash", geohash_cmd);
    t.keyed("geosearch", geosearch);
    t.keyed("georadius_ro", georadius_ro);
    t.keyed("georadiusbymember_ro", georadiusbymember_ro);
    t.plan("georadius", GEORADIUS);
    t.plan("georadiusbymember", GEORADIUSBYMEMBER);
    t.plan("geosearchstore", GEOSEARCHSTORE_PLAN);
}

/// strcasecmp on the C string of an argument.
fn opt_is(arg: &[u8], word: &str) -> bool {
    let a = match memchr::memchr(0, arg) {
        Some(z) => &arg[..z],
        None => arg,
    };
    a.eq_ignore_ascii_case(word.as_bytes())
}

fn as_zset(v: &Value) -> Option<&ZSet> {
    match v {
        Value::ZSet(z) => Some(z),
        _ => None,
    }
}

/// The sorted set at `key`, None when missing; Err for another type.
fn lookup_zset<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a ZSet>, ()> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => as_zset(&e.val).map(Some).ok_or(()),
    }
}

/// extractLongLatOrReply.
fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), String> {
    let Some(x) = string2d(lon) else { return Err(err::NOT_FLOAT.into()) };
    let Some(y) = string2d(lat) else { return Err(err::NOT_FLOAT.into()) };
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&x) || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&y) {
        return Err(format!("ERR invalid longitude,latitude pair {},{}", geohash::fmt_f6(x), geohash::fmt_f6(y)));
    }
    Ok((x, y))
}

/// extractUnitOrReply: meters per unit.
fn unit(u: &[u8]) -> Result<f64, String> {
    if opt_is(u, "m") {
        Ok(1.0)
    } else if opt_is(u, "km") {
        Ok(1000.0)
    } else if opt_is(u, "ft") {
        Ok(0.3048)
    } else if opt_is(u, "mi") {
        Ok(1609.34)
    } else {
        Err("ERR unsupported unit provided. please use M, KM, FT, MI".into())
    }
}

fn reply_coord(out: &mut Reply, d: f64) {
    let mut b = Vec::with_capacity(24);
    geohash::fmt_coord(&mut b, d);
    if out.resp3 {
        out.raw(b",");
        out.raw(&b);
        out.raw(b"\r\n");
    } else {
        out.bulk(&b);
    }
}

fn reply_distance(out: &mut Reply, d: f64) {
    let mut b = Vec::with_capacity(24);
    geohash::fmt_distance(&mut b, d);
    out.bulk(&b);
}

// ---------------------------------------------------------------------------
// GEOADD
// ---------------------------------------------------------------------------

/// GEOADD key [NX|XX] [CH] lon lat member ...: validated, then run as ZADD.
fn geoadd(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let argc = args.len();
    let (mut xx, mut nx) = (false, false);
    let mut li = 2;
    while li < argc {
        let o = args.get(li);
        if opt_is(o, "nx") {
            nx = true;
        } else if opt_is(o, "xx") {
            xx = true;
        } else if !opt_is(o, "ch") {
            break;
        }
        li += 1;
    }
    if !(argc - li).is_multiple_of(3) || (xx && nx) {
        return out.error(err::SYNTAX);
    }
    let elements = (argc - li) / 3;
    // The ZADD vector: zadd key [options] score member ...
    let mut data: Vec<u8> = Vec::new();
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(li + elements * 2);
    let mut push = |data: &mut Vec<u8>, b: &[u8]| {
        let s = data.len();
        data.extend_from_slice(b);
        spans.push((s, data.len()));
    };
    push(&mut data, b"zadd");
    for i in 1..li {
        push(&mut data, args.get(i));
    }
    for i in 0..elements {
        let base = li + i * 3;
        let (x, y) = match lon_lat(args.get(base), args.get(base + 1)) {
            Ok(p) => p,
            Err(e) => return out.error(&e),
        };
        let Some(bits) = geohash::score_of(x, y) else { return out.error(err::SYNTAX) };
        push(&mut data, bits.to_string().as_bytes());
        push(&mut data, args.get(base + 2));
    }
    zsets::zadd(ctx, Args::new(&data, &spans), out);
}

// ---------------------------------------------------------------------------
// GEOPOS / GEODIST / GEOHASH
// ---------------------------------------------------------------------------

fn geopos(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Ok(z) = lookup_zset(ctx, args.get(1)) else {
        return out.error(err::WRONGTYPE);
    };
    out.array_len(args.len() - 2);
    for j in 2..args.len() {
        match z.and_then(|z| z.score(args.get(j))).and_then(geohash::decode_score) {
            None => out.null_array(),
            Some((x, y)) => {
                out.array_len(2);
                reply_coord(out, x);
                reply_coord(out, y);
            }
        }
    }
}

fn geodist(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let mut to_meter = 1.0;
    if args.len() == 5 {
        match unit(args.get(4)) {
            Ok(u) => to_meter = u,
            Err(e) => return out.error(&e),
        }
    } else if args.len() > 5 {
        return out.error(err::SYNTAX);
    }
    let Some(e) = ctx.lookup_read(args.get(1)) else { return out.null() };
    let Some(z) = as_zset(&e.val) else { return out.error(err::WRONGTYPE) };
    let (Some(s1), Some(s2)) = (z.score(args.get(2)), z.score(args.get(3))) else {
        return out.null();
    };
    match (geohash::decode_score(s1), geohash::decode_score(s2)) {
        (Some(a), Some(b)) => reply_distance(out, geohash::distance(a.0, a.1, b.0, b.1) / to_meter),
        _ => out.null(),
    }
}

fn geohash_cmd(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    let Ok(z) = lookup_zset(ctx, args.get(1)) else {
        return out.error(err::WRONGTYPE);
    };
    out.array_len(args.len() - 2);
    for j in 2..args.len() {
        match z.and_then(|z| z.score(args.get(j))).and_then(geohash::hash_string) {
            None => out.null(),
            Some(h) => out.bulk(&h),
        }
    }
}

// ---------------------------------------------------------------------------
// The searches (georadiusGeneric)
// ---------------------------------------------------------------------------

const RADIUS_COORDS: u8 = 1;
const RADIUS_MEMBER: u8 = 2;
const RADIUS_NOSTORE: u8 = 4;
const GEOSEARCH: u8 = 8;
const GEOSEARCHSTORE: u8 = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

struct Point {
    lon: f64,
    lat: f64,
    dist: f64,
    score: f64,
    member: Vec<u8>,
}

/// What a search asks the caller to store.
struct StoreReq {
    /// The destination's argument position.
    key_pos: usize,
    elems: Vec<(f64, Vec<u8>)>,
}

/// The members of `z` whose scores lie in [min, max) and inside the shape.
fn points_in_range(z: &ZSet, min: f64, max: f64, s: &Search, ga: &mut Vec<Point>, limit: usize) {
    let first = z.count_while(|sc, _| sc < min);
    if first >= z.len() {
        return;
    }
    for (sc, m) in z.range(first, z.len() - first, false) {
        if sc >= max {
            break;
        }
        if let Some((lon, lat)) = geohash::decode_score(sc) {
            if let Some(dist) = s.within(lon, lat) {
                ga.push(Point {
                    lon,
                    lat,
                    dist,
                    score: sc,
                    member: m.to_vec(),
                });
            }
        }
        if !ga.is_empty() && limit > 0 && ga.len() >= limit {
            break;
        }
    }
}

/// membersOfAllNeighbors.
fn members_of_all_neighbours(z: &ZSet, s: &Search, limit: usize) -> Vec<Point> {
    let boxes = s.boxes();
    let mut ga = Vec::new();
    let mut last: Option<usize> = None;
    for (i, b) in boxes.iter().enumerate() {
        if b.is_zero() {
            continue;
        }
        if let Some(l) = last {
            if l != 0 && boxes[l] == *b {
                continue;
            }
        }
        if !ga.is_empty() && limit > 0 && ga.len() >= limit {
            break;
        }
        let (min, max) = geohash::score_range(*b);
        points_in_range(z, min, max, s, &mut ga, limit);
        last = Some(i);
    }
    ga
}

/// Redis's pqsort (a BSD quicksort that skips the partitions outside the
/// ranks [lrange, rrange]): the same comparisons and swaps, so equal
/// distances come out in Redis's order.
fn partial_qsort<T>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i32, lrange: usize, rrange: usize) {
    let (mut a, mut n) = (0usize, v.len());
    let touches = |s: usize, m: usize| !((lrange < s && rrange < s) || (lrange >= s + m && rrange >= s + m));
    let med3 = |v: &[T], a: usize, b: usize, c: usize| -> usize {
        if cmp(&v[a], &v[b]) < 0 {
            if cmp(&v[b], &v[c]) < 0 {
                b
            } else if cmp(&v[a], &v[c]) < 0 {
                c
            } else {
                a
            }
        } else if cmp(&v[b], &v[c]) > 0 {
            b
        } else if cmp(&v[a], &v[c]) < 0 {
            a
        } else {
            c
        }
    };
    loop {
        if n < 7 {
            for pm in a + 1..a + n {
                let mut pl = pm;
                while pl > a && cmp(&v[pl - 1], &v[pl]) > 0 {
                    v.swap(pl, pl - 1);
                    pl -= 1;
                }
            }
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d);
                pm = med3(v, pm - d, pm, pm + d);
                pn = med3(v, pn - 2 * d, pn - d, pn);
            }
            pm = med3(v, pl, pm, pn);
        }
        v.swap(a, pm);
        let (mut pa, mut pb) = (a + 1, a + 1);
        // pc may step to just below pb (never below a): signed indices.
        let (mut pc, mut pd) = ((a + n - 1) as isize, (a + n - 1) as isize);
        loop {
            while pb as isize <= pc {
                let c = cmp(&v[pb], &v[a]);
                if c > 0 {
                    break;
                }
                if c == 0 {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb as isize <= pc {
                let c = cmp(&v[pc as usize], &v[a]);
                if c < 0 {
                    break;
                }
                if c == 0 {
                    v.swap(pc as usize, pd as usize);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb as isize > pc {
                break;
            }
            v.swap(pb, pc as usize);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        for i in 0..r {
            v.swap(a + i, pb - r + i);
        }
        let r = ((pd - pc) as usize).min(pn - pd as usize - 1);
        for i in 0..r {
            v.swap(pb + i, pn - r + i);
        }
        let r = pb - pa;
        if r > 1 && touches(a, r) {
            partial_qsort_range(v, cmp, lrange, rrange, a, r);
        }
        let r = (pd - pc) as usize;
        if r > 1 {
            a = pn - r;
            n = r;
            if touches(a, n) {
                continue;
            }
        }
        return;
    }
}

/// [`partial_qsort`] of `v[a..a + n]` (ranks still relative to `v`).
fn partial_qsort_range<T>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i32, lrange: usize, rrange: usize, a: usize, n: usize) {
    // The sub-slice's ranks: shift the wanted range (saturating at its start).
    let sub = &mut v[a..a + n];
    let l = lrange.saturating_sub(a);
    let r = rrange.saturating_sub(a);
    if rrange < a {
        return;
    }
    partial_qsort(sub, cmp, l, r);
}

/// georadiusGeneric over the arguments `a` on the source's shard: replies
/// (results or an error) into `out`, or returns what to store.
fn search_generic(ctx: &mut Ctx, a: &[&[u8]], src_pos: usize, flags: u8, out: &mut Reply) -> Option<StoreReq> {
    let argc = a.len();
    let entry = ctx.lookup_read(a[src_pos]);
    let z: Option<&ZSet> = match entry {
        None => None,
        Some(e) => match as_zset(&e.val) {
            Some(z) => Some(z),
            None => {
                out.error(err::WRONGTYPE);
                return None;
            }
        },
    };
    macro_rules! tryr {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(msg) => {
                    out.error(&msg);
                    return None;
                }
            }
        };
    }
    let member_xy = |z: &ZSet, m: &[u8]| -> Result<(f64, f64), String> {
        z.score(m)
            .and_then(geohash::decode_score)
            .ok_or_else(|| "ERR could not decode requested zset member".to_string())
    };
    let distance = |r: &[u8], u: &[u8]| -> Result<(f64, f64), String> {
        let Some(d) = string2d(r) else { return Err("ERR need numeric radius".into()) };
        if d < 0.0 {
            return Err("ERR radius cannot be negative".into());
        }
        Ok((d, unit(u)?))
    };
    let mut xy = (0.0, 0.0);
    let mut shape = Shape::Radius(0.0);
    let mut conversion = 0.0;
    let base;
    let mut store: Option<usize> = None;
    let mut storedist = false;
    if flags & RADIUS_COORDS != 0 {
        base = 6;
        xy = tryr!(lon_lat(a[2], a[3]));
        let (r, c) = tryr!(distance(a[4], a[5]));
        shape = Shape::Radius(r);
        conversion = c;
    } else if flags & RADIUS_MEMBER != 0 {
        base = 5;
        if let Some(z) = z {
            xy = tryr!(member_xy(z, a[2]));
            let (r, c) = tryr!(distance(a[3], a[4]));
            shape = Shape::Radius(r);
            conversion = c;
        }
    } else {
        base = if flags & GEOSEARCHSTORE != 0 { 3 } else { 2 };
        if flags & GEOSEARCHSTORE != 0 {
            store = Some(1);
        }
    }
    let (mut withdist, mut withhash, mut withcoords) = (false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut any = false;
    let mut count: i64 = 0;
    let remaining = argc.saturating_sub(base);
    let mut i = 0;
    while i < remaining {
        let arg = a[base + i];
        let geosearch = flags & GEOSEARCH != 0;
        let nostore = flags & RADIUS_NOSTORE != 0;
        if opt_is(arg, "withdist") {
            withdist = true;
        } else if opt_is(arg, "withhash") {
            withhash = true;
        } else if opt_is(arg, "withcoord") {
            withcoords = true;
        } else if opt_is(arg, "any") {
            any = true;
        } else if opt_is(arg, "asc") {
            sort = Sort::Asc;
        } else if opt_is(arg, "desc") {
            sort = Sort::Desc;
        } else if opt_is(arg, "count") && i + 1 < remaining {
            let Some(c) = string2ll(a[base + i + 1]) else {
                out.error(err::NOT_INT);
                return None;
            };
            if c <= 0 {
                out.error("ERR COUNT must be > 0");
                return None;
            }
            count = c;
            i += 1;
        } else if opt_is(arg, "store") && i + 1 < remaining && !nostore && !geosearch {
            store = Some(base + i + 1);
            storedist = false;
            i += 1;
        } else if opt_is(arg, "storedist") && i + 1 < remaining && !nostore && !geosearch {
            store = Some(base + i + 1);
            storedist = true;
            i += 1;
        } else if opt_is(arg, "storedist") && geosearch && flags & GEOSEARCHSTORE != 0 {
            storedist = true;
        } else if opt_is(arg, "frommember") && i + 1 < remaining && geosearch && !fromloc {
            if let Some(z) = z {
                xy = tryr!(member_xy(z, a[base + i + 1]));
            }
            frommember = true;
            i += 1;
        } else if opt_is(arg, "fromlonlat") && i + 2 < remaining && geosearch && !frommember {
            xy = tryr!(lon_lat(a[base + i + 1], a[base + i + 2]));
            fromloc = true;
            i += 2;
        } else if opt_is(arg, "byradius") && i + 2 < remaining && geosearch && !bybox {
            let (r, c) = tryr!(distance(a[base + i + 1], a[base + i + 2]));
            shape = Shape::Radius(r);
            conversion = c;
            byradius = true;
            i += 2;
        } else if opt_is(arg, "bybox") && i + 3 < remaining && geosearch && !byradius {
            let Some(w) = string2d(a[base + i + 1]) else {
                out.error("ERR need numeric width");
                return None;
            };
            let Some(h) = string2d(a[base + i + 2]) else {
                out.error("ERR need numeric height");
                return None;
            };
            if h < 0.0 || w < 0.0 {
                out.error("ERR height or width cannot be negative");
                return None;
            }
            conversion = tryr!(unit(a[base + i + 3]));
            shape = Shape::Box(w, h);
            bybox = true;
            i += 3;
        } else {
            out.error(err::SYNTAX);
            return None;
        }
        i += 1;
    }
    if store.is_some() && (withdist || withhash || withcoords) {
        let what = if flags & GEOSEARCHSTORE != 0 {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        out.error(&format!("ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"));
        return None;
    }
    let name = String::from_utf8_lossy(a[0]);
    if flags & GEOSEARCH != 0 && !(frommember || fromloc) {
        out.error(&format!("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"));
        return None;
    }
    if flags & GEOSEARCH != 0 && !(byradius || bybox) {
        out.error(&format!("ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"));
        return None;
    }
    if any && count == 0 {
        out.error("ERR the ANY argument requires COUNT argument");
        return None;
    }
    let Some(z) = z else {
        return match store {
            Some(key_pos) => Some(StoreReq { key_pos, elems: Vec::new() }),
            None => {
                out.array_len(0);
                None
            }
        };
    };
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let s = Search {
        lon: xy.0,
        lat: xy.1,
        conversion,
        shape,
    };
    let limit = if any { count as usize } else { 0 };
    let mut ga = members_of_all_neighbours(z, &s, limit);
    if ga.is_empty() && store.is_none() {
        out.array_len(0);
        return None;
    }
    let returned = if count == 0 || (ga.len() as i64) < count { ga.len() } else { count as usize };
    if sort != Sort::None {
        let desc = sort == Sort::Desc;
        let cmp = |x: &Point, y: &Point| -> i32 {
            let c = if x.dist > y.dist {
                1
            } else if x.dist == y.dist {
                0
            } else {
                -1
            };
            if desc {
                -c
            } else {
                c
            }
        };
        if returned == ga.len() {
            // glibc's qsort is a merge sort here: stable.
            ga.sort_by(|x, y| cmp(x, y).cmp(&0));
        } else {
            partial_qsort(&mut ga, &cmp, 0, returned - 1);
        }
    }
    ga.truncate(returned);
    if let Some(key_pos) = store {
        let elems = ga
            .into_iter()
            .map(|p| (if storedist { p.dist / conversion } else { p.score }, p.member))
            .collect();
        return Some(StoreReq { key_pos, elems });
    }
    let opts = withdist as usize + withcoords as usize + withhash as usize;
    out.array_len(returned);
    for p in &ga {
        if opts > 0 {
            out.array_len(opts + 1);
        }
        out.bulk(&p.member);
        if withdist {
            reply_distance(out, p.dist / conversion);
        }
        if withhash {
            out.int(geohash::c_double_to_i64(p.score));
        }
        if withcoords {
            out.array_len(2);
            reply_coord(out, p.lon);
            reply_coord(out, p.lat);
        }
    }
    None
}

/// A search that can never store, run where the key lives.
fn search_keyed(ctx: &mut Ctx, args: Args, flags: u8, out: &mut Reply) {
    let a: Vec<&[u8]> = args.iter().collect();
    if search_generic(ctx, &a, 1, flags, out).is_some() {
        // Only the STORE forms ask to store; they are plans.
        out.error(err::SYNTAX);
    }
}

fn geosearch(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    search_keyed(ctx, args, GEOSEARCH, out)
}
fn georadius_ro(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    search_keyed(ctx, args, RADIUS_COORDS | RADIUS_NOSTORE, out)
}
fn georadiusbymember_ro(ctx: &mut Ctx, args: Args, out: &mut Reply) {
    search_keyed(ctx, args, RADIUS_MEMBER | RADIUS_NOSTORE, out)
}

const GEORADIUS: PlanFn = |tx, args, out| Box::pin(search_plan(tx, args, 1, RADIUS_COORDS, out));
const GEORADIUSBYMEMBER: PlanFn = |tx, args, out| Box::pin(search_plan(tx, args, 1, RADIUS_MEMBER, out));
const GEOSEARCHSTORE_PLAN: PlanFn = |tx, args, out| Box::pin(search_plan(tx, args, 2, GEOSEARCH | GEOSEARCHSTORE, out));

/// A search that may store: searched on the source's shard, stored on the
/// destination's.
async fn search_plan(tx: &mut Tx<'_>, args: Args<'_>, src_pos: usize, flags: u8, out: &mut Reply) -> Result<(), HopLost> {
    let owned: Vec<Vec<u8>> = args.iter().map(|b| b.to_vec()).collect();
    let resp3 = out.resp3;
    let (buf, store) = tx
        .hop(tx.shard_of_arg(src_pos), move |ctx: &mut Ctx| {
            let a: Vec<&[u8]> = owned.iter().map(|v| v.as_slice()).collect();
            let mut r = Reply::new(resp3);
            let st = search_generic(ctx, &a, src_pos, flags, &mut r);
            (r.buf, st)
        })
        .await?;
    let Some(req) = store else {
        out.raw(&buf);
        return Ok(());
    };
    if !tx.routes_arg(req.key_pos, args.get(req.key_pos)) {
        // Only with STORE/STOREDIST given more than once: the key specs name
        // the first destination, the command stores into the last one.
        out.error("ERR the destination key is not the one named by the command's key specs: give STORE/STOREDIST once");
        return Ok(());
    }
    let n = req.elems.len();
    let (z, _) = zsets::build_zset(req.elems, Limits::from_config());
    let dst = args.get(req.key_pos).to_vec();
    let event = if flags & GEOSEARCH != 0 { "geosearchstore" } else { "georadiusstore" };
    tx.hop(tx.shard_of_arg(req.key_pos), move |ctx: &mut Ctx| zsets::store_result(ctx, &dst, z, event))
        .await?;
    out.int(n as i64);
    Ok(())
}
