//! `bit`: LuaBitOp-compatible 32-bit operations.
//!
//! LuaBitOp normalises every argument by adding 2^52+2^51 to the double and
//! taking the low 32 bits of its representation (so values are rounded to
//! the nearest integer and wrapped modulo 2^32), and returns results as
//! signed 32-bit numbers.  Scripts depend on that exact wrapping, so we do
//! the same arithmetic rather than a saturating cast.

use super::{ret1, type_error, Builder, LibResult, Ret};
use mlua::{Lua, Table, Value};

/// LuaBitOp's `barg`: `lua_tonumber` then the 2^52+2^51 trick.  Non-numbers
/// convert to 0 and are then rejected with the `luaL_typerror` text.
fn barg(lua: &Lua, args: &[Value], idx: usize, fname: &str) -> LibResult<u32> {
    let n = super::to_number(lua, args.get(idx))?;
    match n {
        Some(n) => Ok((n + 6_755_399_441_055_744.0).to_bits() as u32),
        None => type_error(args, idx, fname, "number"),
    }
}

fn bret(b: u32) -> LibResult<Ret> {
    ret1(Value::Number(b as i32 as f64))
}

pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    let b = Builder::new(lua)?;
    let t = lua.create_table()?;
    b.set(lua, &t, "tobit", |lua, a| bret(barg(lua, &a, 0, "tobit")?))?;
    b.set(lua, &t, "bnot", |lua, a| bret(!barg(lua, &a, 0, "bnot")?))?;
    fn fold(lua: &Lua, a: &[Value], name: &str, op: fn(u32, u32) -> u32) -> LibResult<Ret> {
        let mut r = barg(lua, a, 0, name)?;
        // LuaBitOp folds from the last argument down to the second.
        for i in (1..a.len()).rev() {
            r = op(r, barg(lua, a, i, name)?);
        }
        bret(r)
    }
    b.set(lua, &t, "band", |lua, a| fold(lua, &a, "band", |x, y| x & y))?;
    b.set(lua, &t, "bor", |lua, a| fold(lua, &a, "bor", |x, y| x | y))?;
    b.set(lua, &t, "bxor", |lua, a| fold(lua, &a, "bxor", |x, y| x ^ y))?;
    fn shift(lua: &Lua, a: &[Value], name: &str, op: fn(u32, u32) -> u32) -> LibResult<Ret> {
        let x = barg(lua, a, 0, name)?;
        let n = barg(lua, a, 1, name)? & 31;
        bret(op(x, n))
    }
    b.set(lua, &t, "lshift", |lua, a| shift(lua, &a, "lshift", |x, n| x << n))?;
    b.set(lua, &t, "rshift", |lua, a| shift(lua, &a, "rshift", |x, n| x >> n))?;
    b.set(lua, &t, "arshift", |lua, a| shift(lua, &a, "arshift", |x, n| ((x as i32) >> n) as u32))?;
    b.set(lua, &t, "rol", |lua, a| shift(lua, &a, "rol", |x, n| x.rotate_left(n)))?;
    b.set(lua, &t, "ror", |lua, a| shift(lua, &a, "ror", |x, n| x.rotate_right(n)))?;
    b.set(lua, &t, "bswap", |lua, a| bret(barg(lua, &a, 0, "bswap")?.swap_bytes()))?;
    b.set(lua, &t, "tohex", |lua, a| {
        let mut x = barg(lua, &a, 0, "tohex")?;
        let mut n: i32 = if a.len() < 2 { 8 } else { barg(lua, &a, 1, "tohex")? as i32 };
        let mut digits: &[u8; 16] = b"0123456789abcdef";
        if n < 0 {
            // -(-2^31) overflows; the C build ends up treating it as "more
            // than 8 digits", so clamp it to 8 like any large count.
            n = n.checked_neg().unwrap_or(8);
            digits = b"0123456789ABCDEF";
        }
        let n = n.min(8) as usize;
        let mut buf = [0u8; 8];
        for i in (0..n).rev() {
            buf[i] = digits[(x & 15) as usize];
            x >>= 4;
        }
        ret1(Value::String(lua.create_string(&buf[..n])?))
    })?;
    Ok(t)
}
