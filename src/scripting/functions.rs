//! Redis 7.0 functions (FUNCTION LOAD / DELETE / FLUSH / LIST / STATS,
//! FCALL, FCALL_RO): the process-wide library registry and the per-VM side
//! (a library's body run in the load environment, its callbacks kept).
//!
//! * **The registry** is one process-wide map, like the script cache: every
//!   shard sees the same libraries and functions. Library names are
//!   case-sensitive, function names are global across libraries and looked up
//!   case-insensitively (Redis's dict types). A library is immutable once
//!   linked; FUNCTION LOAD REPLACE links a new one (a new `id`) in the place
//!   of the old, or changes nothing when it fails.
//! * **The per-shard VMs load libraries lazily.** A function is a Lua closure
//!   created by the library's body, so each shard's VM must run that body
//!   once before it can call one of its functions. FUNCTION LOAD runs it on
//!   the loading shard's VM (which keeps the callbacks); any other shard runs
//!   it the first time it is asked for a function of that library, keyed by
//!   the library's `id`, and forgets libraries that are no longer linked when
//!   the registry's generation moves. Lazy rather than eager because a load
//!   would otherwise have to visit every shard (a cross-shard broadcast for
//!   every FUNCTION LOAD, and a VM rebuilt by SCRIPT FLUSH would need them
//!   all again anyway); the body can only call `redis.register_function` and
//!   `redis.log` (silenced on those replays), so running it again gives the
//!   same functions. One difference with Redis's single VM: a library's
//!   upvalues (locals of its body that functions update) are per shard.

use super::{lua_num_string, Vm};
use mlua::{Function, Lua, MultiValue, Table, Value};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Function flags (Redis's scripts_flags_def, in its order).
pub const FLAG_NAMES: [&str; 5] = ["no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"];
pub const NO_WRITES: u8 = 1;

/// How long a library's body may run at load time (Redis's LOAD_TIMEOUT_MS).
const LOAD_TIMEOUT_MS: u64 = 500;

const NAME_ERR: &str = "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// One registered function.
pub struct FuncMeta {
    pub name: String,
    pub desc: Option<Vec<u8>>,
    pub flags: u8,
    /// It touched keys it did not declare, or keys on several shards: it runs
    /// with every shard locked (like [`super::Script::global`]).
    pub global: AtomicBool,
}

/// A linked library.
pub struct Library {
    /// Unique for every successful load: what the VMs key their callbacks by.
    pub id: u64,
    pub name: String,
    /// The whole payload, shebang included (FUNCTION LIST WITHCODE).
    pub code: Vec<u8>,
    /// Where the Lua code starts: the shebang line's line feed (kept, so
    /// line numbers count the shebang line).
    pub body_at: usize,
    /// In registration order (the VMs keep the callbacks in the same order).
    pub functions: Vec<FuncMeta>,
}

#[derive(Default)]
struct Registry {
    libs: BTreeMap<String, Arc<Library>>,
    /// Lower-cased function name -> (library, index in its functions).
    funcs: HashMap<String, (Arc<Library>, usize)>,
}

static REGISTRY: RwLock<Option<Registry>> = RwLock::new(None);
/// Moves on every change of the registry (the VMs drop unlinked libraries).
static GENERATION: AtomicU64 = AtomicU64::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn read<R>(f: impl FnOnce(&Registry) -> R) -> R {
    let g = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    match g.as_ref() {
        Some(r) => f(r),
        None => f(&Registry::default()),
    }
}

fn write<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut g = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    let r = f(g.get_or_insert_with(Registry::default));
    GENERATION.fetch_add(1, Ordering::SeqCst);
    r
}

/// The function called `name` (case-insensitive) and its library.
pub fn lookup(name: &[u8]) -> Option<(Arc<Library>, usize)> {
    let key = String::from_utf8_lossy(name).to_ascii_lowercase();
    read(|r| r.funcs.get(&key).cloned())
}

/// (libraries, functions) linked now (FUNCTION STATS, INFO).
pub fn counts() -> (usize, usize) {
    read(|r| (r.libs.len(), r.libs.values().map(|l| l.functions.len()).sum()))
}

/// Every linked library whose name matches `pattern` (glob, no case), by name.
pub fn libraries(pattern: Option<&[u8]>) -> Vec<Arc<Library>> {
    read(|r| {
        r.libs
            .values()
            .filter(|l| pattern.is_none_or(|p| crate::util::glob::glob_match(p, l.name.as_bytes(), true)))
            .cloned()
            .collect()
    })
}

/// FUNCTION DELETE.
pub fn delete(name: &[u8]) -> Result<(), &'static str> {
    let name = std::str::from_utf8(name).map_err(|_| "ERR Library not found")?;
    if !read(|r| r.libs.contains_key(name)) {
        return Err("ERR Library not found");
    }
    write(|r| match r.libs.remove(name) {
        Some(lib) => {
            unlink(r, &lib);
            Ok(())
        }
        None => Err("ERR Library not found"),
    })
}

/// FUNCTION FLUSH.
pub fn flush() {
    write(|r| *r = Registry::default());
}

fn unlink(r: &mut Registry, lib: &Library) {
    for f in &lib.functions {
        r.funcs.remove(&f.name.to_ascii_lowercase());
    }
}

/// Redis's functionsVerifyName: letters, digits, underscores, at least one.
fn valid_name(n: &[u8]) -> bool {
    !n.is_empty() && n.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The shebang of a library (functionExtractLibMetaData): (engine, name, the
/// offset of the line feed that ends it).
fn parse_meta(code: &[u8]) -> Result<(Vec<u8>, Vec<u8>, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    // strchr: the first line feed, unless a NUL comes first.
    let end = match code.iter().position(|&c| c == b'\n' || c == 0) {
        Some(i) if code[i] == b'\n' => i,
        _ => return Err("ERR Invalid library metadata".into()),
    };
    let parts = match crate::util::sds::split_args(&code[..end]) {
        Some(p) if !p.is_empty() => p,
        _ => return Err("ERR Invalid library metadata".into()),
    };
    let engine = parts[0].get(2..).unwrap_or_default().to_vec();
    let mut name: Option<Vec<u8>> = None;
    for p in &parts[1..] {
        if p.len() >= 5 && p[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err("ERR Invalid metadata value, name argument was given multiple times".into());
            }
            name = Some(p[5..].to_vec());
            continue;
        }
        return Err(format!("ERR Invalid metadata value given: {}", String::from_utf8_lossy(p)));
    }
    match name {
        Some(n) => Ok((engine, n, end)),
        None => Err("ERR Library name was not given".into()),
    }
}

/// Checks a library's shebang and runs its body on `vm` without linking it
/// (functionsCreateWithLibraryCtx into a fresh context): the library and
/// its callbacks, in registration order.
fn compile(vm: &mut Vm, code: &[u8]) -> Result<(Arc<Library>, Vec<Function>), String> {
    let (engine, name, body_at) = parse_meta(code)?;
    if !valid_name(&name) {
        return Err(NAME_ERR.into());
    }
    if !engine.eq_ignore_ascii_case(b"lua") {
        return Err(format!("ERR Engine '{}' not found", String::from_utf8_lossy(&engine)));
    }
    let name = String::from_utf8(name).map_err(|_| NAME_ERR.to_string())?;
    let regs = vm.run_library(&code[body_at..], false)?;
    let lib = Arc::new(Library {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        name,
        code: code.to_vec(),
        body_at,
        functions: regs
            .iter()
            .map(|r| FuncMeta {
                name: r.name.clone(),
                desc: r.desc.clone(),
                flags: r.flags,
                global: AtomicBool::new(false),
            })
            .collect(),
    });
    Ok((lib, regs.into_iter().map(|r| r.callback).collect()))
}

/// Links a compiled library (replacing one of the same name).
fn link(r: &mut Registry, lib: &Arc<Library>) {
    if let Some(old) = r.libs.remove(&lib.name) {
        unlink(r, &old);
    }
    for (i, f) in lib.functions.iter().enumerate() {
        r.funcs.insert(f.name.to_ascii_lowercase(), (lib.clone(), i));
    }
    r.libs.insert(lib.name.clone(), lib.clone());
}

/// FUNCTION LOAD [REPLACE]: runs the library's body on this shard's VM and
/// links it. Returns the library's name.
pub fn load(code: &[u8], replace: bool) -> Result<String, String> {
    if !replace {
        // Refused before the body runs, as Redis checks (after the shebang's own errors).
        if let Ok((engine, name, _)) = parse_meta(code) {
            let name = String::from_utf8_lossy(&name);
            if valid_name(name.as_bytes()) && engine.eq_ignore_ascii_case(b"lua") && read(|r| r.libs.contains_key(name.as_ref())) {
                return Err(format!("ERR Library '{name}' already exists"));
            }
        }
    }
    super::with_vm(|vm| -> Result<String, String> {
        let (lib, callbacks) = compile(vm, code)?;
        let name = lib.name.clone();
        write(|r| -> Result<(), String> {
            if !replace && r.libs.contains_key(&name) {
                return Err(format!("ERR Library '{name}' already exists"));
            }
            for f in &lib.functions {
                if let Some((other, _)) = r.funcs.get(&f.name.to_ascii_lowercase()) {
                    if other.name != name {
                        return Err(format!("ERR Function {} already exists", f.name));
                    }
                }
            }
            link(r, &lib);
            Ok(())
        })?;
        vm.libs.insert(lib.id, callbacks);
        Ok(name)
    })?
}

/// How FUNCTION RESTORE treats the libraries already linked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RestorePolicy {
    /// A library that exists already fails the restore (the default).
    Append,
    /// Libraries of the same name are replaced.
    Replace,
    /// Every library goes first.
    Flush,
}

/// FUNCTION RESTORE (and its libraryJoin): every library is compiled first,
/// then all are linked at once or none is.
pub fn restore(codes: &[Vec<u8>], policy: RestorePolicy) -> Result<(), String> {
    super::with_vm(|vm| -> Result<(), String> {
        let mut new: Vec<(Arc<Library>, Vec<Function>)> = Vec::with_capacity(codes.len());
        for code in codes {
            let (lib, callbacks) = compile(vm, code)?;
            if new.iter().any(|(l, _)| l.name == lib.name) {
                return Err(format!("ERR Library '{}' already exists", lib.name));
            }
            for f in &lib.functions {
                let lower = f.name.to_ascii_lowercase();
                if new.iter().any(|(l, _)| l.functions.iter().any(|g| g.name.to_ascii_lowercase() == lower)) {
                    return Err(format!("ERR Function {} already exists", f.name));
                }
            }
            new.push((lib, callbacks));
        }
        write(|r| -> Result<(), String> {
            if policy == RestorePolicy::Flush {
                *r = Registry::default();
            }
            let replaced = |name: &str| new.iter().any(|(l, _)| l.name == name);
            for (lib, _) in &new {
                if policy == RestorePolicy::Append && r.libs.contains_key(&lib.name) {
                    return Err(format!("ERR Library {} already exists", lib.name));
                }
            }
            for (lib, _) in &new {
                for f in &lib.functions {
                    if let Some((other, _)) = r.funcs.get(&f.name.to_ascii_lowercase()) {
                        if !replaced(&other.name) {
                            return Err(format!("ERR Function {} already exists", f.name));
                        }
                    }
                }
            }
            for (lib, _) in &new {
                link(r, lib);
            }
            Ok(())
        })?;
        for (lib, callbacks) in new {
            vm.libs.insert(lib.id, callbacks);
        }
        Ok(())
    })?
}

// ---------------------------------------------------------------- the VM side

/// A function registered by a library's body while it runs.
pub(super) struct Registered {
    name: String,
    desc: Option<Vec<u8>>,
    flags: u8,
    callback: Function,
}

struct LoadCtx {
    regs: Vec<Registered>,
    /// A lazy reload on another shard: `redis.log` is silent.
    replay: bool,
}

thread_local! {
    static LOADING: RefCell<Option<LoadCtx>> = const { RefCell::new(None) };
    /// When the library body running now started (ms), 0 when none runs.
    static LOAD_START: Cell<u64> = const { Cell::new(0) };
}

/// For the instruction hook: a library body past its time is stopped.
pub(super) fn load_timed_out() -> bool {
    let start = LOAD_START.with(|s| s.get());
    start != 0 && crate::runtime::now_ms().saturating_sub(start) > LOAD_TIMEOUT_MS
}

/// For `redis.log`: a replayed load logs nothing (the first load did).
pub(super) fn replaying() -> bool {
    LOADING.with(|l| l.borrow().as_ref().is_some_and(|c| c.replay))
}

/// A Lua value as luaGetStringSds takes it (strings and numbers).
fn lua_str(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(i) => Some(i.to_string().into_bytes()),
        Value::Number(n) => Some(lua_num_string(*n).into_bytes()),
        _ => None,
    }
}

/// The Rust half of `redis.register_function` (under the C trampoline of
/// `redis.call`): (nil, 0), or (the error table, 1) that the trampoline raises.
pub(super) fn register_raw(lua: &Lua, args: MultiValue) -> mlua::Result<(Value, i32)> {
    let fail = |msg: &str| -> mlua::Result<(Value, i32)> { Ok((Value::Table(super::convert::error_table(lua, msg.as_bytes())?), 1)) };
    if LOADING.with(|l| l.borrow().is_none()) {
        return fail("redis.register_function can only be called on FUNCTION LOAD command");
    }
    let args: Vec<Value> = args.into_iter().collect();
    let (name, desc, flags, callback) = match args.len() {
        1 => {
            let Value::Table(t) = &args[0] else {
                return fail("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).");
            };
            let (mut name, mut desc, mut flags, mut callback) = (None, None, 0u8, None);
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                let Some(key) = lua_str(&k) else {
                    return fail("named argument key given to redis.register_function is not a string");
                };
                if key.eq_ignore_ascii_case(b"function_name") {
                    match lua_str(&v) {
                        Some(n) => name = Some(n),
                        None => return fail("function_name argument given to redis.register_function must be a string"),
                    }
                } else if key.eq_ignore_ascii_case(b"description") {
                    match lua_str(&v) {
                        Some(d) => desc = Some(d),
                        None => return fail("description argument given to redis.register_function must be a string"),
                    }
                } else if key.eq_ignore_ascii_case(b"callback") {
                    match v {
                        Value::Function(f) => callback = Some(f),
                        _ => return fail("callback argument given to redis.register_function must be a function"),
                    }
                } else if key.eq_ignore_ascii_case(b"flags") {
                    let Value::Table(ft) = &v else {
                        return fail("flags argument to redis.register_function must be a table representing function flags");
                    };
                    match read_flags(ft)? {
                        Some(f) => flags = f,
                        None => return fail("unknown flag given"),
                    }
                } else {
                    return fail("unknown argument given to redis.register_function");
                }
            }
            let Some(name) = name else {
                return fail("redis.register_function must get a function name argument");
            };
            let Some(callback) = callback else {
                return fail("redis.register_function must get a callback argument");
            };
            (name, desc, flags, callback)
        }
        2 => {
            let Some(name) = lua_str(&args[0]) else {
                return fail("first argument to redis.register_function must be a string");
            };
            let Value::Function(f) = &args[1] else {
                return fail("second argument to redis.register_function must be a function");
            };
            (name, None, 0, f.clone())
        }
        _ => return fail("wrong number of arguments to redis.register_function"),
    };
    if !valid_name(&name) {
        return fail(&NAME_ERR[4..]);
    }
    // Valid names are ASCII.
    let name = String::from_utf8_lossy(&name).into_owned();
    LOADING.with(|l| {
        let mut l = l.borrow_mut();
        let Some(ctx) = l.as_mut() else {
            return fail("redis.register_function can only be called on FUNCTION LOAD command");
        };
        // Redis compares case-sensitively here but links the functions
        // case-insensitively (two names differing in case crash 7.0.15 on
        // FUNCTION DELETE): Tessera refuses the second one.
        if ctx.regs.iter().any(|r| r.name.eq_ignore_ascii_case(&name)) {
            return fail("Function already exists in the library");
        }
        ctx.regs.push(Registered { name, desc, flags, callback });
        Ok((Value::Nil, 0))
    })
}

/// The `flags` table: Some(bits), or None for an unknown flag (or a value
/// that is not a string).
fn read_flags(t: &Table) -> mlua::Result<Option<u8>> {
    let mut flags = 0u8;
    let mut j = 1i64;
    loop {
        let v: Value = t.get(j)?;
        j += 1;
        if v.is_nil() {
            return Ok(Some(flags));
        }
        let Some(s) = lua_str(&v) else { return Ok(None) };
        match FLAG_NAMES.iter().position(|f| f.as_bytes().eq_ignore_ascii_case(&s)) {
            Some(i) => flags |= 1 << i,
            None => return Ok(None),
        }
    }
}

/// The text of an error a library's body raised, as luaExtractErrorInformation reads it.
fn load_error_text(v: &Value) -> String {
    match v {
        Value::String(s) => format!("ERR {}", String::from_utf8_lossy(&s.as_bytes())),
        Value::Integer(i) => format!("ERR {i}"),
        Value::Number(n) => format!("ERR {}", lua_num_string(*n)),
        Value::Table(t) => match t.raw_get::<Value>("err") {
            Ok(e @ (Value::String(_) | Value::Integer(_) | Value::Number(_))) => {
                lua_str(&e).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
            }
            // sdscatprintf("%s", NULL)
            _ => "(null)".into(),
        },
        Value::Error(e) => format!("ERR {}", rust_error_text(e)),
        _ => "(null)".into(),
    }
}

/// The message of an error raised by a Rust callback (redis.log, the hook),
/// without mlua's decorations.
pub(super) fn rust_error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => rust_error_text(cause),
        mlua::Error::RuntimeError(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Vm {
    /// Runs a library's body (from the shebang's line feed) in the load
    /// environment and returns what it registered.
    pub(super) fn run_library(&mut self, body: &[u8], replay: bool) -> Result<Vec<Registered>, String> {
        let f = self.lua.load(body).set_name("@user_function").into_function().map_err(|e| match e {
            mlua::Error::SyntaxError { message, .. } => format!("ERR Error compiling function: {message}"),
            other => format!("ERR Error compiling function: {other}"),
        })?;
        self.setfenv.call::<()>((f.clone(), self.fenv.clone())).map_err(|e| format!("ERR {e}"))?;
        LOADING.with(|l| *l.borrow_mut() = Some(LoadCtx { regs: Vec::new(), replay }));
        LOAD_START.with(|s| s.set(crate::runtime::now_ms().max(1)));
        let r = self.run_library_fn.call::<(bool, Value)>(f);
        LOAD_START.with(|s| s.set(0));
        let ctx = LOADING.with(|l| l.borrow_mut().take());
        match r {
            Ok((true, _)) => {}
            Ok((false, e)) => return Err(format!("ERR Error registering functions: {}", load_error_text(&e))),
            Err(e) => return Err(format!("ERR Error registering functions: ERR {}", rust_error_text(&e))),
        }
        let regs = ctx.map(|c| c.regs).unwrap_or_default();
        if regs.is_empty() {
            return Err("ERR No functions registered".into());
        }
        Ok(regs)
    }

    /// The callback of function `index` of `lib` on this VM, running the
    /// library's body here first if this VM has not yet.
    pub(super) fn callback(&mut self, lib: &Library, index: usize) -> Result<Function, String> {
        let g = GENERATION.load(Ordering::SeqCst);
        if self.lib_generation != g {
            let linked: Vec<u64> = read(|r| r.libs.values().map(|l| l.id).collect());
            self.libs.retain(|id, _| linked.contains(id));
            self.lib_generation = g;
        }
        if !self.libs.contains_key(&lib.id) {
            let regs = self.run_library(&lib.code[lib.body_at..], true)?;
            let same = regs.len() == lib.functions.len() && regs.iter().zip(&lib.functions).all(|(r, f)| r.name == f.name);
            if !same {
                return Err(format!("ERR Tessera: library '{}' registered other functions on this shard's VM", lib.name));
            }
            self.libs.insert(lib.id, regs.into_iter().map(|r| r.callback).collect());
        }
        self.libs
            .get(&lib.id)
            .and_then(|v| v.get(index))
            .cloned()
            .ok_or_else(|| "ERR Function not found".to_string())
    }
}
