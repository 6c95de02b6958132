//! Lua scripting (EVAL, EVALSHA, SCRIPT; functions in `functions.rs`): Lua
//! 5.1 through mlua, with the environment Redis 7.0 gives scripts, run
//! atomically across shards.
//!
//! * **Cache.** Script bodies live in one process-wide map by SHA1 (SCRIPT
//!   LOAD / EXISTS / FLUSH see every shard's scripts); each shard has its own
//!   Lua VM (thread-local, like the rest of its state) and compiles a body the
//!   first time it runs there. SCRIPT FLUSH bumps a generation: every VM is
//!   rebuilt before its next script, as Redis resets its one VM.
//! * **Where a script runs.** A script whose declared keys all live on one
//!   shard runs *on that shard*, under locks on those keys (exclusive; shared
//!   for EVAL_RO): its `redis.call`s are direct calls, nothing can interleave.
//! * **Undeclared keys, keys on several shards.** Queue libraries (BullMQ,
//!   Sidekiq) touch keys they do not declare. Such a script runs in the
//!   *global* mode: every shard locked exclusively, the script on the
//!   connection's shard, and `redis.call` on another shard's key is a blocking
//!   call to that shard (`runtime::call_blocking`; deadlock-free because the
//!   script holds every shard's lock, so no other script can be waiting for
//!   this thread). The first time a script touches a key it did not declare
//!   (or a key on another shard) before it has written anything, its run is
//!   abandoned and restarted in the global mode, and the script is
//!   remembered as global. One that already wrote in the per-shard mode
//!   carries on when the key is on its shard and free, and otherwise gets an
//!   error for that call.

pub mod convert;
pub mod functions;
pub mod lualibs;

use crate::commands::table::{self, flags, Combine, Cross, Handler};
use crate::exec::{self, key_pos, Route};
use crate::protocol::{Args, Reply};
use crate::runtime::{self, Shard};
use mlua::{Function, Lua, MultiValue, Table, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A cached script body and what was learned about it.
pub struct Script {
    pub body: Vec<u8>,
    /// Flags from a `#!lua flags=...` line (`no-writes`...).
    pub no_writes: bool,
    /// It has a `#!lua` line: its flags apply (EVAL_RO refuses it without no-writes).
    pub flagged: bool,
    /// It touched keys it did not declare, or keys on several shards: it runs
    /// with every shard locked.
    pub global: AtomicBool,
}

static CACHE: RwLock<Option<HashMap<String, Arc<Script>>>> = RwLock::new(None);
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The SHA1 of a body, lower-case hex.
pub fn sha1hex(b: &[u8]) -> String {
    sha1_smol::Sha1::from(b).digest().to_string()
}

pub fn lookup(sha: &str) -> Option<Arc<Script>> {
    CACHE.read().ok()?.as_ref()?.get(&sha.to_ascii_lowercase()).cloned()
}

pub fn cached_count() -> usize {
    CACHE.read().ok().and_then(|c| c.as_ref().map(|m| m.len())).unwrap_or(0)
}

/// Bytes of cached script bodies (INFO `used_memory_scripts_eval`).
pub fn cached_bytes() -> usize {
    CACHE
        .read()
        .ok()
        .and_then(|c| c.as_ref().map(|m| m.iter().map(|(k, v)| k.len() + v.body.capacity()).sum()))
        .unwrap_or(0)
}

/// SCRIPT FLUSH: every body goes, every VM is rebuilt before its next run.
pub fn flush() {
    if let Ok(mut c) = CACHE.write() {
        *c = None;
    }
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Parses a `#!lua` first line (evalExtractShebangFlags): the body offset
/// where Lua starts (the line feed kept, so line numbers stay right), the
/// no-writes flag, and whether there was a shebang at all (without one,
/// the script runs in Redis's compatibility mode, flags ignored).
fn shebang(body: &[u8]) -> Result<(usize, bool, bool), String> {
    if !body.starts_with(b"#!") {
        return Ok((0, false, false));
    }
    // strchr: the first line feed, unless a NUL comes first.
    let end = match body.iter().position(|&c| c == b'\n' || c == 0) {
        Some(i) if body[i] == b'\n' => i,
        _ => return Err("ERR Invalid script shebang".into()),
    };
    let parts = match crate::util::sds::split_args(&body[..end]) {
        Some(p) if !p.is_empty() => p,
        _ => return Err("ERR Invalid engine in script shebang".into()),
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if parts[0] != b"#!lua" {
        return Err(format!("ERR Unexpected engine in script shebang: {}", text(&parts[0])));
    }
    let mut no_writes = false;
    for p in &parts[1..] {
        let Some(list) = p.strip_prefix(b"flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {}", text(p)));
        };
        if list.is_empty() {
            continue;
        }
        for f in list.split(|&c| c == b',') {
            match functions::FLAG_NAMES.iter().position(|n| n.as_bytes() == f) {
                Some(0) => no_writes = true,
                Some(_) => {}
                None => return Err(format!("ERR Unexpected flag in script shebang: {}", text(f))),
            }
        }
    }
    Ok((end, no_writes, true))
}

/// processCommand's flags for a script (scriptFlagsToCmdFlags): one with a
/// shebang is `denyoom` unless flagged `no-writes` or `allow-oom`; one
/// without (compatibility mode) is not.
pub fn denyoom_body(body: &[u8]) -> bool {
    if !body.starts_with(b"#!") {
        return false;
    }
    let (_, no_writes, _) = shebang(body).unwrap_or((0, true, false));
    !no_writes && !allow_oom_flag(body)
}

/// processCommand's CMD_WRITE for a script: one with a shebang writes unless
/// flagged `no-writes`; one without (compatibility mode) does not.
pub fn writes_body(body: &[u8]) -> bool {
    body.starts_with(b"#!") && !shebang(body).map(|(_, no_writes, _)| no_writes).unwrap_or(true)
}

/// Whether a shebang line lists `allow-oom`.
fn allow_oom_flag(body: &[u8]) -> bool {
    let end = body.iter().position(|&c| c == b'\n').unwrap_or(body.len());
    crate::util::sds::split_args(&body[..end])
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.strip_prefix(b"flags="))
        .any(|l| l.split(|&c| c == b',').any(|f| f == b"allow-oom"))
}

/// Adds a body to the cache after compiling it on this shard's VM (so a
/// syntax error is reported and nothing is cached). Returns its SHA1.
pub fn load(body: &[u8]) -> Result<(String, Arc<Script>), String> {
    let sha = sha1hex(body);
    if let Some(s) = lookup(&sha) {
        return Ok((sha, s));
    }
    let (_, no_writes, flagged) = shebang(body)?;
    with_vm(|vm| vm.compile(&sha, body).map(|_| ()))??;
    let s = Arc::new(Script {
        body: body.to_vec(),
        no_writes,
        flagged,
        global: AtomicBool::new(false),
    });
    let mut c = CACHE.write().map_err(|_| "ERR script cache poisoned".to_string())?;
    let s = c.get_or_insert_with(HashMap::new).entry(sha.clone()).or_insert(s).clone();
    Ok((sha, s))
}

// ---------------------------------------------------------------- the per-shard VM

struct Vm {
    lua: Lua,
    generation: u64,
    /// Compiled bodies by SHA1.
    funcs: HashMap<String, Function>,
    /// The globals table every script sees (read-only to scripts).
    real_globals: Table,
    env: Table,
    /// The environment of every library's code (functions).
    fenv: Table,
    /// Runs a library's body in the load environment: (ok, error).
    run_library_fn: Function,
    /// Calls a function's callback with KEYS and ARGV under the error handler.
    fcall: Function,
    /// Callbacks of the libraries loaded on this VM, by library id, in
    /// registration order.
    libs: HashMap<u64, Vec<Function>>,
    /// The registry generation `libs` was last checked against.
    lib_generation: u64,
    handler: Function,
    setfenv: Function,
    runs: u64,
}

thread_local! {
    static VM: RefCell<Option<Vm>> = const { RefCell::new(None) };
}

/// Runs `f` with this shard's VM, (re)building it first if needed; the
/// error reply when the VM cannot be built (out of memory).
fn with_vm<R>(f: impl FnOnce(&mut Vm) -> R) -> Result<R, String> {
    VM.with(|cell| {
        let mut slot = cell.borrow_mut();
        let g = GENERATION.load(Ordering::SeqCst);
        if slot.as_ref().is_none_or(|v| v.generation != g) {
            *slot = Some(Vm::new(g).map_err(|e| format!("ERR cannot create the Lua VM: {e}"))?);
        }
        match slot.as_mut() {
            Some(vm) => Ok(f(vm)),
            None => Err("ERR cannot create the Lua VM".into()),
        }
    })
}

/// The Lua side of the sandbox and of `redis.call` (our own code): globals
/// are read through a proxy whose writes fail like Redis's read-only tables,
/// and whose missing names fail like Redis's protected globals.
const PRELUDE: &str = r#"
local G, ABORT, lib_names, register_raw = ...
local error, type, tostring, setmetatable, rawget, string, ipairs = error, type, tostring, setmetatable, rawget, string, ipairs
local getinfo = debug.getinfo
local function readonly() error("Attempt to modify a readonly table", 2) end
local function missing(_, k) error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2) end
setmetatable(G, {__index = missing, __newindex = readonly})
local env = setmetatable({}, {__index = G, __newindex = readonly})
G._G = env
for _, name in ipairs(lib_names) do
  local lib = G[name]
  G[name] = setmetatable({}, {__index = lib, __newindex = readonly})
end
local redis = rawget(G, "redis")
G.redis = setmetatable({}, {__index = redis, __newindex = readonly})
-- rawset and setmetatable must not get around the read-only tables either.
local protected = setmetatable({}, {__mode = "k"})
protected[G] = true
protected[env] = true
for _, name in ipairs(lib_names) do protected[rawget(G, name)] = true end
protected[rawget(G, "redis")] = true
local raw_set, set_mt = rawset, setmetatable
G.rawset = function(t, k, v)
  if protected[t] then error("Attempt to modify a readonly table", 0) end
  return raw_set(t, k, v)
end
G.setmetatable = function(t, mt)
  if protected[t] then error("Attempt to modify a readonly table", 0) end
  return set_mt(t, mt)
end
-- Redis's pcall: an error table with an err field is handed back as its text.
local real_pcall = pcall
local function unwrap(ok, ...)
  if not ok then
    local e = ...
    if type(e) == "table" then
      local m = rawget(e, "err")
      if type(m) == "string" or type(m) == "number" then return false, m end
    end
  end
  return ok, ...
end
G.pcall = function(...) return unwrap(real_pcall(...)) end
local function handler(e)
  if e == ABORT then return e end
  if type(e) == "userdata" then
    -- An error raised from Rust (the busy hook): its message, without mlua's prefix.
    local msg = string.gsub(tostring(e), "^runtime error: ", "")
    msg = string.gsub(msg, "\nstack traceback:.*$", "")
    e = {err = "ERR " .. msg}
  elseif type(e) ~= "table" then
    e = {err = "ERR " .. tostring(e)}
  end
  local lvl = 2
  while true do
    local i = getinfo(lvl, "Sl")
    if not i then break end
    if i.source == "@user_script" or i.source == "@user_function" then
      e.source = i.source
      e.line = i.currentline
      break
    end
    lvl = lvl + 1
  end
  return e
end
-- Functions: one environment for every library's code. While a library's
-- body runs (FUNCTION LOAD) names resolve in the load API: a `redis` table
-- with register_function, log, the LOG_ constants and the version only;
-- afterwards (FCALL) in the globals scripts see.
local load_redis_raw = setmetatable({}, {__index = missing})
local load_redis = setmetatable({}, {__index = load_redis_raw, __newindex = readonly})
local load_api = setmetatable({redis = load_redis}, {__index = missing})
local load_api_proxy = setmetatable({}, {__index = load_api, __newindex = readonly})
local fenv_mt = {__index = G, __newindex = readonly}
local fenv = setmetatable({}, fenv_mt)
protected[fenv] = true
protected[load_redis] = true
protected[load_redis_raw] = true
protected[load_api] = true
protected[load_api_proxy] = true
load_redis_raw.register_function = register_raw
local function run_library(f)
  fenv_mt.__index = load_api_proxy
  local ok, e = real_pcall(f)
  fenv_mt.__index = G
  return ok, e
end
-- FCALL: the callback gets KEYS and ARGV as its arguments.
local xpcall = xpcall
local function fcall(f, keys, args)
  return xpcall(function() return f(keys, args) end, handler)
end
return env, handler, fenv, run_library, load_redis_raw, fcall
"#;

impl Vm {
    fn new(generation: u64) -> mlua::Result<Vm> {
        use mlua::StdLib;
        // SAFETY: the debug library is loaded only to build the error handler
        // and is removed from the globals before any script runs.
        let lua = unsafe { Lua::unsafe_new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG, mlua::LuaOptions::default()) };
        let g = lua.globals();
        for name in ["dofile", "loadfile", "print"] {
            g.raw_set(name, Value::Nil)?;
        }
        lualibs::register_all(&lua)?;
        let redis = lua.create_table()?;
        redis.raw_set("LOG_DEBUG", 0)?;
        redis.raw_set("LOG_VERBOSE", 1)?;
        redis.raw_set("LOG_NOTICE", 2)?;
        redis.raw_set("LOG_WARNING", 3)?;
        redis.raw_set("REDIS_VERSION", crate::REDIS_VERSION)?;
        redis.raw_set("REDIS_VERSION_NUM", redis_version_num())?;
        redis.raw_set("REPL_NONE", 0)?;
        redis.raw_set("REPL_AOF", 1)?;
        redis.raw_set("REPL_SLAVE", 2)?;
        redis.raw_set("REPL_REPLICA", 2)?;
        redis.raw_set("REPL_ALL", 3)?;
        redis.raw_set(
            "sha1hex",
            lua.create_function(|lua, args: MultiValue| {
                if args.len() != 1 {
                    return Err(mlua::Error::RuntimeError("wrong number of arguments".into()));
                }
                let s = match args.front() {
                    Some(Value::String(s)) => s.as_bytes().to_vec(),
                    Some(Value::Integer(i)) => i.to_string().into_bytes(),
                    Some(Value::Number(n)) => lua_num_string(*n).into_bytes(),
                    _ => Vec::new(),
                };
                lua.create_string(sha1hex(&s))
            })?,
        )?;
        redis.raw_set(
            "error_reply",
            lua.create_function(|lua, args: MultiValue| -> mlua::Result<Value> {
                match (args.len(), args.front()) {
                    (1, Some(Value::String(s))) => {
                        let b = s.as_bytes();
                        let e = if b.first() == Some(&b'-') { b.to_vec() } else { [b"-", &b[..]].concat() };
                        Ok(Value::Table(convert::error_table(lua, &e)?))
                    }
                    _ => Ok(Value::Table(convert::error_table(lua, b"wrong number or type of arguments")?)),
                }
            })?,
        )?;
        redis.raw_set(
            "status_reply",
            lua.create_function(|lua, args: MultiValue| -> mlua::Result<Value> {
                match (args.len(), args.front()) {
                    (1, Some(Value::String(s))) => {
                        let t = lua.create_table()?;
                        t.raw_set("ok", s.clone())?;
                        Ok(Value::Table(t))
                    }
                    _ => Ok(Value::Table(convert::error_table(lua, b"wrong number or type of arguments")?)),
                }
            })?,
        )?;
        redis.raw_set(
            "log",
            lua.create_function(|_, args: MultiValue| {
                let v: Vec<Value> = args.into_iter().collect();
                if v.len() < 2 {
                    return Err(mlua::Error::RuntimeError("redis.log() requires two arguments or more.".into()));
                }
                let level = match &v[0] {
                    Value::Integer(i) => *i,
                    Value::Number(n) => *n as i64,
                    _ => return Err(mlua::Error::RuntimeError("First argument must be a number (log level).".into())),
                };
                if !(0..=3).contains(&level) {
                    return Err(mlua::Error::RuntimeError("Invalid debug level.".into()));
                }
                let msg: Vec<String> = v[1..]
                    .iter()
                    .filter_map(|x| match x {
                        Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
                        Value::Integer(i) => Some(i.to_string()),
                        Value::Number(n) => Some(lua_num_string(*n)),
                        _ => None,
                    })
                    .collect();
                let text = msg.join(" ");
                if functions::replaying() {
                    return Ok(());
                }
                match level {
                    3 => crate::log_warning!("{text}"),
                    2 => crate::log_notice!("{text}"),
                    _ => crate::log_verbose!("{text}"),
                }
                Ok(())
            })?,
        )?;
        redis.raw_set(
            "setresp",
            lua.create_function(|_, args: MultiValue| {
                if args.len() != 1 {
                    return Err(mlua::Error::RuntimeError("redis.setresp() requires one argument.".into()));
                }
                let v = match args.front() {
                    Some(Value::Integer(i)) => *i,
                    Some(Value::Number(n)) => *n as i64,
                    Some(Value::String(s)) => String::from_utf8_lossy(&s.as_bytes()).trim().parse::<f64>().map(|f| f as i64).unwrap_or(0),
                    _ => 0,
                };
                if v != 2 && v != 3 {
                    return Err(mlua::Error::RuntimeError("RESP version must be 2 or 3.".into()));
                }
                RUN.with(|r| {
                    if let Some(r) = r.borrow_mut().as_mut() {
                        r.resp3 = v == 3;
                    }
                });
                Ok(())
            })?,
        )?;
        redis.raw_set("set_repl", lua.create_function(|_, _args: MultiValue| Ok(()))?)?;
        redis.raw_set("replicate_commands", lua.create_function(|_, _args: MultiValue| Ok(true))?)?;
        g.raw_set("redis", redis)?;
        // Redis's math.random: one rand48 sequence for the process.
        let math: Table = g.raw_get("math")?;
        // luaL_checkint / luaL_argcheck errors, positioned as the C library's.
        let b = lualibs::Builder::new(&lua)?;
        math.raw_set(
            "random",
            b.function(&lua, |lua, args: Vec<Value>| {
                use lualibs::{arg_error, check_number, d2i32, ret1};
                let r = (rand48_next() % i32::MAX as u64) as f64 / i32::MAX as f64;
                match args.len() {
                    0 => ret1(Value::Number(r)),
                    1 => {
                        let u = d2i32(check_number(lua, &args, 0, "random")?);
                        if u < 1 {
                            return arg_error(1, "random", "interval is empty");
                        }
                        ret1(Value::Number((r * u as f64).floor() + 1.0))
                    }
                    2 => {
                        let l = d2i32(check_number(lua, &args, 0, "random")?);
                        let u = d2i32(check_number(lua, &args, 1, "random")?);
                        if l > u {
                            return arg_error(2, "random", "interval is empty");
                        }
                        ret1(Value::Number((r * (u as f64 - l as f64 + 1.0)).floor() + l as f64))
                    }
                    _ => Err(lualibs::LibError::Msg("wrong number of arguments".into())),
                }
            })?,
        )?;
        math.raw_set(
            "randomseed",
            b.function(&lua, |lua, args: Vec<Value>| {
                let seed = lualibs::d2i32(lualibs::check_number(lua, &args, 0, "randomseed")?);
                rand48_seed(seed);
                Ok(lualibs::Ret::Multi(Vec::new()))
            })?,
        )?;
        let abort = lua.create_table()?;
        lua.set_named_registry_value("tessera_abort", abort.clone())?;
        let redis: Table = g.raw_get("redis")?;
        for (name, raise) in [("call", true), ("pcall", false)] {
            let raw = lua.create_function(raw_call)?;
            // SAFETY: pushes a C closure over two values mlua placed on the stack.
            let f = unsafe { lua.exec_raw::<Function>((raw, raise), |state| mlua::ffi::lua_pushcclosure(state, call_trampoline, 2)) }?;
            redis.raw_set(name, f)?;
        }
        let libs = lua.create_sequence_from(["string", "math", "table", "cjson", "cmsgpack", "bit", "struct", "coroutine"])?;
        let prelude = lua.load(PRELUDE).set_name("=tessera").into_function()?;
        // A C function like redis.call (see call_trampoline): its errors keep
        // the caller's frame, even in a `return redis.register_function(...)`.
        let register = {
            let raw = lua.create_function(functions::register_raw)?;
            // SAFETY: as for redis.call below.
            unsafe { lua.exec_raw::<Function>((raw, true), |state| mlua::ffi::lua_pushcclosure(state, call_trampoline, 2)) }?
        };
        let (env, handler, fenv, run_library_fn, load_redis, fcall): (Table, Function, Table, Function, Table, Function) =
            prelude.call((g.clone(), abort.clone(), libs, register))?;
        // The load-time `redis` table shares log, the LOG_ levels and the version.
        for name in [
            "log",
            "LOG_DEBUG",
            "LOG_VERBOSE",
            "LOG_NOTICE",
            "LOG_WARNING",
            "REDIS_VERSION",
            "REDIS_VERSION_NUM",
        ] {
            load_redis.raw_set(name, redis.raw_get::<Value>(name)?)?;
        }
        g.raw_set("debug", Value::Nil)?;
        // Redis 7.0.15 gives scripts no way to change environments.
        let setfenv: Function = g.raw_get("setfenv")?;
        for name in ["setfenv", "getfenv", "newproxy"] {
            g.raw_set(name, Value::Nil)?;
        }
        lua.set_hook(mlua::HookTriggers::new().every_nth_instruction(100_000), busy_hook(runtime::shard_id()))?;
        Ok(Vm {
            lua,
            generation,
            funcs: HashMap::new(),
            real_globals: g,
            env,
            fenv,
            run_library_fn,
            fcall,
            libs: HashMap::new(),
            lib_generation: u64::MAX,
            handler,
            setfenv,
            runs: 0,
        })
    }

    /// Compiles a body (skipping a shebang line, keeping its line feed).
    fn compile(&mut self, sha: &str, body: &[u8]) -> Result<Function, String> {
        if let Some(f) = self.funcs.get(sha) {
            return Ok(f.clone());
        }
        let (skip, _, _) = shebang(body)?;
        let f = self.lua.load(&body[skip..]).set_name("@user_script").into_function().map_err(|e| match e {
            mlua::Error::SyntaxError { message, .. } => format!("ERR Error compiling script (new function): {message}"),
            other => format!("ERR Error compiling script (new function): {other}"),
        })?;
        // The script reads and writes its globals through the read-only proxy.
        self.setfenv.call::<()>((f.clone(), self.env.clone())).map_err(|e| format!("ERR {e}"))?;
        self.funcs.insert(sha.to_string(), f.clone());
        Ok(f)
    }
}

fn redis_version_num() -> i64 {
    let mut n = 0;
    for p in crate::REDIS_VERSION.split('.').take(3) {
        n = n * 256 + p.parse::<i64>().unwrap_or(0);
    }
    n
}

/// Lua's `%.14g` rendering of a number (tostring), for log lines and sha1hex.
fn lua_num_string(n: f64) -> String {
    lualibs::fmt_g(n, 14)
}

// ---------------------------------------------------------------- rand48

static RAND48: AtomicU64 = AtomicU64::new(0x1234_ABCD_330E);

/// lrand48's next value (Redis's redisLrand48, shared by every script).
fn rand48_next() -> u64 {
    let step = |x: u64| x.wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB) & ((1 << 48) - 1);
    let mut cur = RAND48.load(Ordering::Relaxed);
    loop {
        let next = step(cur);
        match RAND48.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next >> 17,
            Err(now) => cur = now,
        }
    }
}

fn rand48_seed(seed: i32) {
    RAND48.store(((seed as u32 as u64) << 16) | 0x330E, Ordering::Relaxed);
}

// ---------------------------------------------------------------- busy scripts

/// One shard's running script, as SCRIPT KILL and the BUSY check see it.
#[derive(Default)]
struct Slot {
    /// When the running script started (Unix ms), 0 when none runs.
    start_ms: AtomicU64,
    /// It has run longer than `busy-reply-threshold`.
    timed_out: AtomicBool,
    /// It wrote: SCRIPT KILL refuses (UNKILLABLE).
    wrote: AtomicBool,
    /// SCRIPT KILL asked it to stop.
    kill: AtomicBool,
    /// The running script is a function (FCALL): FUNCTION KILL, not SCRIPT KILL.
    function: AtomicBool,
    /// A function past `busy-reply-threshold`: what FUNCTION STATS shows
    /// (filled by the hook when it marks the run slow).
    info: std::sync::Mutex<Option<(String, Vec<Vec<u8>>)>>,
}

/// Redis's slowevalerr and slowscripterr.
const BUSY_EVAL: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const BUSY_FUNCTION: &str = "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

static SLOTS: std::sync::OnceLock<Vec<Slot>> = std::sync::OnceLock::new();
/// Scripts past `busy-reply-threshold` right now, on any shard.
static TIMED_OUT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn slots() -> &'static [Slot] {
    SLOTS.get_or_init(|| (0..runtime::nshards().max(1)).map(|_| Slot::default()).collect())
}

/// True while this thread runs a script's command (Redis's CLIENT_SCRIPT):
/// `redis.call` holds the run for the duration of the command.
pub fn in_script() -> bool {
    RUN.with(|r| r.try_borrow().map_or(true, |r| r.is_some()))
}

/// A script has run past `busy-reply-threshold`: other clients get BUSY.
#[inline]
pub fn busy() -> bool {
    TIMED_OUT.load(Ordering::Relaxed) != 0
}

/// The BUSY error for clients of the other shards while a script is slow
/// (it names SCRIPT KILL for an EVAL, FUNCTION KILL for a function).
pub fn busy_error() -> &'static str {
    let eval = slots()
        .iter()
        .any(|s| s.timed_out.load(Ordering::Relaxed) && s.start_ms.load(Ordering::Acquire) != 0 && !s.function.load(Ordering::Relaxed));
    if eval || !slots().iter().any(|s| s.timed_out.load(Ordering::Relaxed)) {
        BUSY_EVAL
    } else {
        BUSY_FUNCTION
    }
}

/// The shards whose script has run past `busy-reply-threshold` right now
/// (their own threads are running it: `server::busy` answers for them).
pub fn busy_shards() -> Vec<usize> {
    slots()
        .iter()
        .enumerate()
        .filter(|(_, s)| s.timed_out.load(Ordering::Acquire) && s.start_ms.load(Ordering::Acquire) != 0)
        .map(|(i, _)| i)
        .collect()
}

/// Wakes `wait_busy` when a script becomes slow.
static BUSY_SIGNAL: (std::sync::Mutex<()>, std::sync::Condvar) = (std::sync::Mutex::new(()), std::sync::Condvar::new());

/// Blocks the calling thread (not a shard) until some script has run past
/// `busy-reply-threshold`, or `timeout` passed.
pub fn wait_busy(timeout: std::time::Duration) {
    let g = BUSY_SIGNAL.0.lock().unwrap_or_else(|e| e.into_inner());
    if !busy() {
        let _ = BUSY_SIGNAL.1.wait_timeout(g, timeout);
    }
}

/// SHUTDOWN NOSAVE while a script is slow: the scripts stop at their next
/// hook call whatever they wrote (Redis exits without finishing them; the
/// shards then stop without saving).
static SHUTDOWN_KILL: AtomicBool = AtomicBool::new(false);

pub fn kill_for_shutdown() {
    SHUTDOWN_KILL.store(true, Ordering::Release);
}

/// SCRIPT KILL (`eval`) / FUNCTION KILL: stops the running scripts of that
/// kind that wrote nothing.
pub fn kill(eval: bool) -> Result<(), &'static str> {
    let running: Vec<&Slot> = slots().iter().filter(|s| s.start_ms.load(Ordering::Acquire) != 0).collect();
    if running.is_empty() {
        return Err("NOTBUSY No scripts in execution right now.");
    }
    let killable: Vec<&Slot> = running.into_iter().filter(|s| !s.wrote.load(Ordering::Acquire)).collect();
    if killable.is_empty() {
        return Err("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.");
    }
    let matching: Vec<&Slot> = killable.into_iter().filter(|s| s.function.load(Ordering::Acquire) != eval).collect();
    if matching.is_empty() {
        return Err(if eval { BUSY_FUNCTION } else { BUSY_EVAL });
    }
    for s in matching {
        s.kill.store(true, Ordering::Release);
    }
    Ok(())
}

/// A function past `busy-reply-threshold`, as FUNCTION STATS shows it.
pub struct RunningFunction {
    pub name: String,
    /// The command that called it (FCALL name numkeys keys... args...).
    pub command: Vec<Vec<u8>>,
    pub duration_ms: u64,
}

/// FUNCTION STATS's running_script: the slow function (name, command,
/// duration_ms), None when none is; Err when a slow EVAL runs (Redis refuses
/// then). Only scripts past `busy-reply-threshold` count: only then can a
/// Redis client see one running.
pub fn running_function() -> Result<Option<RunningFunction>, &'static str> {
    let mut found = None;
    for s in slots() {
        let start = s.start_ms.load(Ordering::Acquire);
        if start == 0 || !s.timed_out.load(Ordering::Relaxed) {
            continue;
        }
        if !s.function.load(Ordering::Relaxed) {
            return Err(BUSY_EVAL);
        }
        if found.is_none() {
            if let Some((name, cmd)) = s.info.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                found = Some(RunningFunction {
                    name,
                    command: cmd,
                    duration_ms: runtime::now_ms().saturating_sub(start),
                });
            }
        }
    }
    Ok(found)
}

/// The instruction-count hook of every VM: marks a slow script (BUSY for
/// the others, one warning in the log) and stops a killed one.
fn busy_hook(shard: usize) -> impl Fn(&Lua, &mlua::debug::Debug) -> mlua::Result<mlua::VmState> + Send + 'static {
    move |_, _| {
        if functions::load_timed_out() {
            return Err(mlua::Error::RuntimeError("FUNCTION LOAD timeout".into()));
        }
        let slot = &slots()[shard.min(slots().len() - 1)];
        if slot.kill.load(Ordering::Acquire) {
            return Err(mlua::Error::RuntimeError("Script killed by user with SCRIPT KILL...".into()));
        }
        if SHUTDOWN_KILL.load(Ordering::Acquire) {
            return Err(mlua::Error::RuntimeError("Script killed by SHUTDOWN NOSAVE".into()));
        }
        let start = slot.start_ms.load(Ordering::Relaxed);
        if start != 0 && !slot.timed_out.load(Ordering::Relaxed) {
            let limit = runtime::rt_ref()
                .config
                .read()
                .ok()
                .and_then(|c| {
                    c.get_value(b"busy-reply-threshold")
                        .and_then(|v| String::from_utf8(v).ok()?.parse::<u64>().ok())
                })
                .unwrap_or(5000);
            let ran = runtime::now_ms().saturating_sub(start);
            if limit > 0 && ran > limit {
                if slot.function.load(Ordering::Relaxed) {
                    let info = RUN.with(|r| {
                        let r = r.try_borrow().ok()?;
                        let run = r.as_ref()?;
                        let (lib, index, head) = run.func.as_ref()?;
                        let mut cmd = head.to_vec();
                        cmd.extend(run.declared.iter().cloned());
                        // SAFETY: `argv` points at `run`'s argument, alive while the run is.
                        cmd.extend(unsafe { &*run.argv }.iter().cloned());
                        Some((lib.functions.get(*index)?.name.clone(), cmd))
                    });
                    *slot.info.lock().unwrap_or_else(|e| e.into_inner()) = info;
                }
                slot.timed_out.store(true, Ordering::Release);
                TIMED_OUT.fetch_add(1, Ordering::Release);
                {
                    let _g = BUSY_SIGNAL.0.lock().unwrap_or_else(|e| e.into_inner());
                    BUSY_SIGNAL.1.notify_all();
                }
                crate::log_warning!(
                    "Slow script detected: still in execution after {ran} milliseconds. You can try killing the script using the SCRIPT KILL command."
                );
            }
        }
        Ok(mlua::VmState::Continue)
    }
}

// ---------------------------------------------------------------- running a script

/// How a run treats keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Declared keys locked on this shard; anything else is a discovery.
    Local,
    /// Every shard locked by this run: any key, any shard.
    Global,
}

/// The state of the running script, for its `redis.call`s.
struct Run {
    shard: *mut Shard,
    mode: Mode,
    db: usize,
    now: u64,
    resp3: bool,
    read_only: bool,
    /// The declared keys (db, key) of a Local run.
    declared: Vec<Vec<u8>>,
    wrote: bool,
    /// Out of memory when the script started and it may not ignore it
    /// (Redis's pre_command_oom_state without `allow-oom`): its first
    /// `denyoom` command, before any write, answers -OOM (scriptVerifyOOM).
    oom: bool,
    /// The run met an undeclared key before writing: it is to be restarted globally.
    aborted: bool,
    /// The tracking client the script runs for: its declared keys become
    /// tracked after each read command it runs (as Redis's call() does for a
    /// script's caller).
    track: Option<crate::runtime::track::Caller>,
    /// The ARGV of the run (for FUNCTION STATS), alive while the run is.
    argv: *const [Vec<u8>],
    /// A function's library, index and command head (FUNCTION STATS).
    func: Option<FuncCall>,
}

/// A running function: its library, its index there, the command's head.
type FuncCall = (Arc<functions::Library>, usize, Arc<[Vec<u8>]>);

thread_local! {
    static RUN: RefCell<Option<Run>> = const { RefCell::new(None) };
}

/// What a run produced.
pub enum Outcome {
    Reply(Vec<u8>),
    /// Restart in the global mode.
    Rerun,
}

/// What a run executes.
#[derive(Clone)]
pub enum Target {
    /// EVAL / EVALSHA: a cached script.
    Script { sha: String, script: Arc<Script> },
    /// FCALL / FCALL_RO: function `index` of `lib`; `head` is the command as
    /// called up to numkeys (FUNCTION STATS shows it).
    Function {
        lib: Arc<functions::Library>,
        index: usize,
        head: Arc<[Vec<u8>]>,
    },
}

impl Target {
    /// Where "runs with every shard locked" is remembered.
    pub fn global(&self) -> &AtomicBool {
        match self {
            Target::Script { script, .. } => &script.global,
            Target::Function { lib, index, .. } => &lib.functions[*index].global,
        }
    }

    /// Flagged `allow-oom` (a script with a shebang, or a function).
    fn allow_oom(&self) -> bool {
        match self {
            Target::Script { script, .. } => script.flagged && allow_oom_flag(&script.body),
            Target::Function { lib, index, .. } => lib.functions[*index].flags & (1 << 1) != 0,
        }
    }

    /// What error replies name: the SHA1, or the function's name.
    fn name(&self) -> &str {
        match self {
            Target::Script { sha, .. } => sha,
            Target::Function { lib, index, .. } => &lib.functions[*index].name,
        }
    }
}

/// Runs a script or function on this shard (`s` is this thread's shard,
/// held by the caller).
#[allow(clippy::too_many_arguments)]
pub fn run(
    s: &mut Shard,
    target: &Target,
    keys: &[Vec<u8>],
    argv: &[Vec<u8>],
    mode: Mode,
    db: usize,
    now: u64,
    read_only: bool,
    caller_resp3: bool,
) -> Outcome {
    with_vm(|vm| {
        let mut out = Reply::new(caller_resp3);
        let compiled = match target {
            Target::Script { sha, script } => vm.compile(sha, &script.body),
            Target::Function { lib, index, .. } => vm.callback(lib, *index),
        };
        let f = match compiled {
            Ok(f) => f,
            Err(e) => {
                out.error(&e);
                return Outcome::Reply(out.buf);
            }
        };
        let array = |items: &[Vec<u8>]| -> mlua::Result<Table> {
            let t = vm.lua.create_table_with_capacity(items.len(), 0)?;
            for (i, k) in items.iter().enumerate() {
                t.raw_set(i + 1, vm.lua.create_string(k)?)?;
            }
            Ok(t)
        };
        // EVAL: KEYS and ARGV are globals; a function gets them as arguments.
        let tables = array(keys).and_then(|k| Ok((k, array(argv)?)));
        let tables = match (target, tables) {
            (Target::Script { .. }, Ok((k, a))) => vm
                .real_globals
                .raw_set("KEYS", k)
                .and_then(|_| vm.real_globals.raw_set("ARGV", a))
                .map(|_| None),
            (Target::Function { .. }, Ok(t)) => Ok(Some(t)),
            (_, Err(e)) => Err(e),
        };
        let tables = match tables {
            Ok(t) => t,
            Err(_) => {
                out.error("ERR internal error setting KEYS/ARGV");
                return Outcome::Reply(out.buf);
            }
        };
        let func = match target {
            Target::Function { lib, index, head } => Some((lib.clone(), *index, head.clone())),
            Target::Script { .. } => None,
        };
        RUN.with(|r| {
            *r.borrow_mut() = Some(Run {
                shard: s as *mut Shard,
                mode,
                db,
                now,
                resp3: false,
                read_only,
                declared: keys.to_vec(),
                wrote: false,
                oom: crate::keyspace::evict::out_of_memory(runtime::nshards()) && !target.allow_oom(),
                aborted: false,
                track: crate::runtime::track::caller().filter(|c| c.remember),
                argv: argv as *const [Vec<u8>],
                func,
            })
        });
        let slot = &slots()[s.id.min(slots().len() - 1)];
        slot.kill.store(false, Ordering::Release);
        slot.wrote.store(false, Ordering::Release);
        slot.function.store(tables.is_some(), Ordering::Release);
        slot.start_ms.store(runtime::now_ms().max(1), Ordering::Release);
        // The commands it runs remember nothing themselves (see `Run::track`).
        let quiet = crate::runtime::track::caller().map(|c| crate::runtime::track::Caller { remember: false, ..c });
        // The script's writes, recorded as it makes them, propagate as one block.
        crate::runtime::propagate::begin_block();
        let result = crate::runtime::track::as_caller(quiet, || match tables {
            None => match vm.real_globals.raw_get::<Function>("xpcall") {
                Ok(xpcall) => xpcall.call::<MultiValue>((f, vm.handler.clone())),
                Err(e) => Err(e),
            },
            Some((k, a)) => vm.fcall.call::<MultiValue>((f, k, a)),
        });
        slot.start_ms.store(0, Ordering::Release);
        if slot.timed_out.swap(false, Ordering::Relaxed) {
            TIMED_OUT.fetch_sub(1, Ordering::Relaxed);
            *slot.info.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        slot.kill.store(false, Ordering::Release);
        let run = RUN.with(|r| r.borrow_mut().take());
        if matches!(target, Target::Script { .. }) {
            // Functions must not see an EVAL's KEYS / ARGV (Redis runs them in another VM).
            let _ = vm.real_globals.raw_set("KEYS", Value::Nil);
            let _ = vm.real_globals.raw_set("ARGV", Value::Nil);
        }
        let (aborted, script_resp3) = run.map(|r| (r.aborted, r.resp3)).unwrap_or((false, false));
        let effects = crate::runtime::propagate::end_block();
        if aborted {
            return Outcome::Rerun;
        }
        // Redis wraps a script's effects in MULTI/EXEC when there are several.
        crate::runtime::propagate::record_log(&if effects.cmds > 1 { effects.wrapped() } else { effects });
        let name = target.name();
        match result {
            Ok(mv) => {
                let mut it = mv.into_iter();
                let ok = matches!(it.next(), Some(Value::Boolean(true)));
                let v = it.next().unwrap_or(Value::Nil);
                if ok {
                    convert::lua_to_reply(&v, script_resp3, &mut out);
                } else {
                    write_script_error(&v, target, &mut out);
                }
            }
            Err(e) => match target {
                Target::Script { .. } => out.error(&format!("ERR Error running script (call to f_{name}): {e}")),
                Target::Function { .. } => out.error(&format!("ERR Error running script (call to {name}): {e}")),
            },
        }
        // An incremental collection step every 50 runs, as Redis does.
        vm.runs += 1;
        if vm.runs.is_multiple_of(50) {
            let _ = vm.lua.gc_step();
        }
        Outcome::Reply(out.buf)
    })
    .unwrap_or_else(|e| {
        let mut out = Reply::new(caller_resp3);
        out.error(&e);
        Outcome::Reply(out.buf)
    })
}

/// A script's uncaught error: `-<err> script: <sha or function>, on <source>:<line>.`
fn write_script_error(v: &Value, target: &Target, out: &mut Reply) {
    let sha = target.name();
    let Value::Table(t) = v else {
        let msg = match v {
            Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            Value::Error(e) => e.to_string(),
            _ => "execution failure".into(),
        };
        match target {
            Target::Script { .. } => out.error(&format!("ERR Error running script f_{sha}, {msg}")),
            Target::Function { .. } => out.error(&format!("ERR Error running script {sha}, {msg}")),
        }
        return;
    };
    let err: Vec<u8> = match t.raw_get::<Value>("err") {
        Ok(Value::String(s)) => s.as_bytes().to_vec(),
        _ => b"ERR unknown error".to_vec(),
    };
    let mut msg = err;
    let source = t.raw_get::<Value>("source").ok();
    let line = t.raw_get::<Value>("line").ok();
    if let (Some(Value::String(src)), Some(l)) = (source, line) {
        let l = match l {
            Value::Integer(i) => i.to_string(),
            Value::Number(n) => lua_num_string(n),
            Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            _ => String::new(),
        };
        if !l.is_empty() {
            msg.extend_from_slice(format!(" script: {sha}, on {}:{l}.", String::from_utf8_lossy(&src.as_bytes())).as_bytes());
        }
    }
    out.buf.push(b'-');
    out.buf.extend(msg.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
    out.buf.extend_from_slice(b"\r\n");
}

/// `redis.call` / `redis.pcall` as C functions, like Redis's (so a `return
/// redis.call(...)` keeps the script's frame, whose line errors report): the
/// Rust side answers (value, kind); kind 1 (a command error) is raised by
/// `redis.call`, kind 2 (the run is abandoned) by both.
unsafe extern "C-unwind" fn call_trampoline(l: *mut mlua::ffi::lua_State) -> std::os::raw::c_int {
    use mlua::ffi;
    let nargs = ffi::lua_gettop(l);
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
    ffi::lua_insert(l, 1);
    ffi::lua_call(l, nargs, 2);
    let raise = ffi::lua_toboolean(l, ffi::lua_upvalueindex(2)) != 0;
    let kind = ffi::lua_tonumber(l, 2) as i32;
    ffi::lua_settop(l, 1);
    if kind == 2 || (kind == 1 && raise) {
        ffi::lua_error(l);
    }
    1
}

/// The Rust half of `redis.call` / `redis.pcall`: (value, kind).
fn raw_call(lua: &Lua, args: MultiValue) -> mlua::Result<(Value, i32)> {
    let fail = |msg: &str| -> mlua::Result<(Value, i32)> { Ok((Value::Table(convert::error_table(lua, msg.as_bytes())?), 1)) };
    if RUN.with(|r| r.borrow().as_ref().is_some_and(|r| r.aborted)) {
        return abort_value(lua);
    }
    if args.is_empty() {
        return fail("Please specify at least one argument for this redis lib call");
    }
    let mut argv: Vec<Vec<u8>> = Vec::with_capacity(args.len());
    for a in args.iter() {
        match a {
            Value::String(s) => argv.push(s.as_bytes().to_vec()),
            Value::Integer(i) => argv.push(i.to_string().into_bytes()),
            Value::Number(n) => {
                let mut b = Vec::new();
                crate::protocol::reply::fmt_g17(&mut b, *n);
                argv.push(b);
            }
            _ => return fail("Lua redis lib command arguments must be strings or integers"),
        }
    }
    let reply = RUN.with(|r| {
        let mut r = r.borrow_mut();
        match r.as_mut() {
            Some(run) => call(run, &argv),
            None => Err("redis.call/pcall can only be called inside a script invocation".to_string()),
        }
    });
    match reply {
        Ok(Some(bytes)) => {
            let v = convert::reply_to_lua(lua, &bytes)?;
            let failed = bytes.first() == Some(&b'-');
            Ok((v, failed as i32))
        }
        Ok(None) => abort_value(lua),
        Err(e) => fail(&e),
    }
}

fn abort_value(lua: &Lua) -> mlua::Result<(Value, i32)> {
    let a: Table = lua.named_registry_value("tessera_abort")?;
    Ok((Value::Table(a), 2))
}

/// Runs one command for the script: the reply bytes (in the script's
/// protocol), `None` to abandon the run (restart global), or a refusal.
fn call(run: &mut Run, argv: &[Vec<u8>]) -> Result<Option<Vec<u8>>, String> {
    let spans: Vec<(usize, usize)> = {
        let mut v = Vec::with_capacity(argv.len());
        let mut at = 0;
        for a in argv {
            v.push((at, at + a.len()));
            at += a.len();
        }
        v
    };
    let data: Vec<u8> = argv.concat();
    let args = Args::new(&data, &spans);
    let cmd = match table::lookup(&args) {
        Ok(c) => c,
        Err(_) => return Err("Unknown Redis command called from script".into()),
    };
    if !cmd.arity_ok(args.len()) {
        return Err("Wrong number of args calling Redis command from script".into());
    }
    if cmd.has(flags::NOSCRIPT) {
        return Err("This Redis command is not allowed from script".into());
    }
    let write = cmd.has(flags::WRITE);
    if run.read_only && (write || cmd.meta.flags.contains(&"may_replicate")) {
        return Err("Write commands are not allowed from read-only scripts.".into());
    }
    // scriptVerifyWriteCommandAllow: after a failed background save, the
    // first write (none made yet) fails as its own error reply, as OOM does.
    if write && !run.wrote && crate::persistence::save::writes_denied() {
        return Ok(Some(format!("-{}\r\n", crate::persistence::save::MISCONF).into_bytes()));
    }
    if run.oom && !run.wrote && cmd.has(flags::DENYOOM) {
        // As the command's own error reply: redis.call raises it, pcall returns it.
        return Ok(Some(format!("-{}\r\n", crate::keyspace::evict::OOM_ERR).into_bytes()));
    }
    let mut out = Reply::new(run.resp3);
    // SAFETY: `run.shard` is this thread's shard, borrowed by the caller of
    // `run` for the whole script and used by nothing else meanwhile.
    let shard: &mut Shard = unsafe { &mut *run.shard };
    let n = runtime::nshards();
    match cmd.handler {
        Handler::Client(_) | Handler::Async(_) => {
            match cmd.meta.name {
                "select" => match crate::util::num::string2ll(args.get(1)) {
                    Some(d) if d >= 0 && (d as usize) < shard.dbs.len() => {
                        if run.mode == Mode::Local && d as usize != run.db && !run.wrote {
                            run.aborted = true;
                            return Ok(None);
                        }
                        run.db = d as usize;
                        out.ok();
                    }
                    Some(_) => out.error("ERR DB index is out of range"),
                    None => out.error("ERR value is not an integer or out of range"),
                },
                "ping" => {
                    if args.len() > 1 {
                        out.bulk(args.get(1));
                    } else {
                        out.status(b"PONG");
                    }
                }
                "echo" => out.bulk(args.get(1)),
                "publish" | "spublish" => {
                    let kind = if cmd.meta.name == "publish" {
                        crate::server::pubsub::Kind::Channel
                    } else {
                        crate::server::pubsub::Kind::Shard
                    };
                    out.int(crate::server::pubsub::publish_anonymous(kind, args.get(1), args.get(2)) as i64);
                }
                "time" => {
                    let us = runtime::now_us();
                    out.array_len(2);
                    out.bulk_int((us / 1_000_000) as i64);
                    out.bulk_int((us % 1_000_000) as i64);
                }
                "keys" | "dbsize" | "flushdb" | "flushall" => {
                    // They read or clear every shard: only with every shard locked.
                    if run.mode == Mode::Local {
                        if !run.wrote {
                            run.aborted = true;
                            return Ok(None);
                        }
                        return Err(format!(
                            "Tessera: '{}' after a write needs the script to run with every shard locked; it will from now on",
                            cmd.meta.name
                        ));
                    }
                    every_shard(shard, cmd.meta.name, &args, run.db, run.now, &mut out)?;
                    if write {
                        run.wrote = true;
                    }
                }
                _ => return Err(format!("Tessera does not run '{}' from scripts yet", cmd.meta.name)),
            }
            return Ok(Some(out.buf));
        }
        _ => {}
    }
    let mut route = Route::default();
    route.compute(cmd, &args, n);
    let wide = if n > 1 { cmd.wide.and_then(|w| w(&args)) } else { None };
    if run.mode == Mode::Local {
        // Only this shard's keys, declared, or free of any other transaction.
        let undeclared = route.keys.iter().any(|&k| !run.declared.iter().any(|d| d.as_slice() == args.get(key_pos(k))));
        let elsewhere = route.target != Some(shard.id) || wide.is_some();
        if undeclared || elsewhere {
            if !run.wrote {
                run.aborted = true;
                return Ok(None);
            }
            if elsewhere || exec::must_wait(shard, cmd, &args, &route.keys, run.db) {
                return Err("Tessera: this script touched a key it did not declare, on another shard or in use, after writing; it runs with every shard locked from now on".into());
            }
        }
    }
    if write {
        run.wrote = true;
        // SAFETY: see above; only the slot's atomics are touched.
        let id = unsafe { (*run.shard).id };
        slots()[id.min(slots().len() - 1)].wrote.store(true, Ordering::Release);
    }
    let (db, now, resp3) = (run.db, run.now, run.resp3);
    match (route.target, wide) {
        (Some(t), None) if t == shard.id => {
            exec::execute(shard, cmd, args, db, now, &mut out);
        }
        (Some(t), None) => {
            let (data, spans) = (data.clone(), spans.clone());
            let r = runtime::call_blocking(t, CALL_TIMEOUT, move |s| {
                let mut o = Reply::new(resp3);
                exec::execute(s, cmd, Args::new(&data, &spans), db, now, &mut o);
                o.buf
            });
            match r {
                Some(b) => out.buf = b,
                None => return Err(format!("Tessera: shard {t} did not answer the script's call")),
            }
        }
        _ => match (&cmd.handler, cmd.cross) {
            // Keys on several shards (global mode): split commands run per shard ...
            (Handler::Keyed(_), Cross::Split(combine)) => split_blocking(shard, cmd, combine, &args, &route, db, now, resp3, &mut out)?,
            // ... plans (RENAME, LMOVE, SORT BY...) over a transaction whose hops block.
            (Handler::Plan(f), _) => {
                let keys = route.keys.iter().map(|&k| key_pos(k) as u32).zip(route.shards.iter().copied()).collect();
                let mut tx = crate::runtime::tx::Tx::blocking(shard, db, now, keys);
                let mut fut = f(&mut tx, args, &mut out);
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                match fut.as_mut().poll(&mut cx) {
                    std::task::Poll::Ready(Ok(())) => {}
                    _ => return Err(format!("Tessera: '{}' lost a shard's answer", cmd.meta.name)),
                }
            }
            _ => return Err(format!("Tessera does not run '{}' over keys of several shards from scripts yet", cmd.meta.name)),
        },
    }
    // Its effect, for the propagation stream (the script's block).
    if write && runtime::propagate::on() && crate::exec::propagate::succeeded(&out.buf) {
        crate::exec::propagate::record(cmd, &args, db, now, &out.buf, runtime::propagate::record);
    }
    // After each read (and its lazy expiries' invalidations), as Redis's
    // call() remembers the caller's declared keys after every read command.
    if cmd.has(flags::READONLY) {
        if let Some(c) = run.track {
            remember_declared(shard, &run.declared, c);
        }
    }
    Ok(Some(out.buf))
}

/// Client-side caching: the script's declared keys become tracked for its
/// caller, each on its owning shard (held by the script: locked in the
/// global mode, this shard in the local one).
fn remember_declared(home: &mut Shard, keys: &[Vec<u8>], c: crate::runtime::track::Caller) {
    let n = runtime::nshards();
    for k in keys {
        let s = runtime::shard_of_key(k, n);
        if s == home.id {
            home.track.remember(k, c.client);
        } else {
            let k = k.clone();
            runtime::send(s, Box::new(move || runtime::with_shard(|sh| sh.track.remember(&k, c.client))));
        }
    }
}

/// KEYS, DBSIZE, FLUSHDB, FLUSHALL from a global script: every shard in turn.
fn every_shard(home: &mut Shard, name: &str, args: &Args, db: usize, now: u64, out: &mut Reply) -> Result<(), String> {
    let n = runtime::nshards();
    let pattern = if args.len() > 1 { args.get(1).to_vec() } else { Vec::new() };
    let name = name.to_string();
    let mut parts: Vec<(usize, Vec<u8>)> = Vec::with_capacity(n);
    for s in 0..n {
        let (pattern, name) = (pattern.clone(), name.clone());
        let job = move |sh: &mut Shard| -> (usize, Vec<u8>) {
            match name.as_str() {
                "keys" => crate::commands::keys::keys_shard(&sh.dbs[db], &pattern, now),
                "dbsize" => (sh.dbs[db].len(), Vec::new()),
                "flushdb" => {
                    sh.dbs[db].clear();
                    crate::server::tracking::flushed(sh);
                    (0, Vec::new())
                }
                _ => {
                    sh.dbs.iter_mut().for_each(|d| d.clear());
                    crate::server::tracking::flushed(sh);
                    (0, Vec::new())
                }
            }
        };
        let r = if s == home.id {
            Some(job(home))
        } else {
            runtime::call_blocking(s, CALL_TIMEOUT, job)
        };
        parts.push(r.ok_or_else(|| format!("Tessera: shard {s} did not answer the script's call"))?);
    }
    match name.as_str() {
        "keys" => {
            out.array_len(parts.iter().map(|p| p.0).sum());
            for (_, b) in &parts {
                out.raw(b);
            }
        }
        "dbsize" => out.int(parts.iter().map(|p| p.0).sum::<usize>() as i64),
        _ => out.ok(),
    }
    Ok(())
}

/// How long a script waits for another shard (which holds no lock of its
/// own against the script, so this only bounds a bug).
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// MGET/MSET/DEL/EXISTS... over several shards from a global script: one
/// blocking call per shard with that shard's keys, replies combined.
#[allow(clippy::too_many_arguments)]
fn split_blocking(
    home: &mut Shard,
    cmd: &'static table::Command,
    combine: Combine,
    args: &Args,
    route: &Route,
    db: usize,
    now: u64,
    resp3: bool,
    out: &mut Reply,
) -> Result<(), String> {
    let step = cmd.meta.key_step.max(1) as usize;
    let mut parts = Vec::new();
    let mut positions = Vec::new();
    for (s, ks) in route.by_shard() {
        let mut data = Vec::new();
        let mut spans = Vec::new();
        let mut push = |a: &[u8]| {
            let st = data.len();
            data.extend_from_slice(a);
            spans.push((st, data.len()));
        };
        push(args.get(0));
        let idx: Vec<usize> = ks.iter().map(|&k| key_pos(k)).collect();
        for &k in &idx {
            for j in k..(k + step).min(args.len()) {
                push(args.get(j));
            }
        }
        positions.push(idx);
        let bytes = if s == home.id {
            let mut o = Reply::new(resp3);
            exec::execute(home, cmd, Args::new(&data, &spans), db, now, &mut o);
            o.buf
        } else {
            runtime::call_blocking(s, CALL_TIMEOUT, move |sh| {
                let mut o = Reply::new(resp3);
                exec::execute(sh, cmd, Args::new(&data, &spans), db, now, &mut o);
                o.buf
            })
            .ok_or_else(|| format!("Tessera: shard {s} did not answer the script's call"))?
        };
        parts.push(bytes);
    }
    exec::combine_parts(combine, &positions, &parts, args.len(), out);
    Ok(())
}
