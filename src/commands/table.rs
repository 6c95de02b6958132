//! The declarative command table. Each entry joins Redis's metadata (arity,
//! flags, key positions, ACL categories, docs: generated into `meta.rs`) with
//! a handler and a cross-shard strategy. Dispatch, key extraction for
//! sharding, COMMAND output and the NOAUTH/arity checks all read this table.

use super::doc::{self, CommandMeta};
use crate::protocol::{Args, Reply};
pub use crate::runtime::tx::{HopLost, Tx};
pub use crate::runtime::Ctx;
use crate::server::client::Client;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

/// Runs on the shard that owns all the command's keys; touches only that shard.
pub type KeyedFn = fn(&mut Ctx, Args, &mut Reply);
/// Runs on the connection's shard with the client's state, synchronously.
pub type ClientFn = fn(&mut Client, Args, &mut Reply);
/// Runs on the connection's shard and may visit other shards.
pub type AsyncFn = for<'a> fn(&'a mut Client, Args<'a>, &'a mut Reply) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

/// A command that may need several steps on several shards (RENAME, COPY,
/// MSETNX, LCS), written once against a [`Tx`]: the transaction layer runs it
/// inline (every key on one shard: the hops are direct calls and the future
/// completes in one poll) or distributed (locks, hops as messages).
pub type PlanFn = for<'a, 's> fn(&'a mut Tx<'s>, Args<'a>, &'a mut Reply) -> PlanFut<'a>;
pub type PlanFut<'a> = Pin<Box<dyn Future<Output = Result<(), HopLost>> + 'a>>;
/// For a command that also touches a key in another database (MOVE, COPY ... DB):
/// the argument position of that key and the database, when the request names one.
pub type OtherDbFn = fn(&Args, usize) -> Option<(usize, usize)>;

/// What a blocking command's handler did (see [`BlockFn`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockResult {
    /// A reply (data, or an error) was written.
    Done,
    /// Nothing to serve: the client blocks until `deadline_ms` (unix ms; 0 = forever).
    Wait { deadline_ms: u64 },
}

/// A blocking command (BLPOP, BZPOPMIN, BLMOVE...), run on the shard owning its keys.
/// With `only == None` it is the command's first attempt: parse everything (the
/// timeout first, with [`parse_timeout`]), reply errors, serve the first key
/// that has data, or return `Wait`. With `only == Some(pos)` the blocking layer
/// serves a blocked client because the key at argument `pos` may have data: try
/// that key only and never reply an error for a missing or wrong-typed key
/// (return `Wait`: the client stays blocked, as in Redis).
pub type BlockFn = fn(&mut Ctx, Args, Option<usize>, &mut Reply) -> BlockResult;

pub enum Handler {
    Keyed(KeyedFn),
    Block(BlockFn),
    Plan(PlanFn),
    Client(ClientFn),
    Async(AsyncFn),
}

/// How a keyed command whose keys live on several shards runs.
#[derive(Clone, Copy)]
pub enum Cross {
    /// Keys never span shards (one key, or the handler rejects it).
    None,
    /// Split the keys by shard, run the same command on each part under the
    /// transaction's locks, and combine the replies.
    Split(Combine),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Combine {
    /// Integer replies are added up (DEL, EXISTS, TOUCH, UNLINK).
    Sum,
    /// Array replies are merged back into key order (MGET).
    Merge,
    /// Every part answers +OK (MSET).
    AllOk,
}

pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const NOAUTH: u32 = 1 << 4;
    pub const FAST: u32 = 1 << 5;
    pub const NOSCRIPT: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const PUBSUB: u32 = 1 << 9;
    pub const MOVABLE: u32 = 1 << 10;
    pub const ALLOW_BUSY: u32 = 1 << 11;
    pub const NO_MULTI: u32 = 1 << 12;

    pub fn parse(names: &[&str]) -> u32 {
        names.iter().fold(0, |acc, n| {
            acc | match *n {
                "write" => WRITE,
                "readonly" => READONLY,
                "denyoom" => DENYOOM,
                "admin" => ADMIN,
                "no_auth" => NOAUTH,
                "fast" => FAST,
                "noscript" => NOSCRIPT,
                "loading" => LOADING,
                "stale" => STALE,
                "pubsub" => PUBSUB,
                "movablekeys" => MOVABLE,
                "allow_busy" => ALLOW_BUSY,
                "no_multi" => NO_MULTI,
                _ => 0,
            }
        })
    }
}

pub struct Command {
    pub meta: &'static CommandMeta,
    pub handler: Handler,
    pub cross: Cross,
    pub flags: u32,
    /// Full names of a container's implemented subcommands (sorted).
    pub subs: Vec<&'static str>,
    /// Dense index for per-shard command statistics.
    pub id: usize,
    /// A key in another database that the command locks and writes (MOVE, COPY DB).
    pub other_db: Option<OtherDbFn>,
    /// The structured key specs: where routing finds the keys.
    pub specs: &'static super::keyspec::ParsedSpecs,
    /// For a plan that may read keys its arguments do not name (SORT ... BY /
    /// GET patterns): the whole-shard lock mode such a request needs.
    pub wide: Option<WideFn>,
}

/// See [`Command::wide`].
pub type WideFn = fn(&Args) -> Option<crate::runtime::locks::Mode>;

impl Command {
    #[inline]
    pub fn name(&self) -> &'static str {
        self.meta.name
    }
    #[inline]
    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }
    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.meta.arity;
        if a > 0 {
            argc == a as usize
        } else {
            argc >= (-a) as usize
        }
    }

    /// MSET-style commands need whole key/value groups. Redis checks this in
    /// the handler, so inside MULTI such a command is queued and fails at EXEC.
    pub fn groups_ok(&self, argc: usize) -> bool {
        let step = self.meta.key_step;
        if step <= 1 || self.meta.last_key >= 0 || self.meta.first_key <= 0 {
            return true;
        }
        argc.saturating_sub(self.meta.first_key as usize).is_multiple_of(step as usize)
    }

    /// Key argument positions from the legacy (first, last, step) triple
    /// (MSET-style group checks and splitting; routing uses the key specs).
    pub fn key_positions(&self, argc: usize) -> KeyPositions {
        let m = self.meta;
        if m.first_key <= 0 || argc <= m.first_key as usize {
            return KeyPositions {
                next: 0,
                last: 0,
                step: 1,
                empty: true,
            };
        }
        let first = m.first_key as usize;
        let last = if m.last_key < 0 { argc as i64 + m.last_key as i64 } else { m.last_key as i64 };
        let last = (last.max(0) as usize).min(argc - 1);
        KeyPositions {
            next: first,
            last,
            step: m.key_step.max(1) as usize,
            empty: last < first,
        }
    }

    pub fn subcommand_metas(&self) -> Vec<&'static CommandMeta> {
        self.subs.iter().filter_map(|n| table().get(n)).map(|c| c.meta).collect()
    }
}

pub struct KeyPositions {
    next: usize,
    last: usize,
    step: usize,
    empty: bool,
}

impl Iterator for KeyPositions {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.empty || self.next > self.last {
            return None;
        }
        let i = self.next;
        self.next += self.step;
        Some(i)
    }
}

pub struct Table {
    /// Keyed by lower-case full name bytes ("get", "client|list"); ahash: this is
    /// looked up once per command.
    map: HashMap<&'static [u8], Command, ahash::RandomState>,
}

impl Table {
    fn meta(name: &str) -> &'static CommandMeta {
        match name.split_once('|') {
            None => doc::find(name),
            Some((parent, sub)) => doc::find(parent).and_then(|p| p.subcommand(sub)),
        }
        .unwrap_or_else(|| panic!("no Redis metadata for command {name}: add it to tools/commands.txt"))
    }

    fn add(&mut self, name: &'static str, handler: Handler, cross: Cross) -> &mut Command {
        let meta = Self::meta(name);
        let flags = flags::parse(meta.flags);
        let id = self.map.get(meta.name.as_bytes()).map(|c| c.id).unwrap_or(self.map.len());
        self.map.insert(
            meta.name.as_bytes(),
            Command {
                meta,
                handler,
                cross,
                flags,
                subs: Vec::new(),
                id,
                other_db: None,
                wide: None,
                specs: super::keyspec::specs(meta),
            },
        );
        self.map.get_mut(meta.name.as_bytes()).expect("just inserted")
    }

    pub fn keyed(&mut self, name: &'static str, f: KeyedFn) -> &mut Command {
        self.add(name, Handler::Keyed(f), Cross::None)
    }
    pub fn keyed_split(&mut self, name: &'static str, f: KeyedFn, c: Combine) -> &mut Command {
        self.add(name, Handler::Keyed(f), Cross::Split(c))
    }
    pub fn blocking(&mut self, name: &'static str, f: BlockFn) -> &mut Command {
        self.add(name, Handler::Block(f), Cross::None)
    }
    pub fn plan(&mut self, name: &'static str, f: PlanFn) -> &mut Command {
        self.add(name, Handler::Plan(f), Cross::None)
    }
    pub fn client(&mut self, name: &'static str, f: ClientFn) -> &mut Command {
        self.add(name, Handler::Client(f), Cross::None)
    }
    pub fn asynch(&mut self, name: &'static str, f: AsyncFn) -> &mut Command {
        self.add(name, Handler::Async(f), Cross::None)
    }

    /// Number of entries (the size of per-command statistics tables).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every entry, subcommands included.
    pub fn all(&self) -> impl Iterator<Item = &Command> {
        self.map.values()
    }

    pub fn get(&self, full_name: &str) -> Option<&Command> {
        self.map.get(full_name.as_bytes())
    }

    /// Every implemented top-level command, sorted by name.
    pub fn commands(&self) -> Vec<&Command> {
        let mut v: Vec<&Command> = self.map.values().filter(|c| !c.meta.name.contains('|')).collect();
        v.sort_by_key(|c| c.meta.name);
        v
    }
}

static TABLE: OnceLock<&'static Table> = OnceLock::new();

pub fn table() -> &'static Table {
    TABLE.get_or_init(|| {
        let mut t = Table { map: HashMap::default() };
        super::register_all(&mut t);
        // Containers whose subcommands are registered get an entry of their own.
        let names: Vec<&'static str> = t.map.values().map(|c| c.meta.name).collect();
        let parents: Vec<&'static str> = names.iter().filter_map(|n| n.split_once('|').map(|(p, _)| p)).collect();
        for p in parents {
            if !t.map.contains_key(p.as_bytes()) {
                t.add(Table::meta(p).name, Handler::Client(container_without_sub), Cross::None);
            }
        }
        super::keyspec::check_registered(t.map.values());
        // Containers list their implemented subcommands by full name (sorted).
        let names: Vec<&'static str> = t.map.values().map(|c| c.meta.name).collect();
        let mut links: Vec<(&'static str, &'static str)> = names
            .iter()
            .filter_map(|n| n.split_once('|').map(|(p, _)| (p, *n)))
            .map(|(p, n)| (doc::find(p).map(|m| m.name).unwrap_or(p), n))
            .collect();
        links.sort();
        for (parent, sub) in links {
            if let Some(p) = t.map.get_mut(parent.as_bytes()) {
                p.subs.push(sub);
            }
        }
        let t: &'static Table = Box::leak(Box::new(t));
        t
    })
}

/// A container reached with no subcommand: only possible if its arity allows
/// that, in which case Redis reports the missing subcommand like an unknown one.
fn container_without_sub(_c: &mut Client, args: Args, out: &mut Reply) {
    if args.len() < 2 {
        return out.error("ERR wrong number of arguments");
    }
    write_lookup_error(LookupError::UnknownSub, &args, out);
}

/// Why a request could not be mapped to a command.
pub enum LookupError {
    Unknown,
    UnknownSub,
}

/// Redis's lookupCommand: the command, or for a container the subcommand.
#[inline]
pub fn lookup(args: &Args) -> Result<&'static Command, LookupError> {
    let t = table();
    if args.is_empty() {
        return Err(LookupError::Unknown);
    }
    let name = args.get(0);
    let mut buf = [0u8; 32];
    if name.len() > buf.len() {
        return Err(LookupError::Unknown);
    }
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let Some(cmd) = t.map.get(&*lower) else { return Err(LookupError::Unknown) };
    if args.len() < 2 || !cmd.meta.is_container() {
        return Ok(cmd);
    }
    let sub = args.get(1);
    let mut full = Vec::with_capacity(lower.len() + 1 + sub.len());
    full.extend_from_slice(lower);
    full.push(b'|');
    full.extend(sub.iter().map(|c| c.to_ascii_lowercase()));
    match t.map.get(full.as_slice()) {
        Some(c) => Ok(c),
        None => Err(LookupError::UnknownSub),
    }
}

/// C's "%.Ns": at most `n` bytes, stopping at a NUL.
fn c_str(b: &[u8], n: usize) -> &[u8] {
    let b = &b[..b.len().min(n)];
    match memchr::memchr(0, b) {
        Some(z) => &b[..z],
        None => b,
    }
}

/// The exact error Redis gives for an unknown command or subcommand.
pub fn write_lookup_error(e: LookupError, args: &Args, out: &mut Reply) {
    let mut msg = Vec::with_capacity(96);
    match e {
        LookupError::UnknownSub => {
            msg.extend_from_slice(b"ERR unknown subcommand '");
            msg.extend_from_slice(c_str(args.get(1), 128));
            msg.extend_from_slice(b"'. Try ");
            msg.extend(c_str(args.get(0), usize::MAX).iter().map(|c| c.to_ascii_uppercase()));
            msg.extend_from_slice(b" HELP.");
        }
        LookupError::Unknown => {
            msg.extend_from_slice(b"ERR unknown command '");
            msg.extend_from_slice(c_str(args.get(0), 128));
            msg.extend_from_slice(b"', with args beginning with: ");
            let mut a: Vec<u8> = Vec::new();
            for i in 1..args.len() {
                if a.len() >= 128 {
                    break;
                }
                let prec = 128 - a.len();
                a.push(b'\'');
                a.extend_from_slice(c_str(args.get(i), prec));
                a.extend_from_slice(b"' ");
            }
            msg.extend_from_slice(&a);
        }
    }
    out.error_bytes(&msg);
}

pub fn write_arity_error(cmd: &Command, out: &mut Reply) {
    out.error(&format!("ERR wrong number of arguments for '{}' command", cmd.meta.name));
}

/// getTimeoutFromObjectOrReply (seconds, fractional allowed): the absolute
/// deadline in unix ms (0 = block forever), or None after replying the error.
pub fn parse_timeout(arg: &[u8], now_ms: u64, out: &mut Reply) -> Option<u64> {
    let Some(secs) = crate::util::num::string2ld(arg) else {
        out.error("ERR timeout is not a float or out of range");
        return None;
    };
    // (long long) ceill(secs * 1000): out of range converts to LLONG_MIN on
    // x86, which Redis then reports as negative.
    let ms = (secs * 1000.0).ceil();
    if !(ms >= 0.0 && ms < i64::MAX as f64) {
        out.error("ERR timeout is negative");
        return None;
    }
    let ms = ms as u64;
    if ms == 0 {
        return Some(0);
    }
    // Redis adds the clock without a check; a deadline past the end of time blocks.
    Some(now_ms.saturating_add(ms))
}
