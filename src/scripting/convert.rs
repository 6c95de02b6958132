//! Redis's conversion rules between replies and Lua values, both ways
//! (script_lua.c `redisProtocolToLuaType` and `luaReplyToRedisReply`).

use crate::protocol::Reply;
use mlua::{Lua, Table, Value};

/// How deep a Lua table may nest in a reply (a table holding itself would
/// recurse forever; Redis stops when the Lua C stack is exhausted).
const MAX_DEPTH: usize = 1000;

/// A command's reply (RESP2 or RESP3 bytes) as the Lua value a script sees.
pub fn reply_to_lua(lua: &Lua, bytes: &[u8]) -> mlua::Result<Value> {
    let mut pos = 0;
    parse(lua, bytes, &mut pos)
}

fn line<'a>(b: &'a [u8], pos: &mut usize) -> &'a [u8] {
    let start = *pos;
    let end = memchr::memchr(b'\r', &b[start..]).map(|i| start + i).unwrap_or(b.len());
    *pos = (end + 2).min(b.len());
    &b[start..end]
}

fn num(s: &[u8]) -> i64 {
    crate::util::num::string2ll(s).unwrap_or(0)
}

/// `{field = value}`, the shape of status, error, double... replies.
fn single(lua: &Lua, field: &str, v: impl mlua::IntoLua) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(field, v)?;
    Ok(Value::Table(t))
}

/// luaPushErrorBuff: "-CODE msg" keeps its code, a bare message gets ERR.
pub fn error_table(lua: &Lua, err: &[u8]) -> mlua::Result<Table> {
    let text: Vec<u8> = match err.strip_prefix(b"-") {
        Some(rest) => match memchr::memchr(b' ', rest) {
            Some(sp) => [&rest[..sp], b" ", trim_crlf(&rest[sp + 1..])].concat(),
            None => [b"ERR ", trim_crlf(rest)].concat(),
        },
        None => [b"ERR ", trim_crlf(err)].concat(),
    };
    let t = lua.create_table()?;
    t.raw_set("err", lua.create_string(&text)?)?;
    Ok(t)
}

fn trim_crlf(b: &[u8]) -> &[u8] {
    let mut s = b;
    while let [rest @ .., b'\r' | b'\n'] = s {
        s = rest;
    }
    while let [b'\r' | b'\n', rest @ ..] = s {
        s = rest;
    }
    s
}

fn parse(lua: &Lua, b: &[u8], pos: &mut usize) -> mlua::Result<Value> {
    let Some(&kind) = b.get(*pos) else { return Ok(Value::Boolean(false)) };
    *pos += 1;
    Ok(match kind {
        b':' => Value::Number(num(line(b, pos)) as f64),
        b'$' => {
            let n = num(line(b, pos));
            if n < 0 {
                return Ok(Value::Boolean(false));
            }
            let start = *pos;
            let end = (start + n as usize).min(b.len());
            *pos = (end + 2).min(b.len());
            Value::String(lua.create_string(&b[start..end])?)
        }
        b'+' => single(lua, "ok", lua.create_string(line(b, pos))?)?,
        b'-' => {
            let l = line(b, pos);
            let t = error_table(lua, &[b"-", l].concat())?;
            t.raw_set("ignore_error_stats_update", true)?;
            Value::Table(t)
        }
        b'*' | b'~' | b'>' => {
            let n = num(line(b, pos));
            if n < 0 {
                return Ok(Value::Boolean(false));
            }
            let t = lua.create_table()?;
            if kind == b'~' {
                let inner = lua.create_table()?;
                for _ in 0..n {
                    let v = parse(lua, b, pos)?;
                    inner.raw_set(v, true)?;
                }
                t.raw_set("set", inner)?;
            } else {
                for i in 0..n {
                    let v = parse(lua, b, pos)?;
                    t.raw_set(i + 1, v)?;
                }
            }
            Value::Table(t)
        }
        b'%' => {
            let n = num(line(b, pos));
            let inner = lua.create_table()?;
            for _ in 0..n {
                let k = parse(lua, b, pos)?;
                let v = parse(lua, b, pos)?;
                inner.raw_set(k, v)?;
            }
            single(lua, "map", inner)?
        }
        b'|' => {
            // Attributes are not shown to scripts: skip them, keep the reply.
            let n = num(line(b, pos));
            for _ in 0..2 * n {
                parse(lua, b, pos)?;
            }
            parse(lua, b, pos)?
        }
        b'_' => {
            line(b, pos);
            Value::Nil
        }
        b'#' => Value::Boolean(line(b, pos) == b"t"),
        b',' => {
            let l = line(b, pos);
            let d = std::str::from_utf8(l)
                .ok()
                .and_then(|s| match s {
                    "inf" => Some(f64::INFINITY),
                    "-inf" => Some(f64::NEG_INFINITY),
                    "nan" => Some(f64::NAN),
                    _ => s.parse().ok(),
                })
                .unwrap_or(0.0);
            single(lua, "double", d)?
        }
        b'(' => single(lua, "big_number", lua.create_string(line(b, pos))?)?,
        b'=' => {
            let n = num(line(b, pos)).max(0) as usize;
            let start = *pos;
            let end = (start + n).min(b.len());
            *pos = (end + 2).min(b.len());
            let body = &b[start..end];
            let (format, text) = if body.len() >= 4 { (&body[..3], &body[4..]) } else { (&b"txt"[..], body) };
            let inner = lua.create_table()?;
            inner.raw_set("string", lua.create_string(text)?)?;
            inner.raw_set("format", lua.create_string(format)?)?;
            single(lua, "verbatim_string", inner)?
        }
        _ => {
            line(b, pos);
            Value::Boolean(false)
        }
    })
}

/// What a script returned, as the reply to its caller. `script_resp3`: the
/// script asked for RESP3 (redis.setresp(3)), which decides how booleans go.
/// Returns the error message when the value is an error table (the caller
/// adds the script's position).
pub fn lua_to_reply(v: &Value, script_resp3: bool, out: &mut Reply) {
    write_value(v, script_resp3, out, 0);
}

fn field(t: &Table, name: &str) -> Value {
    t.raw_get::<Value>(name).unwrap_or(Value::Nil)
}

fn write_value(v: &Value, script_resp3: bool, out: &mut Reply, depth: usize) {
    if depth > MAX_DEPTH {
        out.error("ERR reached lua stack limit");
        return;
    }
    match v {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Boolean(b) => {
            if script_resp3 {
                out.boolean(*b);
            } else if *b {
                out.int(1);
            } else {
                out.null();
            }
        }
        Value::Integer(i) => out.int(*i),
        Value::Number(n) => out.int(lua_number_to_ll(*n)),
        Value::Table(t) => {
            if let Value::String(e) = field(t, "err") {
                let msg = e.as_bytes();
                out.buf.push(b'-');
                out.buf.extend(msg.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
                out.buf.extend_from_slice(b"\r\n");
                return;
            }
            if let Value::String(s) = field(t, "ok") {
                let ok: Vec<u8> = s.as_bytes().iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }).collect();
                out.status(&ok);
                return;
            }
            match field(t, "double") {
                Value::Number(d) => return out.double(d),
                Value::Integer(i) => return out.double(i as f64),
                _ => {}
            }
            if let Value::String(s) = field(t, "big_number") {
                let n: Vec<u8> = s.as_bytes().iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }).collect();
                if out.resp3 {
                    out.buf.push(b'(');
                    out.buf.extend_from_slice(&n);
                    out.buf.extend_from_slice(b"\r\n");
                } else {
                    out.bulk(&n);
                }
                return;
            }
            if let Value::Table(vt) = field(t, "verbatim_string") {
                if let (Value::String(f), Value::String(s)) = (field(&vt, "format"), field(&vt, "string")) {
                    let (f, s) = (f.as_bytes(), s.as_bytes());
                    if out.resp3 {
                        out.buf.push(b'=');
                        out.buf.extend_from_slice((s.len() + 4).to_string().as_bytes());
                        out.buf.extend_from_slice(b"\r\n");
                        out.buf.extend_from_slice(&f[..f.len().min(3)]);
                        out.buf.push(b':');
                        out.buf.extend_from_slice(&s);
                        out.buf.extend_from_slice(b"\r\n");
                    } else {
                        out.bulk(&s);
                    }
                    return;
                }
            }
            if let Value::Table(m) = field(t, "map") {
                let pairs: Vec<(Value, Value)> = m.pairs::<Value, Value>().filter_map(|p| p.ok()).collect();
                out.map_len(pairs.len());
                for (k, v) in &pairs {
                    write_value(k, script_resp3, out, depth + 1);
                    write_value(v, script_resp3, out, depth + 1);
                }
                return;
            }
            if let Value::Table(s) = field(t, "set") {
                let keys: Vec<Value> = s.pairs::<Value, Value>().filter_map(|p| p.ok().map(|(k, _)| k)).collect();
                out.set_len(keys.len());
                for k in &keys {
                    write_value(k, script_resp3, out, depth + 1);
                }
                return;
            }
            // An array: elements 1, 2, ... up to the first nil.
            let mut elems = Vec::new();
            let mut i = 1i64;
            loop {
                let v: Value = t.raw_get(i).unwrap_or(Value::Nil);
                if v.is_nil() {
                    break;
                }
                elems.push(v);
                i += 1;
            }
            out.array_len(elems.len());
            for e in &elems {
                write_value(e, script_resp3, out, depth + 1);
            }
        }
        _ => out.null(),
    }
}

/// C's `(long long)` of a Lua number, saturating where C would be undefined.
pub fn lua_number_to_ll(n: f64) -> i64 {
    if n.is_nan() {
        i64::MIN
    } else {
        n as i64
    }
}
