//! `cjson`: JSON encode/decode compatible with the lua-cjson 2.1.0 that
//! Redis embeds.
//!
//! Scripts compare JSON output byte for byte (and match on error texts), so
//! this follows lua-cjson's choices: `%.14g` numbers, `\/` escaping, its
//! sparse-array heuristic, `{}` for empty tables, strtod-style number
//! parsing, and the same error messages with 1-based character offsets.
//! Encoding and decoding are iterative and keep their working set on the Lua
//! stack, so deep input can never overflow the Rust stack; the depth limits,
//! and the Lua C-stack limit lua-cjson runs into, are reproduced.

use super::{arg_error, check_bytes, check_integer, d2i32, err, fmt_g, raw, ret1, Builder, LibError, LibResult, Ret, LUAI_MAXCSTACK};
use mlua::{ffi, LightUserData, Lua, Table, Value};
use std::sync::{Arc, Mutex};

/// Guard against building absurd outputs (e.g. `{[2^30]=1}` with the sparse
/// check disabled); Redis would try and run out of memory.
const MAX_OUTPUT: usize = 512 << 20;

#[derive(Clone)]
struct Config {
    sparse_convert: i32,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    encode_invalid_numbers: i32, // 0 off, 1 on, 2 null
    decode_invalid_numbers: i32,
    keep_buffer: i32,
    precision: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sparse_convert: 0,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: 1,
            keep_buffer: 1,
            precision: 14,
        }
    }
}

type Cfg = Arc<Mutex<Config>>;

fn cfg_get(c: &Cfg) -> Config {
    match c.lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn cfg_update(c: &Cfg, f: impl FnOnce(&mut Config)) {
    match c.lock() {
        Ok(mut g) => f(&mut g),
        Err(p) => f(&mut p.into_inner()),
    }
}

pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    fill(lua, &Builder::new(lua)?, &t)?;
    Ok(t)
}

fn fill(lua: &Lua, b: &Builder, t: &Table) -> mlua::Result<()> {
    let cfg: Cfg = Arc::new(Mutex::new(Config::default()));
    let c = cfg.clone();
    b.set(lua, t, "encode", move |lua, a| {
        if a.len() != 1 {
            return arg_error(1, "encode", "expected 1 argument");
        }
        let conf = cfg_get(&c);
        let out = encode(lua, &conf, a.into_iter().next().unwrap_or(Value::Nil))?;
        ret1(Value::String(lua.create_string(out)?))
    })?;
    let c = cfg.clone();
    b.set(lua, t, "decode", move |lua, a| {
        if a.len() != 1 {
            return arg_error(1, "decode", "expected 1 argument");
        }
        let data = check_bytes(lua, &a, 0, "decode")?;
        let conf = cfg_get(&c);
        ret1(decode(lua, &conf, &data)?)
    })?;
    let c = cfg.clone();
    b.set(lua, t, "encode_sparse_array", move |lua, a| {
        arg_count(&a, 3, "encode_sparse_array")?;
        let mut conf = cfg_get(&c);
        let r1 = enum_option(lua, &a, 0, "encode_sparse_array", &mut conf.sparse_convert, None)?;
        let r2 = int_option(lua, &a, 1, "encode_sparse_array", &mut conf.sparse_ratio, 0, i32::MAX)?;
        let r3 = int_option(lua, &a, 2, "encode_sparse_array", &mut conf.sparse_safe, 0, i32::MAX)?;
        cfg_update(&c, |g| *g = conf);
        Ok(Ret::Multi(vec![r1, r2, r3]))
    })?;
    macro_rules! int_opt {
        ($name:literal, $field:ident, $min:expr, $max:expr) => {{
            let c = cfg.clone();
            b.set(lua, t, $name, move |lua, a| {
                arg_count(&a, 1, $name)?;
                let mut conf = cfg_get(&c);
                let r = int_option(lua, &a, 0, $name, &mut conf.$field, $min, $max)?;
                cfg_update(&c, |g| *g = conf);
                ret1(r)
            })?;
        }};
    }
    int_opt!("encode_max_depth", encode_max_depth, 1, i32::MAX);
    int_opt!("decode_max_depth", decode_max_depth, 1, i32::MAX);
    int_opt!("encode_number_precision", precision, 1, 14);
    macro_rules! enum_opt {
        ($name:literal, $field:ident, $opts:expr) => {{
            let c = cfg.clone();
            b.set(lua, t, $name, move |lua, a| {
                arg_count(&a, 1, $name)?;
                let mut conf = cfg_get(&c);
                let r = enum_option(lua, &a, 0, $name, &mut conf.$field, $opts)?;
                cfg_update(&c, |g| *g = conf);
                ret1(r)
            })?;
        }};
    }
    enum_opt!("encode_keep_buffer", keep_buffer, None);
    enum_opt!("encode_invalid_numbers", encode_invalid_numbers, Some(&["off", "on", "null"][..]));
    enum_opt!("decode_invalid_numbers", decode_invalid_numbers, None);
    t.raw_set("null", Value::LightUserData(LightUserData(std::ptr::null_mut())))?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    // cjson.new() returns an independent instance with default settings.
    b.set(lua, t, "new", |lua, _a| {
        let t = lua.create_table()?;
        fill(lua, &Builder::new(lua)?, &t)?;
        ret1(Value::Table(t))
    })?;
    Ok(())
}

fn arg_count(a: &[Value], max: usize, fname: &str) -> LibResult<()> {
    if a.len() > max {
        return arg_error(max as i64 + 1, fname, "found too many arguments");
    }
    Ok(())
}

/// lua-cjson `json_integer_option`.
fn int_option(lua: &Lua, a: &[Value], idx: usize, fname: &str, setting: &mut i32, min: i32, max: i32) -> LibResult<Value> {
    if !matches!(a.get(idx), None | Some(Value::Nil)) {
        let v = check_integer(lua, a, idx, fname)? as i32;
        if !(min <= v && v <= max) {
            // lua-cjson always blames argument #1.
            return arg_error(1, fname, &format!("expected integer between {min} and {max}"));
        }
        *setting = v;
    }
    Ok(Value::Number(*setting as f64))
}

/// lua-cjson `json_enum_option` (booleans map to off/on).
fn enum_option(lua: &Lua, a: &[Value], idx: usize, fname: &str, setting: &mut i32, options: Option<&[&str]>) -> LibResult<Value> {
    let opts: &[&str] = options.unwrap_or(&["off", "on"]);
    match a.get(idx) {
        None | Some(Value::Nil) => {}
        Some(Value::Boolean(bv)) => *setting = *bv as i32,
        Some(_) => {
            let s = check_bytes(lua, a, idx, fname)?;
            match opts.iter().position(|o| o.as_bytes() == s.as_slice()) {
                Some(p) => *setting = p as i32,
                None => {
                    let s = String::from_utf8_lossy(&s);
                    return arg_error(idx as i64 + 1, fname, &format!("invalid option '{s}'"));
                }
            }
        }
    }
    if *setting == 0 || *setting == 1 {
        Ok(Value::Boolean(*setting != 0))
    } else {
        let name = opts.get(*setting as usize).copied().unwrap_or("");
        Ok(Value::String(lua.create_string(name)?))
    }
}

// ---------------------------------------------------------------- encoding

fn escape_for(c: u8) -> Option<&'static [u8]> {
    Some(match c {
        b'\x08' => b"\\b",
        b'\t' => b"\\t",
        b'\n' => b"\\n",
        b'\x0c' => b"\\f",
        b'\r' => b"\\r",
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'/' => b"\\/",
        _ => return None,
    })
}

fn append_string(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let plain = |c: u8| c >= 0x20 && c != 0x7f && c != b'"' && c != b'\\' && c != b'/';
    let mut rest = s;
    while !rest.is_empty() {
        let run = rest.iter().position(|&c| !plain(c)).unwrap_or(rest.len());
        out.extend_from_slice(&rest[..run]);
        if run == rest.len() {
            break;
        }
        let c = rest[run];
        rest = &rest[run + 1..];
        if let Some(e) = escape_for(c) {
            out.extend_from_slice(e);
        } else if c < 0x20 || c == 0x7f {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 15) as usize]);
        } else {
            out.push(c);
        }
    }
    out.push(b'"');
}

fn append_number(out: &mut Vec<u8>, cfg: &Config, n: f64) -> Result<(), String> {
    match cfg.encode_invalid_numbers {
        0 => {
            if !n.is_finite() {
                return Err("Cannot serialise number: must not be NaN or Inf".into());
            }
        }
        1 => {
            if n.is_nan() {
                out.extend_from_slice(b"nan");
                return Ok(());
            }
        }
        _ => {
            if !n.is_finite() {
                out.extend_from_slice(b"null");
                return Ok(());
            }
        }
    }
    out.extend_from_slice(fmt_g(n, cfg.precision.max(1) as usize).as_bytes());
    Ok(())
}

/// lua-cjson `lua_array_length` for the table on top of the stack: >0 →
/// encode as an array of that length, otherwise as an object.  Uses its C
/// `int` arithmetic (including the x86 conversion of huge keys to INT_MIN).
///
/// # Safety
/// A table must be on top of the stack, with 2 free slots.
unsafe fn array_length(l: *mut ffi::lua_State, cfg: &Config) -> Result<i32, String> {
    let mut max: i32 = 0;
    let mut items: i32 = 0;
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        if ffi::lua_type(l, -2) == ffi::LUA_TNUMBER {
            let k = ffi::lua_tonumber(l, -2);
            if k != 0.0 && k.floor() == k && k >= 1.0 {
                if k > max as f64 {
                    max = d2i32(k);
                }
                items = items.wrapping_add(1);
                ffi::lua_pop(l, 1);
                continue;
            }
        }
        ffi::lua_pop(l, 2);
        return Ok(-1);
    }
    if cfg.sparse_ratio > 0 && max > items.wrapping_mul(cfg.sparse_ratio) && max > cfg.sparse_safe {
        if cfg.sparse_convert == 0 {
            return Err("Cannot serialise table: excessively sparse array".into());
        }
        return Ok(-1);
    }
    Ok(max)
}

struct EncFrame {
    /// `Some((len, next index))` for arrays, `None` for objects.
    arr: Option<(i32, i32)>,
    /// Entries emitted so far (objects).
    n: usize,
    /// Lua stack slots in use with this table on top.
    slots: usize,
}

fn encode(lua: &Lua, cfg: &Config, root: Value) -> LibResult<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    let mut res: Result<(), String> = Ok(());
    // SAFETY: the closure runs in a protected call with `root` at index 1
    // and only manipulates its own stack frame (see `encode_raw`).
    unsafe {
        lua.exec_raw::<()>(root, |l| {
            res = encode_raw(l, cfg, &mut out);
            ffi::lua_settop(l, 0);
        })?;
    }
    res.map_err(LibError::Msg)?;
    Ok(out)
}

/// Iterative encoder with the same stack layout as lua-cjson: for each open
/// table, the table (plus the current key for objects) sits on the stack.
///
/// # Safety
/// The value to encode must be on top of the stack.
unsafe fn encode_raw(l: *mut ffi::lua_State, cfg: &Config, out: &mut Vec<u8>) -> Result<(), String> {
    let mut frames: Vec<EncFrame> = Vec::new();
    let mut pending = true;
    let mut slots = 1usize; // stack slots in use with the pending value on top
    loop {
        if pending {
            pending = false;
            match ffi::lua_type(l, -1) {
                ffi::LUA_TTABLE => {
                    let depth = frames.len() + 1;
                    if depth > cfg.encode_max_depth.max(0) as usize || slots + 3 > LUAI_MAXCSTACK || ffi::lua_checkstack(l, 3) == 0 {
                        return Err(format!("Cannot serialise, excessive nesting ({depth})"));
                    }
                    let len = array_length(l, cfg)?;
                    if len > 0 {
                        out.push(b'[');
                        frames.push(EncFrame {
                            arr: Some((len, 0)),
                            n: 0,
                            slots,
                        });
                    } else {
                        out.push(b'{');
                        ffi::lua_pushnil(l);
                        frames.push(EncFrame { arr: None, n: 0, slots });
                    }
                }
                t => {
                    match t {
                        ffi::LUA_TSTRING => append_string(out, raw::str_at(l, -1)),
                        ffi::LUA_TNUMBER => append_number(out, cfg, ffi::lua_tonumber(l, -1))?,
                        ffi::LUA_TBOOLEAN => out.extend_from_slice(if ffi::lua_toboolean(l, -1) != 0 { b"true" } else { b"false" }),
                        ffi::LUA_TNIL => out.extend_from_slice(b"null"),
                        ffi::LUA_TLIGHTUSERDATA if ffi::lua_touserdata(l, -1).is_null() => out.extend_from_slice(b"null"),
                        t => return Err(format!("Cannot serialise {}: type not supported", raw::typename(t))),
                    }
                    ffi::lua_pop(l, 1);
                }
            }
        }
        if out.len() > MAX_OUTPUT {
            return Err("Cannot serialise: output too large".into());
        }
        let Some(fr) = frames.last_mut() else { break };
        match &mut fr.arr {
            Some((len, i)) => {
                if *i >= *len {
                    out.push(b']');
                    frames.pop();
                    ffi::lua_pop(l, 1);
                    continue;
                }
                if *i > 0 {
                    out.push(b',');
                }
                *i += 1;
                ffi::lua_rawgeti(l, -1, *i as _);
                slots = fr.slots + 1;
            }
            None => {
                // Stack: table, key.
                if ffi::lua_next(l, -2) == 0 {
                    out.push(b'}');
                    frames.pop();
                    ffi::lua_pop(l, 1);
                    continue;
                }
                // Stack: table, key, value.
                if fr.n > 0 {
                    out.push(b',');
                }
                fr.n += 1;
                match ffi::lua_type(l, -2) {
                    ffi::LUA_TNUMBER => {
                        out.push(b'"');
                        append_number(out, cfg, ffi::lua_tonumber(l, -2))?;
                        out.extend_from_slice(b"\":");
                    }
                    ffi::LUA_TSTRING => {
                        append_string(out, raw::str_at(l, -2));
                        out.push(b':');
                    }
                    t => {
                        return Err(format!("Cannot serialise {}: table key must be a number or string", raw::typename(t)));
                    }
                }
                slots = fr.slots + 2;
            }
        }
        pending = true;
    }
    Ok(())
}

// ---------------------------------------------------------------- decoding

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Num,
    Bool,
    Null,
    Colon,
    Comma,
    End,
    Error,
}

fn tok_name(t: Tok) -> &'static str {
    match t {
        Tok::ObjBegin => "T_OBJ_BEGIN",
        Tok::ObjEnd => "T_OBJ_END",
        Tok::ArrBegin => "T_ARR_BEGIN",
        Tok::ArrEnd => "T_ARR_END",
        Tok::Str => "T_STRING",
        Tok::Num => "T_NUMBER",
        Tok::Bool => "T_BOOLEAN",
        Tok::Null => "T_NULL",
        Tok::Colon => "T_COLON",
        Tok::Comma => "T_COMMA",
        Tok::End => "T_END",
        Tok::Error => "T_ERROR",
    }
}

struct Token {
    ty: Tok,
    index: usize,
    num: f64,
    boolean: bool,
    err: &'static str,
}

struct Parser<'a> {
    data: &'a [u8],
    ptr: usize,
    cfg: &'a Config,
    depth: i64,
    sbuf: Vec<u8>,
}

/// Byte at `i`, with the C string's terminating NUL past the end.
#[inline]
fn at(d: &[u8], i: usize) -> u8 {
    d.get(i).copied().unwrap_or(0)
}

fn hexval(c: u8) -> Option<u32> {
    (c as char).to_digit(16)
}

impl<'a> Parser<'a> {
    fn peek(&self, off: usize) -> u8 {
        at(self.data, self.ptr.saturating_add(off))
    }

    fn starts_with(&self, s: &[u8]) -> bool {
        s.iter().enumerate().all(|(i, &c)| self.peek(i) == c)
    }

    fn tok(&self, ty: Tok, index: usize) -> Token {
        Token {
            ty,
            index,
            num: 0.0,
            boolean: false,
            err: "",
        }
    }

    fn tok_err(&self, msg: &'static str) -> Token {
        Token {
            ty: Tok::Error,
            index: self.ptr,
            num: 0.0,
            boolean: false,
            err: msg,
        }
    }

    /// lua-cjson's `json_is_invalid_number`: forms strtod accepts but JSON
    /// does not (leading '+', hex, leading zeros, inf, nan).
    fn is_invalid_number(&self) -> bool {
        let mut p = 0;
        if self.peek(0) == b'+' {
            return true;
        }
        if self.peek(0) == b'-' {
            p = 1;
        }
        let c = self.peek(p);
        if c == b'0' {
            let c2 = self.peek(p + 1);
            return (c2 | 0x20) == b'x' || c2.is_ascii_digit();
        } else if (c as i8) <= b'9' as i8 {
            return false;
        }
        let ci = |s: &[u8]| s.iter().enumerate().all(|(i, &b)| self.peek(p + i).eq_ignore_ascii_case(&b));
        ci(b"inf") || ci(b"nan")
    }

    fn next(&mut self) -> Token {
        while let b' ' | b'\t' | b'\n' | b'\r' = self.peek(0) {
            self.ptr += 1;
        }
        let index = self.ptr;
        let ch = self.peek(0);
        let single = match ch {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            _ => None,
        };
        if let Some(t) = single {
            self.ptr += 1;
            return self.tok(t, index);
        }
        if ch == 0 {
            return self.tok(Tok::End, index);
        }
        let unknown = matches!(ch, b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'"' | b'+' | b'-') || ch.is_ascii_digit();
        if !unknown {
            return self.tok_err("invalid token");
        }
        if ch == b'"' {
            return self.string_token();
        }
        if ch == b'-' || ch.is_ascii_digit() {
            if self.cfg.decode_invalid_numbers == 0 && self.is_invalid_number() {
                return self.tok_err("invalid number");
            }
            return self.number_token();
        }
        if self.starts_with(b"true") {
            self.ptr += 4;
            let mut t = self.tok(Tok::Bool, index);
            t.boolean = true;
            return t;
        }
        if self.starts_with(b"false") {
            self.ptr += 5;
            return self.tok(Tok::Bool, index);
        }
        if self.starts_with(b"null") {
            self.ptr += 4;
            return self.tok(Tok::Null, index);
        }
        if self.cfg.decode_invalid_numbers != 0 && self.is_invalid_number() {
            return self.number_token();
        }
        self.tok_err("invalid token")
    }

    fn number_token(&mut self) -> Token {
        match strtod(self.data, self.ptr) {
            Some((v, end)) => {
                let mut t = self.tok(Tok::Num, self.ptr);
                t.num = v;
                self.ptr = end;
                t
            }
            None => self.tok_err("invalid number"),
        }
    }

    fn string_token(&mut self) -> Token {
        let start = self.ptr;
        self.ptr += 1;
        self.sbuf.clear();
        loop {
            let ch = self.peek(0);
            if ch == b'"' {
                break;
            }
            if ch == 0 {
                return self.tok_err("unexpected end of string");
            }
            if ch == b'\\' {
                let e = match self.peek(1) {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 8,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => 12,
                    b'r' => b'\r',
                    b'u' => {
                        if self.unicode_escape() {
                            continue;
                        }
                        return self.tok_err("invalid unicode escape code");
                    }
                    _ => return self.tok_err("invalid escape code"),
                };
                self.sbuf.push(e);
                self.ptr += 2;
                continue;
            }
            self.sbuf.push(ch);
            self.ptr += 1;
        }
        self.ptr += 1;
        self.tok(Tok::Str, start)
    }

    fn hex4(&self, off: usize) -> Option<u32> {
        let mut v = 0;
        for i in 0..4 {
            v = (v << 4) | hexval(self.peek(off + i))?;
        }
        Some(v)
    }

    /// `\uXXXX` (with UTF-16 surrogate pairs) → UTF-8; `ptr` at the '\'.
    fn unicode_escape(&mut self) -> bool {
        let Some(mut cp) = self.hex4(2) else { return false };
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 {
                return false;
            }
            if self.peek(6) != b'\\' || self.peek(7) != b'u' {
                return false;
            }
            let Some(lo) = self.hex4(8) else { return false };
            if lo & 0xFC00 != 0xDC00 {
                return false;
            }
            cp = (((cp & 0x3FF) << 10) | (lo & 0x3FF)) + 0x10000;
            len = 12;
        }
        let mut buf = [0u8; 4];
        let n = if cp <= 0x7F {
            buf[0] = cp as u8;
            1
        } else if cp <= 0x7FF {
            buf[0] = 0xC0 | (cp >> 6) as u8;
            buf[1] = 0x80 | (cp & 0x3F) as u8;
            2
        } else if cp <= 0xFFFF {
            buf[0] = 0xE0 | (cp >> 12) as u8;
            buf[1] = 0x80 | ((cp >> 6) & 0x3F) as u8;
            buf[2] = 0x80 | (cp & 0x3F) as u8;
            3
        } else if cp <= 0x1F_FFFF {
            buf[0] = 0xF0 | (cp >> 18) as u8;
            buf[1] = 0x80 | ((cp >> 12) & 0x3F) as u8;
            buf[2] = 0x80 | ((cp >> 6) & 0x3F) as u8;
            buf[3] = 0x80 | (cp & 0x3F) as u8;
            4
        } else {
            return false;
        };
        self.sbuf.extend_from_slice(&buf[..n]);
        self.ptr += len;
        true
    }
}

fn parse_error<T>(expected: &str, t: &Token) -> Result<T, String> {
    let found = if t.ty == Tok::Error { t.err } else { tok_name(t.ty) };
    Err(format!("Expected {} but found {} at character {}", expected, found, t.index + 1))
}

struct DecFrame {
    obj: bool,
    /// Next array index.
    i: i64,
}

fn decode(lua: &Lua, cfg: &Config, data: &[u8]) -> LibResult<Value> {
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return err("JSON parser does not support UTF-16 or UTF-32");
    }
    let mut res: Result<(), String> = Ok(());
    // SAFETY: the closure runs in a protected call on an empty frame and
    // leaves exactly one value (or none on error) on it.
    let v: Value = unsafe {
        lua.exec_raw((), |l| {
            res = decode_raw(l, cfg, data);
            if res.is_err() {
                ffi::lua_settop(l, 0);
                ffi::lua_pushnil(l);
            }
        })?
    };
    res.map_err(LibError::Msg)?;
    Ok(v)
}

/// Iterative decoder building the result on the Lua stack like lua-cjson:
/// each open array holds its table there, each open object its table and
/// the pending key.
///
/// # Safety
/// Runs on an empty protected stack frame.
unsafe fn decode_raw(l: *mut ffi::lua_State, cfg: &Config, data: &[u8]) -> Result<(), String> {
    let mut p = Parser {
        data,
        ptr: 0,
        cfg,
        depth: 0,
        sbuf: Vec::new(),
    };
    let mut frames: Vec<DecFrame> = Vec::new();
    // lua-cjson's frame also holds the argument string.
    let mut slots = 1usize;
    if ffi::lua_checkstack(l, 3) == 0 {
        return Err("stack overflow".into());
    }
    let mut tok = p.next();
    'value: loop {
        match tok.ty {
            Tok::Str => raw::push_bytes(l, &p.sbuf),
            Tok::Num => ffi::lua_pushnumber(l, tok.num),
            Tok::Bool => ffi::lua_pushboolean(l, tok.boolean as i32),
            Tok::Null => ffi::lua_pushlightuserdata(l, std::ptr::null_mut()),
            Tok::ObjBegin | Tok::ArrBegin => {
                let obj = tok.ty == Tok::ObjBegin;
                p.depth += 1;
                let need = if obj { 3 } else { 2 };
                if p.depth > cfg.decode_max_depth as i64 || slots + need > LUAI_MAXCSTACK || ffi::lua_checkstack(l, need as i32) == 0 {
                    return Err(format!("Found too many nested data structures ({}) at character {}", p.depth, p.ptr));
                }
                ffi::lua_createtable(l, 0, 0);
                tok = p.next();
                let empty = if obj { tok.ty == Tok::ObjEnd } else { tok.ty == Tok::ArrEnd };
                if empty {
                    p.depth -= 1;
                } else {
                    if obj {
                        if tok.ty != Tok::Str {
                            return parse_error("object key string", &tok);
                        }
                        raw::push_bytes(l, &p.sbuf);
                        tok = p.next();
                        if tok.ty != Tok::Colon {
                            return parse_error("colon", &tok);
                        }
                        tok = p.next();
                    }
                    slots += if obj { 2 } else { 1 };
                    frames.push(DecFrame { obj, i: 1 });
                    continue 'value;
                }
            }
            _ => return parse_error("value", &tok),
        }
        // A complete value is on top: store it into its container, closing
        // containers as their end tokens arrive.
        loop {
            let Some(fr) = frames.last_mut() else {
                tok = p.next();
                if tok.ty != Tok::End {
                    return parse_error("the end", &tok);
                }
                return Ok(());
            };
            if fr.obj {
                ffi::lua_rawset(l, -3);
            } else {
                ffi::lua_rawseti(l, -2, fr.i as _);
                fr.i += 1;
            }
            tok = p.next();
            let (end, what) = if fr.obj {
                (Tok::ObjEnd, "comma or object end")
            } else {
                (Tok::ArrEnd, "comma or array end")
            };
            if tok.ty == end {
                p.depth -= 1;
                slots -= if fr.obj { 2 } else { 1 };
                frames.pop();
                continue;
            }
            if tok.ty != Tok::Comma {
                return parse_error(what, &tok);
            }
            tok = p.next();
            if fr.obj {
                if tok.ty != Tok::Str {
                    return parse_error("object key string", &tok);
                }
                raw::push_bytes(l, &p.sbuf);
                tok = p.next();
                if tok.ty != Tok::Colon {
                    return parse_error("colon", &tok);
                }
                tok = p.next();
            }
            continue 'value;
        }
    }
}

/// The prefix of `d[start..]` that C `strtod` would accept, and its value.
/// Returns `None` when no conversion is possible (strtod's `endptr == nptr`).
pub(crate) fn strtod(d: &[u8], start: usize) -> Option<(f64, usize)> {
    let c = |i: usize| at(d, i);
    let mut p = start;
    while matches!(c(p), b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        p += 1;
    }
    let neg = c(p) == b'-';
    if matches!(c(p), b'+' | b'-') {
        p += 1;
    }
    let apply = |v: f64| if neg { -v } else { v };
    let ci = |at_: usize, s: &[u8]| s.iter().enumerate().all(|(i, &b)| c(at_ + i).eq_ignore_ascii_case(&b));
    if ci(p, b"inf") {
        let end = if ci(p + 3, b"inity") { p + 8 } else { p + 3 };
        return Some((apply(f64::INFINITY), end));
    }
    if ci(p, b"nan") {
        let mut end = p + 3;
        if c(end) == b'(' {
            let mut q = end + 1;
            while c(q).is_ascii_alphanumeric() || c(q) == b'_' {
                q += 1;
            }
            if c(q) == b')' {
                end = q + 1;
            }
        }
        return Some((apply(f64::NAN), end));
    }
    if c(p) == b'0' && (c(p + 1) | 0x20) == b'x' {
        let h = p + 2;
        if hexval(c(h)).is_some() || (c(h) == b'.' && hexval(c(h + 1)).is_some()) {
            let (v, e) = parse_hex_float(d, h);
            return Some((apply(v), e));
        }
    }
    let num_start = p;
    let mut digits = 0;
    while c(p).is_ascii_digit() {
        p += 1;
        digits += 1;
    }
    if c(p) == b'.' {
        p += 1;
        while c(p).is_ascii_digit() {
            p += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if (c(p) | 0x20) == b'e' {
        let mut q = p + 1;
        if matches!(c(q), b'+' | b'-') {
            q += 1;
        }
        if c(q).is_ascii_digit() {
            while c(q).is_ascii_digit() {
                q += 1;
            }
            p = q;
        }
    }
    let text = std::str::from_utf8(&d[num_start..p]).ok()?;
    let v: f64 = text.parse().ok()?;
    Some((apply(v), p))
}

fn parse_hex_float(d: &[u8], mut p: usize) -> (f64, usize) {
    let c = |i: usize| at(d, i);
    let mut mant: u64 = 0;
    let mut used = 0; // significant hex digits kept in `mant`
    let mut exp: i64 = 0;
    let mut sticky = false;
    let mut seen_dot = false;
    loop {
        let ch = c(p);
        if ch == b'.' && !seen_dot {
            seen_dot = true;
            p += 1;
            continue;
        }
        let Some(v) = hexval(ch) else { break };
        if mant == 0 && v == 0 {
            if seen_dot {
                exp -= 4;
            }
        } else if used < 15 {
            mant = (mant << 4) | v as u64;
            used += 1;
            if seen_dot {
                exp -= 4;
            }
        } else {
            sticky |= v != 0;
            if !seen_dot {
                exp += 4;
            }
        }
        p += 1;
    }
    if (c(p) | 0x20) == b'p' {
        let mut q = p + 1;
        let eneg = c(q) == b'-';
        if matches!(c(q), b'+' | b'-') {
            q += 1;
        }
        if c(q).is_ascii_digit() {
            let mut e: i64 = 0;
            while c(q).is_ascii_digit() {
                e = (e * 10 + (c(q) - b'0') as i64).min(1_000_000);
                q += 1;
            }
            exp += if eneg { -e } else { e };
            p = q;
        }
    }
    if mant == 0 {
        return (0.0, p);
    }
    if sticky {
        mant = (mant << 1) | 1;
        exp -= 1;
    }
    (ldexp(mant as f64, exp), p)
}

fn ldexp(mut x: f64, mut e: i64) -> f64 {
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
        if x.is_infinite() {
            return x;
        }
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
        if x == 0.0 {
            return x;
        }
    }
    x * 2f64.powi(e as i32)
}
