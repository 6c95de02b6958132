//! Rust re-implementations of the Lua libraries Redis 7.0 preloads for
//! scripts (`cjson`, `cmsgpack`, `bit`, `struct`).
//!
//! Scripts written for Redis rely on the exact output of these libraries
//! (byte-for-byte JSON / MessagePack / struct encodings and error texts), so
//! each module mirrors the documented behaviour of the library Redis embeds,
//! including its quirks (verified against redis-server 7.0.15).  Every input
//! is client controlled, so nothing here may panic or recurse without bound;
//! failures are raised as plain Lua string errors carrying the same
//! `user_script:N:` prefix / `bad argument #n to 'f'` text as the C code.
//!
//! The encoders/decoders work directly on the Lua stack through `mlua::ffi`
//! inside one `Lua::exec_raw` call (see `raw`): per-element mlua calls
//! were 5-10x slower, and mlua on Lua 5.1 can hold only ~8000 live
//! `Value` handles at a time (its reference stack is limited by
//! `LUAI_MAXCSTACK`), which large tables would exceed.

use mlua::{ffi, Function, Lua, MultiValue, Table, Value};
use std::os::raw::c_int;

mod bit;
mod cjson;
mod cmsgpack;
mod structlib;

/// Registers the globals `cjson`, `cmsgpack`, `bit` and `struct`.
pub fn register_all(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    g.set("cjson", cjson::module(lua)?)?;
    g.set("cmsgpack", cmsgpack::module(lua)?)?;
    g.set("bit", bit::module(lua)?)?;
    g.set("struct", structlib::module(lua)?)?;
    Ok(())
}

/// `LUAI_MAXCSTACK` of Lua 5.1: the C libraries fail `lua_checkstack` once a
/// C function's frame would exceed this many slots.  We count the slots the C
/// code would have used so the same inputs fail with the same message (and so
/// our own loops stay bounded).
pub(crate) const LUAI_MAXCSTACK: usize = 8000;

/// Error raised by a library function.
pub(crate) enum LibError {
    /// A message raised like `luaL_error` (with the caller's position).
    Msg(String),
    /// `luaL_argerror(narg, extramsg)`.
    Arg(i64, String),
    /// A message raised without position (errors of the Lua core itself,
    /// such as "table index is nil").
    Raw(String),
    /// An error from the mlua API itself (e.g. out of memory); re-raised as is.
    Lua(mlua::Error),
}

impl From<mlua::Error> for LibError {
    fn from(e: mlua::Error) -> Self {
        LibError::Lua(e)
    }
}

pub(crate) type LibResult<T> = Result<T, LibError>;

pub(crate) fn err<T>(msg: impl Into<String>) -> LibResult<T> {
    Err(LibError::Msg(msg.into()))
}

/// `luaL_argerror` text.
/// `luaL_argerror`: the text (with the function name as Lua sees it) is
/// produced by the real `luaL_argerror` in the trampoline.
pub(crate) fn arg_error<T>(narg: i64, _fname: &str, extra: &str) -> LibResult<T> {
    Err(LibError::Arg(narg, extra.to_string()))
}

/// `luaL_typename` of argument `idx` (0-based here) of `args`.
pub(crate) fn arg_typename(args: &[Value], idx: usize) -> &'static str {
    match args.get(idx) {
        None => "no value",
        Some(v) => typename(v),
    }
}

/// `lua_typename(lua_type(v))`.
pub(crate) fn typename(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) => "userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

/// `luaL_typerror` text.
pub(crate) fn type_error<T>(args: &[Value], idx: usize, fname: &str, expected: &str) -> LibResult<T> {
    let got = arg_typename(args, idx);
    arg_error(idx as i64 + 1, fname, &format!("{expected} expected, got {got}"))
}

/// `lua_tonumber`: numbers, and strings Lua can convert.
pub(crate) fn to_number(lua: &Lua, v: Option<&Value>) -> LibResult<Option<f64>> {
    Ok(match v {
        Some(Value::Integer(i)) => Some(*i as f64),
        Some(Value::Number(n)) => Some(*n),
        Some(s @ Value::String(_)) => lua.coerce_number(s.clone())?,
        _ => None,
    })
}

/// `luaL_checknumber` on the 0-based argument `idx`.
pub(crate) fn check_number(lua: &Lua, args: &[Value], idx: usize, fname: &str) -> LibResult<f64> {
    match to_number(lua, args.get(idx))? {
        Some(n) => Ok(n),
        None => type_error(args, idx, fname, "number"),
    }
}

/// The C cast `(lua_Integer)d` as compiled for x86-64 (`cvttsd2si`):
/// truncation, with NaN and out-of-range values giving `i64::MIN`.
pub(crate) fn d2i64(d: f64) -> i64 {
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d) {
        i64::MIN
    } else {
        d as i64
    }
}

/// The C cast `(int)d` on x86-64: out of range and NaN give `i32::MIN`.
pub(crate) fn d2i32(d: f64) -> i32 {
    if d.is_nan() || d >= 2_147_483_648.0 || d <= -2_147_483_649.0 {
        i32::MIN
    } else {
        d as i32
    }
}

/// The C cast `(uint64_t)d` as gcc compiles it for x86-64.
pub(crate) fn d2u64(d: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if d >= TWO63 {
        (d2i64(d - TWO63) as u64) ^ 0x8000_0000_0000_0000
    } else {
        d2i64(d) as u64
    }
}

/// `luaL_checkinteger` on the 0-based argument `idx`.
pub(crate) fn check_integer(lua: &Lua, args: &[Value], idx: usize, fname: &str) -> LibResult<i64> {
    Ok(d2i64(check_number(lua, args, idx, fname)?))
}

/// `luaL_optinteger` on the 0-based argument `idx`.
pub(crate) fn opt_integer(lua: &Lua, args: &[Value], idx: usize, fname: &str, def: i64) -> LibResult<i64> {
    match args.get(idx) {
        None | Some(Value::Nil) => Ok(def),
        _ => check_integer(lua, args, idx, fname),
    }
}

/// `luaL_checklstring` on the 0-based argument `idx` (numbers are converted
/// the way Lua converts them, with `%.14g`).
pub(crate) fn check_bytes(lua: &Lua, args: &[Value], idx: usize, fname: &str) -> LibResult<Vec<u8>> {
    match args.get(idx) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => match lua.coerce_string(v.clone())? {
            Some(s) => Ok(s.as_bytes().to_vec()),
            None => type_error(args, idx, fname, "string"),
        },
        _ => type_error(args, idx, fname, "string"),
    }
}

/// C `printf("%.<prec>g", x)` as glibc prints it.
pub(crate) fn fmt_g(x: f64, prec: usize) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan".into() } else { "nan".into() };
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf".into() } else { "inf".into() };
    }
    let p = prec.clamp(1, 400);
    if x == 0.0 {
        return if x.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // Fast path: integers with at most `p` digits print as themselves.
    if x.fract() == 0.0 && x.abs() < 1e15 && x.abs() < 10f64.powi(p as i32) {
        return (x as i64).to_string();
    }
    let e_repr = format!("{:.*e}", p - 1, x);
    let (mant, exp) = match e_repr.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (e_repr.as_str(), 0),
    };
    if exp < -4 || exp >= p as i32 {
        let m = strip_zeros(mant);
        format!("{}e{}{:02}", m, if exp < 0 { '-' } else { '+' }, exp.unsigned_abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{:.*}", decimals, x)).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// C trampoline in front of every library function.
///
/// mlua raises Rust errors as userdata, but Redis scripts expect
/// `pcall(cjson.decode, s)` to hand back a string, with the same
/// `user_script:LINE:` prefix `luaL_error` adds and the function name
/// `luaL_argerror` finds.  The Rust side returns `(true, results...)`,
/// `(false, msg)` or `(false, extramsg, narg)`; this C function (called
/// directly by the script, exactly like the C library's function would be)
/// raises the error with the real `luaL_where` / `luaL_argerror`.
unsafe extern "C-unwind" fn trampoline(l: *mut ffi::lua_State) -> c_int {
    // No Rust values with destructors live in this frame: Lua errors may
    // unwind (longjmp) through it.
    let nargs = ffi::lua_gettop(l);
    // Optional argument-count limit (upvalues 2 and 3), checked before the
    // arguments are handed to mlua.
    if ffi::lua_type(l, ffi::lua_upvalueindex(2)) == ffi::LUA_TNUMBER && nargs as f64 > ffi::lua_tonumber(l, ffi::lua_upvalueindex(2)) {
        let msg = ffi::lua_tolstring(l, ffi::lua_upvalueindex(3), std::ptr::null_mut());
        ffi::luaL_argerror(l, 0, msg);
    }
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
    ffi::lua_insert(l, 1);
    ffi::lua_call(l, nargs, ffi::LUA_MULTRET);
    let nres = ffi::lua_gettop(l);
    match ffi::lua_tonumber(l, 1) as c_int {
        KIND_MULTI => return nres - 1,
        KIND_PACKED => {
            let n = ffi::lua_tonumber(l, 3) as c_int;
            ffi::lua_settop(l, 2);
            ffi::lua_replace(l, 1);
            if ffi::lua_checkstack(l, n) == 0 {
                ffi::luaL_error(l, c"stack overflow (too many results)".as_ptr());
            }
            for i in 1..=n {
                ffi::lua_rawgeti(l, 1, i as _);
            }
            return n;
        }
        KIND_RAW => {
            ffi::lua_settop(l, 2);
            ffi::lua_error(l);
        }
        KIND_ARGERR => {
            let narg = ffi::lua_tonumber(l, 3) as c_int;
            let msg = ffi::lua_tolstring(l, 2, std::ptr::null_mut());
            ffi::luaL_argerror(l, narg, msg);
        }
        _ => {}
    }
    ffi::luaL_where(l, 1);
    ffi::lua_pushvalue(l, 2);
    ffi::lua_concat(l, 2);
    ffi::lua_error(l)
}

const KIND_ERR: c_int = 0;
const KIND_MULTI: c_int = 1;
const KIND_PACKED: c_int = 2;
const KIND_ARGERR: c_int = 3;
const KIND_RAW: c_int = 4;

/// What a library function returns.
pub(crate) enum Ret {
    /// A few values.
    Multi(Vec<Value>),
    /// `n` values stored at `t[1..n]`; used for results that can be
    /// numerous, since mlua (on Lua 5.1) can hold only ~8000 live values.
    Packed(Table, usize),
}

/// Builds library tables out of Rust functions.
pub(crate) struct Builder;

impl Builder {
    pub(crate) fn new(_lua: &Lua) -> mlua::Result<Self> {
        Ok(Builder)
    }

    pub(crate) fn function<F>(&self, lua: &Lua, f: F) -> mlua::Result<Function>
    where
        F: Fn(&Lua, Vec<Value>) -> LibResult<Ret> + Send + Sync + 'static,
    {
        self.function_limited(lua, f, None)
    }

    /// Like `function`, but more than `limit.0` arguments raise
    /// `luaL_argerror(0, limit.1)` before any conversion.
    pub(crate) fn function_limited<F>(&self, lua: &Lua, f: F, limit: Option<(usize, &str)>) -> mlua::Result<Function>
    where
        F: Fn(&Lua, Vec<Value>) -> LibResult<Ret> + Send + Sync + 'static,
    {
        let raw = lua.create_function(move |lua, args: MultiValue| {
            let args: Vec<Value> = args.into_iter().collect();
            let kind = |k: c_int| Value::Number(k as f64);
            match f(lua, args) {
                Ok(Ret::Multi(results)) => {
                    let mut out = Vec::with_capacity(results.len() + 1);
                    out.push(kind(KIND_MULTI));
                    out.extend(results);
                    Ok(MultiValue::from_vec(out))
                }
                Ok(Ret::Packed(t, n)) => Ok(MultiValue::from_vec(vec![kind(KIND_PACKED), Value::Table(t), Value::Number(n as f64)])),
                Err(LibError::Msg(m)) => Ok(MultiValue::from_vec(vec![kind(KIND_ERR), Value::String(lua.create_string(m)?)])),
                Err(LibError::Raw(m)) => Ok(MultiValue::from_vec(vec![kind(KIND_RAW), Value::String(lua.create_string(m)?)])),
                Err(LibError::Arg(narg, m)) => Ok(MultiValue::from_vec(vec![
                    kind(KIND_ARGERR),
                    Value::String(lua.create_string(m)?),
                    Value::Number(narg as f64),
                ])),
                Err(LibError::Lua(e)) => Err(e),
            }
        })?;
        // SAFETY: pushes one C closure whose single upvalue is `raw` (the
        // argument exec_raw left on the stack); the trampoline only uses the
        // plain Lua C API on its own frame.
        let (max, msg) = match limit {
            Some((n, m)) => (Value::Number(n as f64), Value::String(lua.create_string(m)?)),
            None => (Value::Nil, Value::Nil),
        };
        unsafe {
            lua.exec_raw::<Function>((raw, max, msg), |state| {
                ffi::lua_pushcclosure(state, trampoline, 3);
            })
        }
    }

    pub(crate) fn set<F>(&self, lua: &Lua, t: &Table, name: &str, f: F) -> mlua::Result<()>
    where
        F: Fn(&Lua, Vec<Value>) -> LibResult<Ret> + Send + Sync + 'static,
    {
        t.raw_set(name, self.function(lua, f)?)
    }
}

/// One return value.
pub(crate) fn ret1(v: Value) -> LibResult<Ret> {
    Ok(Ret::Multi(vec![v]))
}

/// Small helpers over the raw Lua C API, for the encoders/decoders that
/// run inside one `Lua::exec_raw` call and keep their working set on the Lua
/// stack (as the C libraries do) instead of in mlua handles: that is much
/// faster than one mlua call per element, and mlua on Lua 5.1 can only hold
/// ~8000 live handles at once.
///
/// Only non-raising API calls are used, except for allocation failures
/// (which would unwind through the closure and leak its buffers, the same
/// caveat as mlua's own `exec_raw`).
pub(crate) mod raw {
    use mlua::ffi;

    /// Bytes of the string at `idx`.  Must only be called on actual strings
    /// (`lua_tolstring` would convert numbers in place).
    ///
    /// # Safety
    /// `idx` must be a valid index holding a string; the slice is valid
    /// while that value stays on the stack.
    pub(crate) unsafe fn str_at<'a>(l: *mut ffi::lua_State, idx: i32) -> &'a [u8] {
        let mut len = 0usize;
        let p = ffi::lua_tolstring(l, idx, &mut len);
        if p.is_null() {
            &[]
        } else {
            std::slice::from_raw_parts(p as *const u8, len)
        }
    }

    /// # Safety
    /// Needs one free stack slot.
    pub(crate) unsafe fn push_bytes(l: *mut ffi::lua_State, b: &[u8]) {
        ffi::lua_pushlstring(l, b.as_ptr() as *const _, b.len());
    }

    /// `lua_typename` for the error messages.
    pub(crate) fn typename(t: i32) -> &'static str {
        match t {
            ffi::LUA_TNIL => "nil",
            ffi::LUA_TBOOLEAN => "boolean",
            ffi::LUA_TNUMBER => "number",
            ffi::LUA_TSTRING => "string",
            ffi::LUA_TTABLE => "table",
            ffi::LUA_TFUNCTION => "function",
            ffi::LUA_TTHREAD => "thread",
            _ => "userdata",
        }
    }
}
