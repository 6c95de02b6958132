//! SORT and SORT_RO (Redis's sort.c), one plan for any number of shards.
//!
//! The source list, set or sorted set lives on one shard; BY and GET
//! patterns name other keys, anywhere. A SORT with a pattern that reads keys
//! is a *wide* plan (`Command::wide`): every shard is locked (shared, or
//! exclusive with STORE) for the whole command, so the weights and the GET
//! values are read atomically with the source. Pattern lookups are batched:
//! one hop per shard for all the BY keys, one for all the GET keys, each
//! key looked up as Redis's lookupKeyByPattern does (lookupKeyRead: lazy
//! expiry, hit/miss counters).

use super::hashes::{cstr, opt_is};
use super::table::{Ctx, HopLost, PlanFn, Table, Tx};
use crate::keyspace::types::List;
use crate::keyspace::Value;
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::locks::Mode;
use crate::util::num::string2ll;
use std::cmp::Ordering;

pub fn register(t: &mut Table) {
    t.plan("sort", SORT).wide = Some(|a| wide_mode(a, false));
    t.plan("sort_ro", SORT_RO).wide = Some(|a| wide_mode(a, true));
}

const SORT: PlanFn = |tx, args, out| Box::pin(sort_plan(tx, args, out, false));
const SORT_RO: PlanFn = |tx, args, out| Box::pin(sort_plan(tx, args, out, true));

/// The parsed options of one SORT.
#[derive(Default)]
struct Opts {
    desc: bool,
    alpha: bool,
    limit_start: i64,
    limit_count: i64,
    /// Argument position of the STORE key.
    store: Option<usize>,
    by: Option<Vec<u8>>,
    /// BY a pattern without `*`: nothing to sort, nothing to look up.
    dontsort: bool,
    gets: Vec<Vec<u8>>,
}

/// sortCommandGeneric's option loop; Err(reply) on a syntax or LIMIT error.
fn parse(args: &Args, readonly: bool) -> Result<Opts, String> {
    let mut o = Opts {
        limit_count: -1,
        ..Default::default()
    };
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = args.get(j);
        if opt_is(a, "asc") {
            o.desc = false;
        } else if opt_is(a, "desc") {
            o.desc = true;
        } else if opt_is(a, "alpha") {
            o.alpha = true;
        } else if opt_is(a, "limit") && left >= 2 {
            let start = string2ll(args.get(j + 1));
            let count = string2ll(args.get(j + 2));
            match (start, count) {
                (Some(s), Some(c)) => {
                    o.limit_start = s;
                    o.limit_count = c;
                }
                _ => return Err(err::NOT_INT.into()),
            }
            j += 2;
        } else if !readonly && opt_is(a, "store") && left >= 1 {
            o.store = Some(j + 1);
            j += 1;
        } else if opt_is(a, "by") && left >= 1 {
            let p = args.get(j + 1);
            o.dontsort = !cstr(p).contains(&b'*');
            o.by = Some(p.to_vec());
            j += 1;
        } else if opt_is(a, "get") && left >= 1 {
            o.gets.push(args.get(j + 1).to_vec());
            j += 1;
        } else {
            return Err(err::SYNTAX.into());
        }
        j += 1;
    }
    Ok(o)
}

/// The lock mode of a SORT whose patterns read keys it does not name: all
/// shards, shared (exclusive when it also stores). None when it reads only
/// its source.
fn wide_mode(args: &Args, readonly: bool) -> Option<Mode> {
    let o = parse(args, readonly).ok()?;
    let by_reads = o.by.is_some() && !o.dontsort;
    let get_reads = o.gets.iter().any(|g| g.as_slice() != b"#" && cstr(g).contains(&b'*'));
    if !(by_reads || get_reads) {
        return None;
    }
    Some(if o.store.is_some() { Mode::Exclusive } else { Mode::Shared })
}

/// Where a pattern points for one element: (key, hash field).
enum Target {
    /// `#`: the element itself.
    Itself,
    /// No `*`: nothing (lookupKeyByPattern returns NULL).
    Nothing,
    Key(Vec<u8>, Option<Vec<u8>>),
}

/// lookupKeyByPattern's substitution: the first `*` (of the C string) becomes
/// `subst`; `->field` after it (non-empty) names a hash field.
fn target(pat: &[u8], subst: &[u8]) -> Target {
    if pat.first() == Some(&b'#') && (pat.len() == 1 || pat[1] == 0) {
        return Target::Itself;
    }
    let c = cstr(pat);
    let Some(p) = memchr::memchr(b'*', c) else {
        return Target::Nothing;
    };
    let field = memchr::memmem::find(&c[p + 1..], b"->").map(|f| p + 1 + f).filter(|&f| f + 2 < c.len());
    let fieldlen = field.map_or(0, |f| pat.len() - f - 2);
    let postfix = pat.len() - (p + 1) - if fieldlen > 0 { fieldlen + 2 } else { 0 };
    let mut key = Vec::with_capacity(p + subst.len() + postfix);
    key.extend_from_slice(&pat[..p]);
    key.extend_from_slice(subst);
    key.extend_from_slice(&pat[p + 1..p + 1 + postfix]);
    Target::Key(key, field.map(|f| pat[f + 2..].to_vec()))
}

/// Looks up (key, field) pairs where they live, one hop per shard: a string
/// value, a hash field's value, or None (missing, wrong type).
async fn lookup_all(tx: &mut Tx<'_>, wanted: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Vec<Option<Vec<u8>>>, HopLost> {
    let n = crate::runtime::nshards();
    let total = wanted.len();
    let groups = crate::util::group_by_shard(wanted.into_iter().enumerate().map(|(i, w)| (crate::runtime::shard_of_key(&w.0, n), (i, w))));
    let parts = groups
        .into_iter()
        .map(|(s, items)| {
            (s, move |ctx: &mut Ctx| {
                items
                    .into_iter()
                    .map(|(i, (key, field))| {
                        let v = ctx.lookup_read(&key).and_then(|e| match &field {
                            Some(f) => e.val.hash_field(f),
                            None => e.val.str_bytes().map(|b| b.into_owned()),
                        });
                        (i, v)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut out = vec![None; total];
    for part in tx.hop_each(parts).await? {
        for (i, v) in part {
            out[i] = v;
        }
    }
    Ok(out)
}

/// The values of `pat` for every element (None where the pattern finds nothing).
async fn pattern_values(tx: &mut Tx<'_>, pat: &[u8], elems: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, HopLost> {
    let mut out: Vec<Option<Vec<u8>>> = vec![None; elems.len()];
    let mut wanted = Vec::new();
    let mut at = Vec::new();
    for (i, e) in elems.iter().enumerate() {
        match target(pat, e) {
            Target::Itself => out[i] = Some(e.clone()),
            Target::Nothing => {}
            Target::Key(k, f) => {
                wanted.push((k, f));
                at.push(i);
            }
        }
    }
    if !wanted.is_empty() {
        for (i, v) in at.into_iter().zip(lookup_all(tx, wanted).await?) {
            out[i] = v;
        }
    }
    Ok(out)
}

/// What the source key holds, loaded as sortCommandGeneric loads its vector.
struct Loaded {
    elems: Vec<Vec<u8>>,
    /// The output range in `elems` (inclusive; empty when end < start).
    start: i64,
    end: i64,
}

/// The LIMIT sanity checks of sortCommandGeneric: (start, end), inclusive.
fn limits(o: &Opts, len: i64) -> (i64, i64) {
    let mut start = o.limit_start.max(0).min(len);
    let count = o.limit_count.max(-1).min(len);
    let mut end = if count < 0 { len - 1 } else { start + count - 1 };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    (start, end)
}

/// Reads the source on its shard. A listpack sorted set is converted to a
/// skiplist first, as Redis 7.0 does (OBJECT ENCODING shows it).
fn load(ctx: &mut Ctx, key: &[u8], o: &Opts, dontsort: bool) -> Result<Loaded, ()> {
    let is_zset = match ctx.lookup_read(key).map(|e| &e.val) {
        None => None,
        Some(Value::List(_)) | Some(Value::Set(_)) => Some(false),
        Some(Value::ZSet(_)) => Some(true),
        Some(_) => return Err(()),
    };
    if is_zset == Some(true) {
        if let Some(Value::ZSet(z)) = ctx.db().repr_mut(key) {
            z.convert_to_skiplist();
        }
    }
    let empty = List::new();
    let v = ctx.shard.dbs[ctx.db].entry(key).map(|e| &e.val);
    let len = match v {
        Some(Value::List(l)) => l.len(),
        Some(Value::Set(s)) => s.len(),
        Some(Value::ZSet(z)) => z.len(),
        _ => empty.len(),
    } as i64;
    let (mut start, mut end) = limits(o, len);
    let mut loaded = Loaded { elems: Vec::new(), start, end };
    match v {
        Some(Value::List(l)) if dontsort && end >= start => {
            let n = (end - start + 1) as usize;
            loaded.elems = if o.desc {
                l.iter_rev_from(l.len() - 1 - start as usize).take(n).map(|e| e.to_vec()).collect()
            } else {
                l.iter_from(start as usize).take(n).map(|e| e.to_vec()).collect()
            };
            end -= start;
            start = 0;
        }
        Some(Value::ZSet(z)) if dontsort && end >= start => {
            let n = (end - start + 1) as usize;
            loaded.elems = z.range(start as usize, n, o.desc).map(|(_, m)| m.to_vec()).collect();
            end -= start;
            start = 0;
        }
        // An empty window of an unsorted list or zset loads nothing.
        Some(Value::List(_) | Value::ZSet(_)) if dontsort => {}
        Some(Value::List(l)) => loaded.elems = l.iter().map(|e| e.to_vec()).collect(),
        Some(Value::Set(s)) => loaded.elems = s.iter().map(|m| m.to_vec()).collect(),
        Some(Value::ZSet(z)) => loaded.elems = z.iter().map(|(_, m)| m.to_vec()).collect(),
        _ => {}
    }
    loaded.start = start;
    loaded.end = end;
    Ok(loaded)
}

/// strtod as SORT checks it: the whole C string consumed, no ERANGE, not NaN.
fn sort_score(b: &[u8]) -> Option<f64> {
    let mut buf = Vec::with_capacity(b.len() + 1);
    buf.extend_from_slice(b);
    buf.push(0);
    let start = buf.as_ptr() as *const libc::c_char;
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: `buf` is NUL-terminated and outlives the call; errno is this thread's.
    let (v, e, rest) = unsafe {
        *libc::__errno_location() = 0;
        let v = libc::strtod(start, &mut end);
        (v, *libc::__errno_location(), *end)
    };
    (rest == 0 && e != libc::ERANGE && !v.is_nan()).then_some(v)
}

/// strcoll over the C strings (SORT ALPHA without STORE), in the locale the
/// server set from the environment at start-up, as Redis does.
fn collate(a: &[u8], b: &[u8]) -> Ordering {
    let c = |s: &[u8]| {
        let mut v = cstr(s).to_vec();
        v.push(0);
        v
    };
    let (x, y) = (c(a), c(b));
    // SAFETY: both are NUL-terminated.
    let r = unsafe { libc::strcoll(x.as_ptr() as *const libc::c_char, y.as_ptr() as *const libc::c_char) };
    r.cmp(&0)
}

async fn sort_plan(tx: &mut Tx<'_>, args: Args<'_>, out: &mut Reply, readonly: bool) -> Result<(), HopLost> {
    let mut o = match parse(&args, readonly) {
        Ok(o) => o,
        Err(e) => {
            out.error(&e);
            return Ok(());
        }
    };
    // A set with nothing to sort is sorted anyway when stored (for a stable result).
    let key = args.get(1).to_vec();
    let src_shard = tx.shard_of_arg(1);
    let probe = o.dontsort && o.store.is_some();
    let opts_for_load = Opts {
        desc: o.desc,
        limit_start: o.limit_start,
        limit_count: o.limit_count,
        ..Default::default()
    };
    let dontsort = o.dontsort;
    let loaded = tx
        .hop(src_shard, move |ctx: &mut Ctx| {
            let is_set = matches!(ctx.shard.dbs[ctx.db].entry(&key).map(|e| &e.val), Some(Value::Set(_)));
            // Redis forces ALPHA sorting of a stored set before loading, so
            // the direct (unsorted) load is skipped for it.
            let ds = dontsort && !(probe && is_set);
            load(ctx, &key, &opts_for_load, ds).map(|l| (l, ds))
        })
        .await?;
    let (loaded, dontsort) = match loaded {
        Ok(l) => l,
        Err(()) => {
            out.error(err::WRONGTYPE);
            return Ok(());
        }
    };
    if o.dontsort && !dontsort {
        o.dontsort = false;
        o.alpha = true;
        o.by = None;
    }
    let Loaded { mut elems, start, end } = loaded;

    if !o.dontsort {
        let store = o.store.is_some();
        let byvals = match &o.by {
            Some(p) => Some(pattern_values(tx, p, &elems).await?),
            None => None,
        };
        let mut conversion_error = false;
        let mut vec: Vec<(Vec<u8>, f64, Option<Vec<u8>>)> = Vec::with_capacity(elems.len());
        for (i, e) in elems.into_iter().enumerate() {
            let (mut score, mut cmp) = (0.0, None);
            let byval: Option<&[u8]> = match &byvals {
                Some(v) => v[i].as_deref(),
                None => Some(&e),
            };
            if let Some(b) = byval {
                if o.alpha {
                    if o.by.is_some() {
                        cmp = Some(b.to_vec());
                    }
                } else {
                    match sort_score(b) {
                        Some(s) => score = s,
                        None => {
                            conversion_error = true;
                            score = 0.0;
                        }
                    }
                }
            }
            vec.push((e, score, cmp));
        }
        let by = o.by.is_some();
        let (alpha, desc) = (o.alpha, o.desc);
        vec.sort_by(|a, b| {
            let c = if !alpha {
                a.1.partial_cmp(&b.1).unwrap_or(Ordering::Equal).then_with(|| a.0.cmp(&b.0))
            } else if by {
                match (&a.2, &b.2) {
                    (None, None) => Ordering::Equal,
                    (None, _) => Ordering::Less,
                    (_, None) => Ordering::Greater,
                    (Some(x), Some(y)) => {
                        if store {
                            x.cmp(y)
                        } else {
                            collate(x, y)
                        }
                    }
                }
            } else if store {
                a.0.cmp(&b.0)
            } else {
                collate(&a.0, &b.0)
            };
            if desc {
                c.reverse()
            } else {
                c
            }
        });
        if conversion_error {
            out.error("ERR One or more scores can't be converted into double");
            return Ok(());
        }
        elems = vec.into_iter().map(|v| v.0).collect();
    }

    // The output range.
    let range: Vec<Vec<u8>> = if end >= start {
        elems.drain(start as usize..=end as usize).collect()
    } else {
        Vec::new()
    };
    let mut gets: Vec<Vec<Option<Vec<u8>>>> = Vec::with_capacity(o.gets.len());
    for g in &o.gets {
        gets.push(pattern_values(tx, g, &range).await?);
    }
    match o.store {
        None => {
            out.array_len(if o.gets.is_empty() { range.len() } else { o.gets.len() * range.len() });
            for (j, e) in range.iter().enumerate() {
                if o.gets.is_empty() {
                    out.bulk(e);
                }
                for g in &gets {
                    match &g[j] {
                        Some(v) => out.bulk(v),
                        None => out.null(),
                    }
                }
            }
        }
        Some(pos) => {
            let mut items: Vec<Vec<u8>> = Vec::new();
            for (j, e) in range.into_iter().enumerate() {
                if gets.is_empty() {
                    items.push(e);
                } else {
                    for g in &mut gets {
                        items.push(g[j].take().unwrap_or_default());
                    }
                }
            }
            let dst = args.get(pos).to_vec();
            let n = items.len();
            tx.hop(tx.shard_of_arg(pos), move |ctx: &mut Ctx| {
                let (now, dbi) = (ctx.now, ctx.db);
                let db = ctx.db();
                db.lookup_write(&dst, now);
                if n > 0 {
                    db.set(&dst, Value::list_from(items), 0, now);
                    crate::runtime::notify::note(dbi, crate::runtime::notify::NOTIFY_LIST, "sortstore", &dst);
                } else if db.remove(&dst).is_some() {
                    crate::runtime::notify::note(dbi, crate::runtime::notify::NOTIFY_GENERIC, "del", &dst);
                }
            })
            .await?;
            out.int(n as i64);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: Target) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        match t {
            Target::Key(k, f) => Some((k, f)),
            _ => None,
        }
    }

    #[test]
    fn patterns_substitute_the_first_star_and_split_hash_fields() {
        assert_eq!(key(target(b"w_*", b"3")), Some((b"w_3".to_vec(), None)));
        assert_eq!(key(target(b"o_*_x", b"ab")), Some((b"o_ab_x".to_vec(), None)));
        assert_eq!(key(target(b"h_*->f", b"1")), Some((b"h_1".to_vec(), Some(b"f".to_vec()))));
        assert_eq!(key(target(b"h_*x->fld", b"1")), Some((b"h_1x".to_vec(), Some(b"fld".to_vec()))));
        // An empty field name is no hash dereference; only the first '*' is substituted.
        assert_eq!(key(target(b"h_*->", b"1")), Some((b"h_1->".to_vec(), None)));
        assert_eq!(key(target(b"a*b*", b"1")), Some((b"a1b*".to_vec(), None)));
        assert!(matches!(target(b"#", b"x"), Target::Itself));
        assert!(matches!(target(b"nostar", b"x"), Target::Nothing));
    }

    #[test]
    fn limits_clamp_as_redis() {
        let o = |s, c| Opts {
            limit_start: s,
            limit_count: c,
            ..Default::default()
        };
        assert_eq!(limits(&o(0, -1), 5), (0, 4));
        assert_eq!(limits(&o(1, 2), 5), (1, 2));
        assert_eq!(limits(&o(-3, 2), 5), (0, 1));
        assert_eq!(limits(&o(7, 2), 5), (4, 3));
        assert_eq!(limits(&o(2, 100), 5), (2, 4));
        assert_eq!(limits(&o(0, 0), 5), (0, -1));
        assert_eq!(limits(&o(0, -1), 0), (-1, -2));
    }

    #[test]
    fn scores_follow_strtod_as_sort_checks_it() {
        assert_eq!(sort_score(b"1.5"), Some(1.5));
        assert_eq!(sort_score(b" 2"), Some(2.0));
        assert_eq!(sort_score(b""), Some(0.0));
        assert_eq!(sort_score(b"3\0junk"), Some(3.0));
        assert_eq!(sort_score(b"2 "), None);
        assert_eq!(sort_score(b"abc"), None);
        assert_eq!(sort_score(b"nan"), None);
        assert_eq!(sort_score(b"1e400"), None);
        assert_eq!(sort_score(b"inf"), Some(f64::INFINITY));
    }
}
