//! Key extraction from Redis 7.0's structured key specs (`COMMAND INFO`
//! element 9), exactly as `getKeysFromCommandWithSpecs` in Redis's db.c does,
//! including the per-command getkeys procs Redis falls back to (SORT, MIGRATE,
//! EVAL, ZUNIONSTORE, XREAD, SET, BITFIELD, ...).
//!
//! The specs of every command in `meta.rs` are parsed once into
//! [`ParsedSpecs`]. Hot path: look up `specs(meta)` once (per command entry)
//! and call [`keys_with`]; [`keys`] does the lookup on every call.

use super::doc::{CommandMeta, Doc};
use super::meta::COMMANDS;
use crate::protocol::Args;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Key-spec flag bits, numbered like Redis's `CMD_KEY_*`.
pub mod flags {
    pub const RO: u32 = 1 << 0;
    pub const RW: u32 = 1 << 1;
    pub const OW: u32 = 1 << 2;
    pub const RM: u32 = 1 << 3;
    pub const ACCESS: u32 = 1 << 4;
    pub const UPDATE: u32 = 1 << 5;
    pub const INSERT: u32 = 1 << 6;
    pub const DELETE: u32 = 1 << 7;
    pub const NOT_KEY: u32 = 1 << 8;
    pub const INCOMPLETE: u32 = 1 << 9;
    pub const VARIABLE_FLAGS: u32 = 1 << 10;

    /// Names in Redis's reply order (`addReplyFlagsForKeyArgs`).
    pub const NAMES: [(u32, &str); 11] = [
        (RO, "RO"),
        (RW, "RW"),
        (OW, "OW"),
        (RM, "RM"),
        (ACCESS, "access"),
        (UPDATE, "update"),
        (INSERT, "insert"),
        (DELETE, "delete"),
        (NOT_KEY, "not_key"),
        (INCOMPLETE, "incomplete"),
        (VARIABLE_FLAGS, "variable_flags"),
    ];

    pub fn from_name(name: &str) -> Option<u32> {
        NAMES.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }
}

/// One key argument: its index in argv and its key-spec flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRef {
    pub pos: usize,
    pub flags: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeysError {
    /// The command takes no key arguments at all.
    NoKeys,
    /// These arguments name no key (e.g. `EVAL s 0`-like forms of commands
    /// whose keys are mandatory, bad numkeys, `XREAD` without STREAMS).
    Invalid,
}

#[derive(Clone, Copy, Debug)]
enum Begin {
    Index(i32),
    Keyword { word: &'static str, startfrom: i32 },
    Unknown,
}

#[derive(Clone, Copy, Debug)]
enum Find {
    Range { lastkey: i32, step: i32, limit: i32 },
    Keynum { idx: i32, first: i32, step: i32 },
    Unknown,
}

#[derive(Clone, Copy, Debug)]
struct Spec {
    flags: u32,
    begin: Begin,
    find: Find,
}

/// Redis's per-command getkeys procs (db.c); used when the specs fail, are
/// incomplete, or have variable flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proc {
    /// genericGetKeys(store, numkeys, first, step).
    Generic {
        store: usize,
        count: usize,
        first: usize,
    },
    Sort,
    SortRo,
    Migrate,
    Georadius,
    Xread,
    Set,
    Bitfield,
}

/// The key rules of one command, parsed from its metadata.
#[derive(Debug)]
pub struct ParsedSpecs {
    specs: Vec<Spec>,
    proc_: Option<Proc>,
    /// Specs are tried first (some spec is a real key, none has variable flags).
    use_specs: bool,
    /// Redis's `doesCommandHaveKeys`.
    has_keys: bool,
    no_mandatory_keys: bool,
    /// |arity|: the procs assume at least this many arguments, as in Redis.
    min_args: usize,
}

impl ParsedSpecs {
    /// Whether the command has key arguments at all (else GETKEYS says so).
    pub fn has_keys(&self) -> bool {
        self.has_keys
    }

    /// Whether keys can be found for every argv shape (start-up check of
    /// movablekeys commands).
    pub fn has_rule(&self) -> bool {
        self.proc_.is_some()
            || (!self.specs.is_empty()
                && self.specs.iter().all(|s| {
                    s.flags & (flags::INCOMPLETE | flags::VARIABLE_FLAGS) == 0 && !matches!(s.begin, Begin::Unknown) && !matches!(s.find, Find::Unknown)
                }))
    }
}

static EMPTY: ParsedSpecs = ParsedSpecs {
    specs: Vec::new(),
    proc_: None,
    use_specs: false,
    has_keys: false,
    no_mandatory_keys: false,
    min_args: 0,
};

/// Keyed by the address of the `'static` metadata entry.
fn all() -> &'static HashMap<usize, ParsedSpecs, ahash::RandomState> {
    static ALL: OnceLock<HashMap<usize, ParsedSpecs, ahash::RandomState>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut m = HashMap::default();
        fn add(m: &mut HashMap<usize, ParsedSpecs, ahash::RandomState>, meta: &'static CommandMeta) {
            m.insert(meta as *const CommandMeta as usize, parse(meta));
            for s in meta.subcommands {
                add(m, s);
            }
        }
        for meta in COMMANDS {
            add(&mut m, meta);
        }
        m
    })
}

/// The parsed specs of `meta` (a map lookup: cache the result on hot paths).
pub fn specs(meta: &'static CommandMeta) -> &'static ParsedSpecs {
    all().get(&(meta as *const CommandMeta as usize)).unwrap_or(&EMPTY)
}

fn proc_for(name: &str) -> Option<Proc> {
    let g = |store, count, first| Some(Proc::Generic { store, count, first });
    match name {
        "sintercard" | "zunion" | "zinter" | "zdiff" | "zintercard" | "lmpop" | "zmpop" => g(0, 1, 2),
        "zunionstore" | "zinterstore" | "zdiffstore" => g(1, 2, 3),
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" | "blmpop" | "bzmpop" => g(0, 2, 3),
        "sort" => Some(Proc::Sort),
        "sort_ro" => Some(Proc::SortRo),
        "migrate" => Some(Proc::Migrate),
        "georadius" | "georadiusbymember" => Some(Proc::Georadius),
        "xread" | "xreadgroup" => Some(Proc::Xread),
        "set" => Some(Proc::Set),
        "bitfield" => Some(Proc::Bitfield),
        _ => None,
    }
}

fn int(d: Option<&Doc>, what: &str, cmd: &str) -> i32 {
    match d {
        Some(Doc::Int(v)) => *v as i32,
        _ => panic!("meta.rs: key spec of {cmd} lacks integer {what}"),
    }
}

/// Parses the metadata once at start-up; a malformed entry is a generator bug.
fn parse(meta: &'static CommandMeta) -> ParsedSpecs {
    let name = meta.name;
    let raw = meta.info.items().get(8).map(|d| d.items()).unwrap_or(&[]);
    let mut specs = Vec::with_capacity(raw.len());
    for d in raw {
        let mut f = 0;
        for n in d.get("flags").map(|x| x.items()).unwrap_or(&[]) {
            let n = n.as_str().unwrap_or("");
            f |= flags::from_name(n).unwrap_or_else(|| panic!("meta.rs: unknown key-spec flag {n:?} in {name}"));
        }
        let bs = d.get("begin_search").unwrap_or_else(|| panic!("meta.rs: {name} key spec has no begin_search"));
        let bspec = bs.get("spec");
        let begin = match bs.get("type").and_then(|t| t.as_str()) {
            Some("index") => Begin::Index(int(bspec.and_then(|s| s.get("index")), "index", name)),
            Some("keyword") => Begin::Keyword {
                word: bspec
                    .and_then(|s| s.get("keyword"))
                    .and_then(|w| w.as_str())
                    .unwrap_or_else(|| panic!("meta.rs: {name} keyword spec has no keyword")),
                startfrom: int(bspec.and_then(|s| s.get("startfrom")), "startfrom", name),
            },
            _ => Begin::Unknown,
        };
        let fk = d.get("find_keys").unwrap_or_else(|| panic!("meta.rs: {name} key spec has no find_keys"));
        let fspec = fk.get("spec");
        let field = |k: &str| int(fspec.and_then(|s| s.get(k)), k, name);
        let find = match fk.get("type").and_then(|t| t.as_str()) {
            Some("range") => Find::Range {
                lastkey: field("lastkey"),
                step: field("keystep"),
                limit: field("limit"),
            },
            Some("keynum") => Find::Keynum {
                idx: field("keynumidx"),
                first: field("firstkey"),
                step: field("keystep"),
            },
            _ => Find::Unknown,
        };
        specs.push(Spec { flags: f, begin, find });
    }
    let has_keyspec = specs.iter().any(|s| s.flags & flags::NOT_KEY == 0);
    let has_varflags = specs.iter().any(|s| s.flags & flags::VARIABLE_FLAGS != 0);
    let proc_ = proc_for(name);
    ParsedSpecs {
        use_specs: has_keyspec && !has_varflags,
        has_keys: proc_.is_some() || has_keyspec,
        no_mandatory_keys: meta.has_flag("no_mandatory_keys"),
        min_args: meta.arity.unsigned_abs() as usize,
        specs,
        proc_,
    }
}

/// Start-up check: every registered movablekeys command must have a rule.
/// Also parses every spec eagerly, so metadata bugs show at start-up.
pub fn check_registered<'a>(cmds: impl Iterator<Item = &'a super::table::Command>) {
    for c in cmds {
        let s = specs(c.meta);
        if c.meta.has_flag("movablekeys") && !s.has_rule() {
            panic!(
                "command {} is registered with the movablekeys flag but src/commands/keyspec.rs has no key \
                 extraction rule for it: add its getkeys proc to keyspec::proc_for",
                c.meta.name
            );
        }
    }
}

/// Appends the keys of `args` (the full argv, name first) to `out`, in
/// Redis's order. Does a map lookup: on hot paths use [`keys_with`].
pub fn keys(meta: &'static CommandMeta, args: &Args, out: &mut Vec<KeyRef>) -> Result<(), KeysError> {
    keys_with(specs(meta), args, out)
}

/// [`keys`] with the specs already looked up: for an index+range command a
/// few comparisons and pushes, no allocation beyond `out`'s growth.
/// Never panics whatever `args` holds (arity need not have been checked);
/// every pushed `pos` is `< args.len()`.
#[inline]
pub fn keys_with(s: &ParsedSpecs, args: &Args, out: &mut Vec<KeyRef>) -> Result<(), KeysError> {
    keys_impl(s, args, out, false)
}

/// [`keys_with`] for routing: a spec that names no valid key range in these
/// arguments is skipped instead of voiding the others (Redis's
/// GET_KEYSPEC_RETURN_PARTIAL), so `PFMERGE dest` with no source still runs
/// on dest's shard. COMMAND GETKEYS keeps Redis's strict answer.
#[inline]
pub fn keys_for_route(s: &ParsedSpecs, args: &Args, out: &mut Vec<KeyRef>) -> Result<(), KeysError> {
    keys_impl(s, args, out, true)
}

#[inline]
fn keys_impl(s: &ParsedSpecs, args: &Args, out: &mut Vec<KeyRef>, partial: bool) -> Result<(), KeysError> {
    if !s.has_keys {
        return Err(KeysError::NoKeys);
    }
    let base = out.len();
    if !(s.use_specs && from_specs(&s.specs, args, out, partial)) {
        out.truncate(base);
        if let Some(p) = s.proc_.filter(|_| args.len() >= s.min_args) {
            run_proc(p, args, out);
        }
    }
    if out.len() == base && !s.no_mandatory_keys {
        return Err(KeysError::Invalid);
    }
    Ok(())
}

/// getKeysUsingKeySpecs; false = an invalid (unless `partial`: skipped) or
/// incomplete spec (the caller falls back to the proc).
#[inline]
fn from_specs(specs: &[Spec], args: &Args, out: &mut Vec<KeyRef>, partial: bool) -> bool {
    let argc = args.len() as i64;
    for spec in specs {
        if spec.flags & flags::NOT_KEY != 0 {
            continue;
        }
        let mut first: i64 = match spec.begin {
            Begin::Index(i) => i as i64,
            Begin::Keyword { word, startfrom } => {
                let sf = startfrom as i64;
                let (start, end) = if sf > 0 { (sf, argc - 1) } else { (argc + sf, 1) };
                let mut found = 0;
                let mut i = start;
                while i != end {
                    if i >= argc || i < 1 {
                        break;
                    }
                    if c_eq(args.get(i as usize), word) {
                        found = i + 1;
                        break;
                    }
                    i += if start <= end { 1 } else { -1 };
                }
                if found == 0 {
                    continue;
                }
                found
            }
            Begin::Unknown => return false,
        };
        let (last, step) = match spec.find {
            Find::Range { lastkey, step, limit } => {
                let lk = lastkey as i64;
                let last = if lk >= 0 {
                    first + lk
                } else if limit == 0 {
                    argc + lk
                } else {
                    first + ((argc - first) / limit as i64 + lk)
                };
                (last, step as i64)
            }
            Find::Keynum { idx, first: fk, step } => {
                let at = first + idx as i64;
                if idx as i64 >= argc || at >= argc || at < 0 {
                    if partial {
                        continue;
                    }
                    return false;
                }
                let n = match crate::util::num::string2ll(args.get(at as usize)) {
                    Some(n) if n >= 0 => n as i32 as i64, // Redis casts to int
                    _ if partial => continue,
                    _ => return false,
                };
                first += fk as i64;
                (first + n - 1, step as i64)
            }
            Find::Unknown => return false,
        };
        if last >= argc || last < first || first >= argc || first < 0 || step <= 0 {
            if partial {
                continue;
            }
            return false;
        }
        let mut i = first;
        while i <= last {
            out.push(KeyRef {
                pos: i as usize,
                flags: spec.flags,
            });
            i += step;
        }
        if spec.flags & flags::INCOMPLETE != 0 {
            return false;
        }
    }
    true
}

/// C `strcasecmp(arg, word) == 0`: `arg` ends at its first NUL.
#[inline]
fn c_eq(arg: &[u8], word: &str) -> bool {
    let arg = match memchr::memchr(0, arg) {
        Some(z) => &arg[..z],
        None => arg,
    };
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// glibc `atoi`: `(int)strtol(s, NULL, 10)`, saturating at the long range.
fn atoi(s: &[u8]) -> i32 {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    let mut overflow = false;
    while let Some(d) = s.get(i).filter(|c| c.is_ascii_digit()) {
        let digit = (d - b'0') as i64;
        match v.checked_mul(10).and_then(|x| if neg { x.checked_sub(digit) } else { x.checked_add(digit) }) {
            Some(x) => v = x,
            None => overflow = true,
        }
        i += 1;
    }
    if overflow {
        v = if neg { i64::MIN } else { i64::MAX };
    }
    v as i32
}

fn run_proc(p: Proc, args: &Args, out: &mut Vec<KeyRef>) {
    let argc = args.len();
    let push = |out: &mut Vec<KeyRef>, pos: usize, flags: u32| out.push(KeyRef { pos, flags });
    match p {
        Proc::Generic { store, count, first } => {
            if count >= argc {
                return;
            }
            let num = atoi(args.get(count)) as i64;
            if num < 1 || num > (argc as i64 - first as i64) {
                return;
            }
            for i in 0..num as usize {
                push(out, first + i, 0);
            }
            if store != 0 {
                push(out, store, 0);
            }
        }
        Proc::SortRo => push(out, 1, flags::RO | flags::ACCESS),
        Proc::Sort => {
            push(out, 1, flags::RO | flags::ACCESS);
            let mut store = None;
            let mut i = 2;
            while i < argc {
                let a = args.get(i);
                if c_eq(a, "limit") {
                    i += 2;
                } else if c_eq(a, "store") && i + 1 < argc {
                    // the last STORE wins, as in SORT itself
                    store = Some(i + 1);
                } else if c_eq(a, "get") || c_eq(a, "by") {
                    i += 1;
                }
                i += 1;
            }
            if let Some(pos) = store {
                push(out, pos, flags::OW | flags::UPDATE);
            }
        }
        Proc::Migrate => {
            let (mut first, mut num) = (3, 1);
            if argc > 6 {
                let mut i = 6;
                while i < argc {
                    let a = args.get(i);
                    if c_eq(a, "keys") {
                        if !args.get(3).is_empty() {
                            num = 0; // syntax error, left to MIGRATE itself
                        } else {
                            first = i + 1;
                            num = argc - first;
                        }
                        break;
                    }
                    if c_eq(a, "auth") {
                        i += 1;
                    } else if c_eq(a, "auth2") {
                        i += 2;
                    }
                    i += 1;
                }
            }
            for i in 0..num {
                push(out, first + i, flags::RW | flags::ACCESS | flags::DELETE);
            }
        }
        Proc::Georadius => {
            let mut stored = None;
            let mut i = 5;
            while i < argc {
                let a = args.get(i);
                if (c_eq(a, "store") || c_eq(a, "storedist")) && i + 1 < argc {
                    stored = Some(i + 1);
                    i += 1;
                }
                i += 1;
            }
            push(out, 1, 0);
            if let Some(pos) = stored {
                push(out, pos, 0);
            }
        }
        Proc::Xread => {
            let mut streams = None;
            let mut i = 1;
            while i < argc {
                let a = args.get(i);
                if c_eq(a, "block") || c_eq(a, "count") {
                    i += 1;
                } else if c_eq(a, "group") {
                    i += 2;
                } else if c_eq(a, "noack") {
                } else if c_eq(a, "streams") {
                    streams = Some(i);
                    break;
                } else {
                    break;
                }
                i += 1;
            }
            let Some(sp) = streams else { return };
            let num = argc - sp - 1;
            if num == 0 || !num.is_multiple_of(2) {
                return;
            }
            for pos in sp + 1..sp + 1 + num / 2 {
                push(out, pos, 0);
            }
        }
        Proc::Set => {
            // C: arg[0..3] == "get" (any case) and arg[3] == '\0'
            let get = (3..argc).any(|i| {
                let a = args.get(i);
                a.len() >= 3 && a[..3].eq_ignore_ascii_case(b"get") && (a.len() == 3 || a[3] == 0)
            });
            let f = if get {
                flags::RW | flags::ACCESS | flags::UPDATE
            } else {
                flags::OW | flags::UPDATE
            };
            push(out, 1, f);
        }
        Proc::Bitfield => {
            let mut readonly = true;
            let mut i = 2;
            while i < argc {
                let rem = argc - i - 1;
                let a = args.get(i);
                if c_eq(a, "get") && rem >= 2 {
                    i += 2;
                } else if (c_eq(a, "set") || c_eq(a, "incrby")) && rem >= 3 {
                    readonly = false;
                    break;
                } else if c_eq(a, "overflow") && rem >= 1 {
                    i += 1;
                } else {
                    readonly = false; // syntax error: assume a write
                    break;
                }
                i += 1;
            }
            let f = if readonly {
                flags::RO | flags::ACCESS
            } else {
                flags::RW | flags::ACCESS | flags::UPDATE
            };
            push(out, 1, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::doc;

    fn meta(name: &str) -> &'static CommandMeta {
        match name.split_once('|') {
            None => doc::find(name),
            Some((p, s)) => doc::find(p).and_then(|m| m.subcommand(s)),
        }
        .unwrap()
    }

    /// Keys (as strings) and flags of `argv` for command `name`.
    fn run(argv: &[&str]) -> Result<Vec<(String, u32)>, KeysError> {
        let mut data = Vec::new();
        let mut spans = Vec::new();
        for a in argv {
            spans.push((data.len(), data.len() + a.len()));
            data.extend_from_slice(a.as_bytes());
        }
        let args = Args::new(&data, &spans);
        let name = argv[0].to_ascii_lowercase();
        let m = match doc::find(&name) {
            Some(m) if m.is_container() && argv.len() > 1 => m.subcommand(&argv[1].to_ascii_lowercase()).unwrap(),
            Some(m) => m,
            None => panic!("no {name}"),
        };
        let mut out = vec![KeyRef { pos: 99, flags: 0 }]; // keys() appends
        keys(m, &args, &mut out)?;
        assert_eq!(out[0].pos, 99);
        Ok(out[1..].iter().map(|k| (argv[k.pos].to_string(), k.flags)).collect())
    }

    fn names(argv: &[&str]) -> Vec<String> {
        run(argv).unwrap().into_iter().map(|(k, _)| k).collect()
    }

    use flags::*;

    #[test]
    fn index_range() {
        assert_eq!(run(&["GET", "k"]).unwrap(), vec![("k".into(), RO | ACCESS)]);
        assert_eq!(names(&["MSET", "a", "1", "b", "2"]), ["a", "b"]);
        assert_eq!(names(&["MGET", "a", "b", "c"]), ["a", "b", "c"]);
        assert_eq!(names(&["RENAME", "a", "b"]), ["a", "b"]);
        assert_eq!(run(&["PING"]), Err(KeysError::NoKeys));
        assert_eq!(run(&["OBJECT", "ENCODING", "k"]).unwrap()[0].0, "k");
        // too few args: never panics, no keys
        assert_eq!(run(&["GET"]), Err(KeysError::Invalid));
        assert_eq!(run(&["RENAME", "a"]), Err(KeysError::Invalid));
    }

    #[test]
    fn set_and_bitfield_variable_flags() {
        assert_eq!(run(&["SET", "k", "v"]).unwrap(), vec![("k".into(), OW | UPDATE)]);
        assert_eq!(run(&["SET", "k", "v", "EX", "1", "get"]).unwrap()[0].1, RW | ACCESS | UPDATE);
        assert_eq!(run(&["SET", "k", "get"]).unwrap()[0].1, OW | UPDATE); // GET must be after the value
        assert_eq!(run(&["SET", "k", "v", "get\0x"]).unwrap()[0].1, RW | ACCESS | UPDATE);
        assert_eq!(run(&["SET", "k", "v", "getx"]).unwrap()[0].1, OW | UPDATE);
        assert_eq!(run(&["BITFIELD", "k", "GET", "u8", "0"]).unwrap()[0].1, RO | ACCESS);
        assert_eq!(
            run(&["BITFIELD", "k", "GET", "u8", "0", "SET", "u8", "0", "1"]).unwrap()[0].1,
            RW | ACCESS | UPDATE
        );
        assert_eq!(run(&["BITFIELD", "k", "GET", "u8"]).unwrap()[0].1, RW | ACCESS | UPDATE);
        assert_eq!(run(&["BITFIELD", "k"]).unwrap()[0].1, RO | ACCESS);
    }

    #[test]
    fn numkeys_commands() {
        assert_eq!(names(&["EVAL", "s", "2", "a", "b", "c"]), ["a", "b"]);
        assert_eq!(run(&["EVAL", "s", "0"]).unwrap(), vec![]); // no_mandatory_keys
        assert_eq!(run(&["EVAL", "s", "3", "a"]).unwrap(), vec![]);
        assert_eq!(names(&["FCALL", "f", "1", "a"]), ["a"]);
        assert_eq!(names(&["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"]), ["d", "a", "b"]);
        // bad numkeys: specs fail, the proc gives nothing
        assert_eq!(run(&["ZUNIONSTORE", "d", "0", "a"]), Err(KeysError::Invalid));
        assert_eq!(run(&["ZUNIONSTORE", "d", "x", "a"]), Err(KeysError::Invalid));
        assert_eq!(run(&["ZINTER", "5", "a"]), Err(KeysError::Invalid));
        assert_eq!(names(&["ZINTER", "2", "a", "b"]), ["a", "b"]);
        assert_eq!(names(&["LMPOP", "2", "a", "b", "LEFT"]), ["a", "b"]);
        assert_eq!(names(&["BLMPOP", "0", "1", "a", "LEFT"]), ["a"]);
        assert_eq!(names(&["BZMPOP", "0", "2", "a", "b", "MIN"]), ["a", "b"]);
        assert_eq!(names(&["SINTERCARD", "2", "a", "b", "LIMIT", "1"]), ["a", "b"]);
        // numkeys wrapping like Redis's (int) cast: 2^32 + 1 keys is one key
        assert_eq!(names(&["ZINTERCARD", "4294967297", "a"]), ["a"]);
        assert_eq!(atoi(b"  12x"), 12);
        assert_eq!(atoi(b"99999999999999999999"), -1);
        assert_eq!(atoi(b"-3"), -3);
    }

    #[test]
    fn sort_migrate_georadius_xread() {
        assert_eq!(run(&["SORT", "k"]).unwrap(), vec![("k".into(), RO | ACCESS)]);
        assert_eq!(
            run(&["SORT", "k", "BY", "store", "STORE", "d1", "LIMIT", "0", "1", "STORE", "d2"]).unwrap(),
            vec![("k".into(), RO | ACCESS), ("d2".into(), OW | UPDATE)]
        );
        assert_eq!(names(&["SORT", "k", "GET", "STORE"]), ["k"]);
        assert_eq!(names(&["SORT_RO", "k", "STORE", "x"]), ["k"]);
        assert_eq!(names(&["MIGRATE", "h", "1", "k", "0", "5"]), ["k"]);
        assert_eq!(names(&["MIGRATE", "h", "1", "", "0", "5", "AUTH", "keys", "KEYS", "a", "b"]), ["a", "b"]);
        assert_eq!(names(&["MIGRATE", "h", "1", "", "0", "5", "AUTH2", "u", "keys", "KEYS", "a"]), ["a"]);
        assert_eq!(run(&["MIGRATE", "h", "1", "k", "0", "5", "KEYS", "a"]), Err(KeysError::Invalid));
        assert_eq!(names(&["GEORADIUS", "k", "0", "0", "1", "m", "STORE", "d"]), ["k", "d"]);
        assert_eq!(names(&["GEORADIUS", "k", "0", "0", "1", "m", "STORE", "d", "STOREDIST", "e"]), ["k", "d", "e"]);
        // the keyword search never looks at the last argument
        assert_eq!(run(&["GEORADIUS", "k", "0", "0", "1", "m", "STORE"]).unwrap(), vec![("k".into(), RO | ACCESS)]);
        assert_eq!(names(&["XREAD", "COUNT", "1", "STREAMS", "a", "b", "0", "0"]), ["a", "b"]);
        // the spec's limit 2 halves the rest (odd counts round down); no ID at all fails
        assert_eq!(names(&["XREAD", "STREAMS", "a", "b", "0"]), ["a"]);
        assert_eq!(run(&["XREAD", "COUNT", "1", "STREAMS", "a"]), Err(KeysError::Invalid));
        assert_eq!(names(&["XREADGROUP", "GROUP", "g", "c", "NOACK", "STREAMS", "s", ">"]), ["s"]);
    }

    /// Every command, every argv length up to 7 over tricky words: never panics.
    #[test]
    fn arbitrary_argv_never_panics() {
        const WORDS: [&str; 12] = ["STREAMS", "STORE", "KEYS", "GET", "-1", "2", "99999999999", "", "LIMIT", "AUTH2", "1", "x"];
        fn walk(m: &'static CommandMeta, calls: &mut usize) {
            for len in 1..=7usize {
                for seed in 0..40usize {
                    let mut data = Vec::new();
                    let mut spans = Vec::new();
                    for i in 0..len {
                        let w = if i == 0 {
                            m.name
                        } else {
                            WORDS[(seed * 7 + i * 5 + seed / 3 * i) % WORDS.len()]
                        };
                        spans.push((data.len(), data.len() + w.len()));
                        data.extend_from_slice(w.as_bytes());
                    }
                    let mut out = Vec::new();
                    let r = keys(m, &Args::new(&data, &spans), &mut out);
                    assert!(out.iter().all(|k| k.pos < len), "{}: {out:?}", m.name);
                    assert!(r.is_ok() || out.is_empty());
                    *calls += 1;
                }
            }
            for s in m.subcommands {
                walk(s, calls);
            }
        }
        let mut calls = 0;
        for m in COMMANDS {
            walk(m, &mut calls);
        }
        assert!(calls > 50_000);
    }

    #[test]
    #[should_panic(expected = "movablekeys flag but src/commands/keyspec.rs has no key extraction rule")]
    fn startup_check_rejects_movable_command_without_rule() {
        use crate::commands::table::{Command, Cross, Handler};
        static META: CommandMeta = CommandMeta {
            name: "nosuchmovable",
            arity: -2,
            flags: &["movablekeys"],
            first_key: 0,
            last_key: 0,
            key_step: 0,
            acl_categories: &[],
            tips: &[],
            info: Doc::Array(&[]),
            docs: Doc::Map(&[]),
            subcommands: &[],
        };
        fn nop(_: &mut crate::server::client::Client, _: Args, _: &mut crate::protocol::Reply) {}
        let c = Command {
            meta: &META,
            handler: Handler::Client(nop),
            cross: Cross::None,
            flags: 0,
            subs: Vec::new(),
            id: 0,
            other_db: None,
            wide: None,
            specs: &EMPTY,
        };
        check_registered(std::iter::once(&c));
    }

    #[test]
    fn every_command_parses_and_movable_ones_have_rules() {
        fn walk(m: &'static CommandMeta, n: &mut usize) {
            *n += 1;
            let s = specs(m);
            assert!(std::ptr::eq(s, &EMPTY) || s.specs.len() == m.info.items()[8].items().len());
            if m.has_flag("movablekeys") {
                assert!(s.has_rule(), "{}", m.name);
            }
            for c in m.subcommands {
                walk(c, n);
            }
        }
        let mut n = 0;
        for m in COMMANDS {
            walk(m, &mut n);
        }
        assert_eq!(n, all().len());
        assert!(!specs(meta("get")).specs.is_empty());
        // the start-up check covers the registered table
        check_registered(crate::commands::table().all());
    }
}
