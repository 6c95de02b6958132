//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT LOAD / EXISTS / FLUSH
//! (Redis's eval.c). The Lua environment and the per-shard VMs are in
//! `scripting/`; here: argument checks, where the script runs, its locks.

use super::table::{AsyncFn, Command, Table};
use crate::exec::{lock_keys, Route};
use crate::protocol::{Args, Reply};
use crate::runtime::locks::{LockReq, Mode as LockMode};
use crate::runtime::tx::{HopLost, Tx};
use crate::runtime::{self, Ctx};
use crate::scripting::{self, Mode, Outcome, Target};
use crate::server::client::Client;
use std::sync::atomic::Ordering;

pub fn register(t: &mut Table) {
    t.asynch("eval", EVAL);
    t.asynch("evalsha", EVALSHA);
    t.asynch("eval_ro", EVAL_RO);
    t.asynch("evalsha_ro", EVALSHA_RO);
    t.client("script|load", script_load);
    t.client("script|exists", script_exists);
    t.client("script|flush", script_flush);
    t.client("script|kill", script_kill);
    t.client("script|help", script_help);
}

const EVAL: AsyncFn = |c, args, out| Box::pin(eval(c, args, out, false, false));
const EVALSHA: AsyncFn = |c, args, out| Box::pin(eval(c, args, out, true, false));
const EVAL_RO: AsyncFn = |c, args, out| Box::pin(eval(c, args, out, false, true));
const EVALSHA_RO: AsyncFn = |c, args, out| Box::pin(eval(c, args, out, true, true));

async fn eval(c: &mut Client, args: Args<'_>, out: &mut Reply, by_sha: bool, ro: bool) {
    let numkeys = match crate::util::num::string2ll(args.get(2)) {
        Some(n) => n,
        None => return out.error(crate::protocol::reply::err::NOT_INT),
    };
    if numkeys > args.len() as i64 - 3 {
        return out.error("ERR Number of keys can't be greater than number of args");
    }
    if numkeys < 0 {
        return out.error("ERR Number of keys can't be negative");
    }
    let (sha, script) = if by_sha {
        let sha = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
        match (sha.len() == 40).then(|| scripting::lookup(&sha)).flatten() {
            Some(s) => (sha, s),
            None => return out.error("NOSCRIPT No matching script. Please use EVAL."),
        }
    } else {
        match scripting::load(args.get(1)) {
            Ok(x) => x,
            Err(e) => return out.error(&e),
        }
    };
    if ro && script.flagged && !script.no_writes {
        return out.error("ERR Can not execute a script with write flag using *_ro command.");
    }
    let read_only = ro || script.no_writes;
    execute(c, &args, out, c_cmd(by_sha, ro), Target::Script { sha, script }, numkeys as usize, read_only).await
}

/// Whether EVAL / EVALSHA / FCALL (and their _RO forms) count as `denyoom`
/// for the OOM rule: scripts with a shebang and functions are, unless
/// flagged `no-writes` or `allow-oom` (scriptFlagsToCmdFlags).
pub fn denyoom_script(cmd: &Command, args: &Args) -> bool {
    match cmd.meta.name {
        "eval" | "eval_ro" => scripting::denyoom_body(args.get(1)),
        "evalsha" | "evalsha_ro" => {
            let sha = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
            (sha.len() == 40)
                .then(|| scripting::lookup(&sha))
                .flatten()
                .is_some_and(|s| scripting::denyoom_body(&s.body))
        }
        "fcall" | "fcall_ro" => scripting::functions::lookup(args.get(1)).is_some_and(|(lib, i)| {
            let allow_oom = 1 << 1;
            lib.functions
                .get(i)
                .is_some_and(|f| f.flags & (scripting::functions::NO_WRITES | allow_oom) == 0)
        }),
        _ => false,
    }
}

/// getCommandFlags' CMD_WRITE for a script (scriptFlagsToCmdFlags): one
/// with a shebang, or a function, writes unless flagged `no-writes`; one in
/// compatibility mode is checked at its first write instead.
pub fn write_script(cmd: &Command, args: &Args) -> bool {
    let shebang_writes = scripting::writes_body;
    match cmd.meta.name {
        "eval" | "eval_ro" => shebang_writes(args.get(1)),
        "evalsha" | "evalsha_ro" => {
            let sha = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
            (sha.len() == 40)
                .then(|| scripting::lookup(&sha))
                .flatten()
                .is_some_and(|s| shebang_writes(&s.body))
        }
        "fcall" | "fcall_ro" => scripting::functions::lookup(args.get(1))
            .is_some_and(|(lib, i)| lib.functions.get(i).is_some_and(|f| f.flags & scripting::functions::NO_WRITES == 0)),
        _ => false,
    }
}

/// Runs an EVAL script or a function (FCALL) whose numkeys was checked:
/// where it runs, which locks it takes, and the restart in the global mode.
///
/// * Declared keys all on this shard, and no transaction holding anything
///   here: the script runs right away, synchronously, without locks
///   (nothing can interleave, as for a single-shard command).
/// * Declared keys all on one shard: a transaction locking them (shared
///   when `read_only`), the run as one hop there.
/// * Keys on several shards, or a script known to touch undeclared keys:
///   every shard locked, the run on this shard in the global mode.
///
/// A run in the per-shard mode that meets an undeclared key before writing
/// is abandoned and restarted globally, and the script is remembered as global.
#[allow(clippy::too_many_arguments)]
pub(super) async fn execute(c: &mut Client, args: &Args<'_>, out: &mut Reply, cmd: &'static Command, target: Target, nk: usize, read_only: bool) {
    let keys: Vec<Vec<u8>> = (3..3 + nk).map(|i| args.get(i).to_vec()).collect();
    let argv: Vec<Vec<u8>> = (3 + nk..args.len()).map(|i| args.get(i).to_vec()).collect();
    let n = runtime::nshards();
    let mut route = Route::default();
    route.compute(cmd, args, n);
    let (db, resp3) = (c.db, c.resp3);
    let global_flag = target.global();
    let mut global = global_flag.load(Ordering::Relaxed) || route.target.is_none();
    let me = runtime::shard_id();
    if !global && route.target == Some(me) && runtime::with_shard(|s| s.locks.is_empty()) {
        let now = runtime::clock::wall_ms();
        match runtime::with_shard(|s| scripting::run(s, &target, &keys, &argv, Mode::Local, db, now, read_only, resp3)) {
            Outcome::Reply(b) => return out.raw(&b),
            Outcome::Rerun => {
                global_flag.store(true, Ordering::Relaxed);
                global = true;
            }
        }
    }
    loop {
        let r = if global {
            let mode = if read_only { LockMode::Shared } else { LockMode::Exclusive };
            let parts = (0..n).map(|s| (s, LockReq::shard_wide(mode))).collect();
            let mut tx = Tx::begin(db, parts, Vec::new()).await;
            let me = runtime::shard_id();
            run_hop(&mut tx, me, &target, keys.clone(), argv.clone(), Mode::Global, read_only, resp3).await
        } else {
            let home = route.target.unwrap_or_else(runtime::shard_id);
            let mut ks = route.keys.clone();
            if read_only {
                ks.iter_mut().for_each(|k| *k |= crate::exec::SHARED_KEY);
            }
            let parts = if ks.is_empty() {
                Vec::new()
            } else {
                vec![(
                    home,
                    LockReq {
                        keys: lock_keys(cmd, args, &ks, db),
                        shard: None,
                    },
                )]
            };
            let mut tx = Tx::begin(db, parts, Vec::new()).await;
            run_hop(&mut tx, home, &target, keys.clone(), argv.clone(), Mode::Local, read_only, resp3).await
        };
        match r {
            Ok(Outcome::Reply(b)) => return out.raw(&b),
            Ok(Outcome::Rerun) => {
                global_flag.store(true, Ordering::Relaxed);
                global = true;
            }
            Err(HopLost) => return out.error("ERR internal error while running the script"),
        }
    }
}

fn c_cmd(by_sha: bool, ro: bool) -> &'static Command {
    let name = match (by_sha, ro) {
        (false, false) => "eval",
        (true, false) => "evalsha",
        (false, true) => "eval_ro",
        (true, true) => "evalsha_ro",
    };
    super::table::table().get(name).expect("registered")
}

#[allow(clippy::too_many_arguments)]
async fn run_hop(
    tx: &mut Tx<'_>,
    shard: usize,
    target: &Target,
    keys: Vec<Vec<u8>>,
    argv: Vec<Vec<u8>>,
    mode: Mode,
    read_only: bool,
    resp3: bool,
) -> Result<Outcome, HopLost> {
    let target = target.clone();
    tx.hop(shard, move |ctx: &mut Ctx| {
        let (db, now) = (ctx.db, ctx.now);
        scripting::run(ctx.shard, &target, &keys, &argv, mode, db, now, read_only, resp3)
    })
    .await
}

fn script_load(_c: &mut Client, args: Args, out: &mut Reply) {
    match scripting::load(args.get(2)) {
        Ok((sha, _)) => out.bulk(sha.as_bytes()),
        Err(e) => out.error(&e),
    }
}

fn script_exists(_c: &mut Client, args: Args, out: &mut Reply) {
    out.array_len(args.len() - 2);
    for i in 2..args.len() {
        let sha = String::from_utf8_lossy(args.get(i));
        out.int(scripting::lookup(&sha).is_some() as i64);
    }
}

fn script_flush(_c: &mut Client, args: Args, out: &mut Reply) {
    match args.len() {
        2 => {}
        3 if args.is(2, "async") || args.is(2, "sync") => {}
        _ => return out.error("ERR SCRIPT FLUSH only support SYNC|ASYNC option"),
    }
    scripting::flush();
    out.ok();
}

fn script_kill(_c: &mut Client, _args: Args, out: &mut Reply) {
    match scripting::kill(true) {
        Ok(()) => out.ok(),
        Err(e) => out.error(e),
    }
}

/// SCRIPT HELP (Redis's text; DEBUG is listed there, Tessera answers it as unknown).
const SCRIPT_HELP: &[&str] = &[
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
];

fn script_help(_c: &mut Client, _args: Args, out: &mut Reply) {
    out.array_len(SCRIPT_HELP.len() + 3);
    out.status(b"SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
    for l in SCRIPT_HELP {
        out.status(l.as_bytes());
    }
    out.status(b"HELP");
    out.status(b"    Prints this help.");
}
