//! `cmsgpack`: MessagePack compatible with the lua-cmsgpack 0.4.0 Redis
//! embeds.
//!
//! Scripts store and compare packed bytes, so the encoder makes the same
//! choices: tables of keys 1..n become arrays (everything else maps, and
//! `{}` an empty array), integral numbers use the smallest int format,
//! other numbers float32 when that is exact and float64 otherwise, strings
//! use fixstr/str8/str16/str32, tables nested 16 deep and unsupported types
//! become nil.  Decoding is iterative and emulates the Lua stack limit the C
//! code runs into, so hostile input cannot exhaust the Rust stack.

use super::{arg_error, check_bytes, check_integer, d2i32, d2i64, err, opt_integer, raw, Builder, LibError, LibResult, Ret, LUAI_MAXCSTACK};
use mlua::{ffi, Lua, MultiValue, Table, Value};

const MAX_NESTING: u32 = 16;
/// Refuse to build more than this (Redis' default proto-max-bulk-len);
/// also bounds the time spent on self-referencing tables.
const MAX_OUTPUT: usize = 512 << 20;

pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    let b = Builder::new(lua)?;
    let t = lua.create_table()?;
    let pack = b.function_limited(
        lua,
        |lua, a| {
            if a.is_empty() {
                return arg_error(0, "pack", "MessagePack pack needs input.");
            }
            let mut out = Vec::new();
            let mut res: Result<(), String> = Ok(());
            // SAFETY: runs in a protected call with the arguments at
            // 1..=n; each is copied to the top, encoded and popped.
            unsafe {
                let n = a.len() as i32;
                lua.exec_raw::<()>(MultiValue::from_vec(a), |l| {
                    for i in 1..=n {
                        ffi::lua_pushvalue(l, i);
                        if let Err(e) = encode(l, &mut out, 0) {
                            res = Err(e);
                            break;
                        }
                    }
                    ffi::lua_settop(l, 0);
                })?;
            }
            res.map_err(LibError::Msg)?;
            Ok(Ret::Multi(vec![Value::String(lua.create_string(out)?)]))
        },
        // lua_checkstack(L, nargs) fails past this many arguments.
        Some((LUAI_MAXCSTACK / 2, "Too many arguments for MessagePack pack.")),
    )?;
    t.raw_set("pack", pack)?;
    b.set(lua, &t, "unpack", |lua, a| {
        let s = check_bytes(lua, &a, 0, "unpack")?;
        unpack_full(lua, &s, 0, 0, a.len())
    })?;
    b.set(lua, &t, "unpack_one", |lua, a| {
        let offset = opt_integer(lua, &a, 1, "unpack_one", 0)?;
        let s = check_bytes(lua, &a, 0, "unpack_one")?;
        unpack_full(lua, &s, 1, offset, 1)
    })?;
    b.set(lua, &t, "unpack_limit", |lua, a| {
        let limit = check_integer(lua, &a, 1, "unpack_limit")?;
        let offset = opt_integer(lua, &a, 2, "unpack_limit", 0)?;
        let s = check_bytes(lua, &a, 0, "unpack_limit")?;
        unpack_full(lua, &s, limit, offset, 1)
    })?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

// ---------------------------------------------------------------- encoding

fn encode_bytes(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

fn encode_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_number(out: &mut Vec<u8>, n: f64) {
    // IS_INT64_EQUIVALENT: (int64_t)n == n with the x86 conversion.
    if !n.is_infinite() && d2i64(n) as f64 == n {
        encode_int(out, d2i64(n));
    } else {
        let f = n as f32;
        if f as f64 == n {
            out.push(0xca);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        } else {
            out.push(0xcb);
            out.extend_from_slice(&n.to_bits().to_be_bytes());
        }
    }
}

fn encode_len(out: &mut Vec<u8>, n: usize, fix: u8, b16: u8, b32: u8) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Encodes and pops the value on top of the stack.  Recursion is bounded by
/// MAX_NESTING.
///
/// # Safety
/// A value must be on top of the stack.
unsafe fn encode(l: *mut ffi::lua_State, out: &mut Vec<u8>, level: u32) -> Result<(), String> {
    if out.len() > MAX_OUTPUT {
        return Err("MessagePack output too large".into());
    }
    match ffi::lua_type(l, -1) {
        ffi::LUA_TSTRING => encode_bytes(out, raw::str_at(l, -1)),
        ffi::LUA_TBOOLEAN => out.push(if ffi::lua_toboolean(l, -1) != 0 { 0xc3 } else { 0xc2 }),
        ffi::LUA_TNUMBER => encode_number(out, ffi::lua_tonumber(l, -1)),
        ffi::LUA_TTABLE if level < MAX_NESTING => encode_table(l, out, level)?,
        _ => out.push(0xc0),
    }
    ffi::lua_pop(l, 1);
    Ok(())
}

/// # Safety
/// A table must be on top of the stack (left there).
unsafe fn encode_table(l: *mut ffi::lua_State, out: &mut Vec<u8>, level: u32) -> Result<(), String> {
    if ffi::lua_checkstack(l, 3) == 0 {
        return Err("stack overflow (in function mp_encode_lua_table_as_map)".into());
    }
    // table_is_an_array: only keys that are exact positive C ints, and
    // max key == number of keys.
    let mut is_array = true;
    let mut max: i32 = 0;
    let mut count: i64 = 0;
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        ffi::lua_pop(l, 1);
        let n = ffi::lua_tonumber(l, -1);
        if ffi::lua_type(l, -1) != ffi::LUA_TNUMBER || n <= 0.0 || d2i32(n) as f64 != n {
            ffi::lua_pop(l, 1);
            is_array = false;
            break;
        }
        max = max.max(d2i32(n));
        count += 1;
    }
    if is_array && max as i64 == count {
        let len = ffi::lua_objlen(l, -1);
        encode_len(out, len, 0x90, 0xdc, 0xdd);
        for j in 1..=len {
            ffi::lua_rawgeti(l, -1, j as _);
            encode(l, out, level + 1)?;
        }
    } else {
        let mut n = 0usize;
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            ffi::lua_pop(l, 1);
            n += 1;
        }
        encode_len(out, n, 0x80, 0xde, 0xdf);
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            // Stack: table, key, value → push a copy of the key; encode
            // (and pop) it, then the value, leaving the key for lua_next.
            ffi::lua_pushvalue(l, -2);
            encode(l, out, level + 1)?;
            encode(l, out, level + 1)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- decoding

enum DecErr {
    Eof,
    BadFmt,
    Msg(String),
    Raw(String),
}

struct Frame {
    map: bool,
    /// Elements (arrays) or pairs (maps) still to read.
    left: u64,
    /// Next array index.
    index: i64,
    /// Map: the key has been read and sits on the stack.
    has_key: bool,
}

struct Cur<'a> {
    d: &'a [u8],
    p: usize,
}

impl Cur<'_> {
    fn left(&self) -> usize {
        self.d.len() - self.p
    }
    fn need(&self, n: usize) -> Result<(), DecErr> {
        if self.left() < n {
            Err(DecErr::Eof)
        } else {
            Ok(())
        }
    }
    fn be(&self, off: usize, n: usize) -> u64 {
        let mut v = 0u64;
        for i in 0..n {
            v = (v << 8) | self.d[self.p + off + i] as u64;
        }
        v
    }
}

fn stack_overflow(what: &str) -> DecErr {
    DecErr::Msg(format!("stack overflow ({what})"))
}

/// Lua stack slots the C decoder uses for the open containers: arrays hold
/// table + index, maps the table (+ the key once read).
fn frame_slots(stack: &[Frame]) -> usize {
    stack.iter().map(|f| if !f.map || f.has_key { 2 } else { 1 }).sum()
}

/// Decodes one top-level object and leaves it on the stack.  Iterative:
/// open containers (and pending map keys) stay on the Lua stack.  `base` is
/// the number of slots the C code would have in use before pushing it.
///
/// # Safety
/// Needs a protected stack frame; pushes exactly one value on success.
unsafe fn decode_one(l: *mut ffi::lua_State, c: &mut Cur, base: usize) -> Result<(), DecErr> {
    let mut stack: Vec<Frame> = Vec::new();
    loop {
        c.need(1)?;
        let slots = base + frame_slots(&stack);
        if slots + 1 > LUAI_MAXCSTACK || ffi::lua_checkstack(l, 1) == 0 {
            return Err(stack_overflow("too many return values at once; use unpack_one or unpack_limit instead."));
        }
        let b = c.d[c.p];
        let mut container: Option<(bool, u64)> = None; // (is_map, len)
        match b {
            0xcc | 0xd0 => {
                c.need(2)?;
                let x = c.d[c.p + 1];
                ffi::lua_pushnumber(l, if b == 0xcc { x as f64 } else { x as i8 as f64 });
                c.p += 2;
            }
            0xcd | 0xd1 => {
                c.need(3)?;
                let x = c.be(1, 2) as u16;
                ffi::lua_pushnumber(l, if b == 0xcd { x as f64 } else { x as i16 as f64 });
                c.p += 3;
            }
            0xce | 0xd2 => {
                c.need(5)?;
                let x = c.be(1, 4) as u32;
                ffi::lua_pushnumber(l, if b == 0xce { x as f64 } else { x as i32 as f64 });
                c.p += 5;
            }
            0xcf | 0xd3 => {
                c.need(9)?;
                // Both are pushed through lua_Integer (so uint64 wraps).
                ffi::lua_pushnumber(l, c.be(1, 8) as i64 as f64);
                c.p += 9;
            }
            0xc0 => {
                ffi::lua_pushnil(l);
                c.p += 1;
            }
            0xc2 | 0xc3 => {
                ffi::lua_pushboolean(l, (b == 0xc3) as i32);
                c.p += 1;
            }
            0xca => {
                c.need(5)?;
                ffi::lua_pushnumber(l, f32::from_bits(c.be(1, 4) as u32) as f64);
                c.p += 5;
            }
            0xcb => {
                c.need(9)?;
                ffi::lua_pushnumber(l, f64::from_bits(c.be(1, 8)));
                c.p += 9;
            }
            0xd9..=0xdb => {
                let hl = match b {
                    0xd9 => 1,
                    0xda => 2,
                    _ => 4,
                };
                c.need(1 + hl)?;
                let n = c.be(1, hl) as usize;
                c.p += 1 + hl;
                c.need(n)?;
                raw::push_bytes(l, &c.d[c.p..c.p + n]);
                c.p += n;
            }
            0xdc | 0xde => {
                c.need(3)?;
                container = Some((b == 0xde, c.be(1, 2)));
                c.p += 3;
            }
            0xdd | 0xdf => {
                c.need(5)?;
                container = Some((b == 0xdf, c.be(1, 4)));
                c.p += 5;
            }
            _ if b & 0x80 == 0 => {
                ffi::lua_pushnumber(l, b as f64);
                c.p += 1;
            }
            _ if b & 0xe0 == 0xe0 => {
                ffi::lua_pushnumber(l, b as i8 as f64);
                c.p += 1;
            }
            _ if b & 0xe0 == 0xa0 => {
                let n = (b & 0x1f) as usize;
                c.need(1 + n)?;
                raw::push_bytes(l, &c.d[c.p + 1..c.p + 1 + n]);
                c.p += 1 + n;
            }
            _ if b & 0xf0 == 0x90 || b & 0xf0 == 0x80 => {
                container = Some((b & 0xf0 == 0x80, (b & 0xf) as u64));
                c.p += 1;
            }
            _ => return Err(DecErr::BadFmt),
        }
        if let Some((map, len)) = container {
            if !map && slots + 2 > LUAI_MAXCSTACK {
                return Err(stack_overflow("in function mp_decode_to_lua_array"));
            }
            ffi::lua_createtable(l, 0, 0);
            if len > 0 {
                stack.push(Frame {
                    map,
                    left: len,
                    index: 1,
                    has_key: false,
                });
                continue;
            }
        }
        // A value is on top: store it into its parent, closing completed
        // containers.
        loop {
            let Some(fr) = stack.last_mut() else { return Ok(()) };
            if !fr.map {
                ffi::lua_rawseti(l, -2, fr.index as _);
                fr.index += 1;
            } else if !fr.has_key {
                fr.has_key = true;
                break;
            } else {
                // lua_settable on a fresh table: only nil/NaN keys fail.
                match ffi::lua_type(l, -2) {
                    ffi::LUA_TNIL => return Err(DecErr::Raw("table index is nil".into())),
                    ffi::LUA_TNUMBER if ffi::lua_tonumber(l, -2).is_nan() => return Err(DecErr::Raw("table index is NaN".into())),
                    _ => {}
                }
                ffi::lua_rawset(l, -3);
                fr.has_key = false;
            }
            fr.left -= 1;
            if fr.left > 0 {
                break;
            }
            stack.pop();
        }
    }
}

/// lua-cmsgpack `mp_unpack_full`.  `base` is the number of stack slots in
/// use when decoding starts (the arguments left on the stack).
fn unpack_full(lua: &Lua, s: &[u8], limit: i64, offset: i64, base: usize) -> LibResult<Ret> {
    let decode_all = limit == 0 && offset == 0;
    let len = s.len();
    if offset < 0 || limit < 0 {
        return err(format!(
            "Invalid request to unpack with offset of {} and limit of {}.",
            offset as i32, len as i32
        ));
    } else if offset as usize > len {
        return err(format!("Start offset {} greater than input length {}.", offset as i32, len as i32));
    }
    let limit = if decode_all { i32::MAX as i64 } else { limit };
    let mut c = Cur { d: s, p: offset as usize };
    let mut n = 0usize;
    let mut res: Result<(), DecErr> = Ok(());
    // SAFETY: runs in a protected call on an empty frame; results are
    // collected into a table at index 1 (slot 1 is reserved for the offset
    // when not decoding everything), which is all that is left at the end.
    let results: Table = unsafe {
        lua.exec_raw((), |l| {
            ffi::lua_createtable(l, 0, 0);
            let first = if decode_all { 1 } else { 2 };
            let mut cnt: i64 = 0;
            while c.left() > 0 && cnt < limit {
                if let Err(e) = decode_one(l, &mut c, base + n) {
                    res = Err(e);
                    break;
                }
                ffi::lua_rawseti(l, 1, (first + n) as _);
                n += 1;
                cnt += 1;
            }
            ffi::lua_settop(l, 1);
        })?
    };
    match res {
        Ok(()) => {}
        Err(DecErr::Eof) => return err("Missing bytes in input."),
        Err(DecErr::BadFmt) => return err("Bad data format in input."),
        Err(DecErr::Msg(m)) => return err(m),
        Err(DecErr::Raw(m)) => return Err(LibError::Raw(m)),
    }
    if !decode_all {
        if base + n + 1 > LUAI_MAXCSTACK {
            return err("stack overflow (in function mp_unpack_full)");
        }
        let next = if c.left() == 0 { -1 } else { (len - c.left()) as i64 };
        results.raw_set(1, next as f64)?;
        n += 1;
    }
    Ok(Ret::Packed(results, n))
}
