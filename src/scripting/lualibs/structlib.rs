//! `struct`: binary pack/unpack compatible with Roberto Ierusalimschy's
//! struct library as embedded by Redis (built for x86-64 Linux: `long` is 8
//! bytes, native order little endian, maximum alignment 8).
//!
//! Scripts use it to build and parse binary blobs shared with other
//! clients, so sizes, padding, the handling of out-of-range numbers (the C
//! casts) and error texts follow the C library.

use super::{arg_error, check_bytes, check_number, d2i64, d2u64, err, opt_integer, ret1, to_number, Builder, LibResult, Ret, LUAI_MAXCSTACK};
use mlua::{Lua, Table, Value};

const MAXINTSIZE: usize = 32;
const MAXALIGN: usize = 8;
const BIG: bool = false;
const LITTLE: bool = true;
const NATIVE: bool = LITTLE;

struct Header {
    endian: bool,
    align: usize,
}

/// The format string as C sees it (up to the first NUL).
struct Fmt<'a> {
    s: &'a [u8],
    p: usize,
}

impl Fmt<'_> {
    fn peek(&self) -> u8 {
        self.s.get(self.p).copied().unwrap_or(0)
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        if c == 0 {
            None
        } else {
            self.p += 1;
            Some(c)
        }
    }
    fn getnum(&mut self, df: usize) -> LibResult<usize> {
        if !self.peek().is_ascii_digit() {
            return Ok(df);
        }
        let mut a: i32 = 0;
        while self.peek().is_ascii_digit() {
            let d = (self.peek() - b'0') as i32;
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return err("integral size overflow");
            }
            a = a * 10 + d;
            self.p += 1;
        }
        Ok(a as usize)
    }
}

fn optsize(opt: u8, f: &mut Fmt) -> LibResult<usize> {
    Ok(match opt {
        b'B' | b'b' => 1,
        b'H' | b'h' => 2,
        b'L' | b'l' | b'T' | b'd' => 8,
        b'f' => 4,
        b'x' => 1,
        b'c' => f.getnum(1)?,
        b'i' | b'I' => {
            let sz = f.getnum(4)?;
            if sz > MAXINTSIZE {
                return err(format!("integral size {sz} is larger than limit of {MAXINTSIZE}"));
            }
            sz
        }
        _ => 0,
    })
}

fn gettoalign(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    size.wrapping_sub(len & size.wrapping_sub(1)) & size.wrapping_sub(1)
}

fn controloptions(opt: u8, f: &mut Fmt, h: &mut Header, fname: &str) -> LibResult<()> {
    match opt {
        b' ' => {}
        b'>' => h.endian = BIG,
        b'<' => h.endian = LITTLE,
        b'!' => {
            let a = f.getnum(MAXALIGN)?;
            if !(a > 0 && a & (a - 1) == 0) {
                return err(format!("alignment {a} is not a power of 2"));
            }
            h.align = a;
        }
        _ => {
            return arg_error(1, fname, &format!("invalid format option '{}'", opt as char));
        }
    }
    Ok(())
}

fn is_int_opt(opt: u8) -> bool {
    matches!(opt, b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I')
}

fn fmt_bytes(lua: &Lua, a: &[Value], fname: &str) -> LibResult<Vec<u8>> {
    let mut s = check_bytes(lua, a, 0, fname)?;
    if let Some(z) = s.iter().position(|&c| c == 0) {
        s.truncate(z);
    }
    Ok(s)
}

pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    let b = Builder::new(lua)?;
    let t = lua.create_table()?;
    b.set(lua, &t, "pack", |lua, a| pack(lua, &a))?;
    b.set(lua, &t, "unpack", |lua, a| unpack(lua, &a))?;
    b.set(lua, &t, "size", |lua, a| size(lua, &a))?;
    Ok(t)
}

fn pack(lua: &Lua, a: &[Value]) -> LibResult<Ret> {
    let fs = fmt_bytes(lua, a, "pack")?;
    // The C code pushes a nil marker above the arguments, so the first
    // missing value argument is reported as "got nil".
    let mut a = a.to_vec();
    a.push(Value::Nil);
    let a = &a[..];
    let mut f = Fmt { s: &fs, p: 0 };
    let mut h = Header { endian: NATIVE, align: 1 };
    let mut arg = 1usize; // 0-based index of the next value argument
    let mut out: Vec<u8> = Vec::new();
    while let Some(opt) = f.next() {
        let mut size = optsize(opt, &mut f)?;
        let toalign = gettoalign(out.len(), &h, opt, size);
        out.resize(out.len() + toalign, 0);
        match opt {
            _ if is_int_opt(opt) => {
                let n = check_number(lua, a, arg, "pack")?;
                arg += 1;
                let mut value: u64 = if n < 0.0 { d2i64(n) as u64 } else { d2u64(n) };
                let mut buf = [0u8; MAXINTSIZE];
                for i in 0..size {
                    let pos = if h.endian == LITTLE { i } else { size - 1 - i };
                    buf[pos] = value as u8;
                    value >>= 8;
                }
                out.extend_from_slice(&buf[..size]);
            }
            b'x' => out.push(0),
            b'f' => {
                let v = check_number(lua, a, arg, "pack")? as f32;
                arg += 1;
                let bytes = if h.endian == LITTLE { v.to_le_bytes() } else { v.to_be_bytes() };
                out.extend_from_slice(&bytes);
            }
            b'd' => {
                let v = check_number(lua, a, arg, "pack")?;
                arg += 1;
                let bytes = if h.endian == LITTLE { v.to_le_bytes() } else { v.to_be_bytes() };
                out.extend_from_slice(&bytes);
            }
            b'c' | b's' => {
                let s = check_bytes(lua, a, arg, "pack")?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // The C code reports the already-advanced argument index.
                    return arg_error(arg as i64 + 1, "pack", "string too short");
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => controloptions(opt, &mut f, &mut h, "pack")?,
        }
    }
    ret1(Value::String(lua.create_string(out)?))
}

fn getinteger(buf: &[u8], endian: bool, signed: bool) -> f64 {
    let size = buf.len();
    let mut l: u64 = 0;
    for i in 0..size {
        let b = if endian == BIG { buf[i] } else { buf[size - 1 - i] };
        l = (l << 8) | b as u64;
    }
    if !signed {
        l as f64
    } else {
        // `~0 << (size*8 - 1)` with x86's masking of the shift count.
        let shift = ((size as i64 * 8 - 1) as u32) & 63;
        let mask = u64::MAX << shift;
        if l & mask != 0 {
            l |= mask;
        }
        l as i64 as f64
    }
}

fn unpack(lua: &Lua, a: &[Value]) -> LibResult<Ret> {
    let fs = fmt_bytes(lua, a, "unpack")?;
    let data = check_bytes(lua, a, 1, "unpack")?;
    let ld = data.len();
    // The offset is taken as an unsigned size: only 0 is rejected here;
    // negative offsets become huge and fail the length checks below.
    let mut pos = opt_integer(lua, a, 2, "unpack", 1)? as u64 as usize;
    if pos == 0 {
        return arg_error(3, "unpack", "offset must be 1 or greater");
    }
    pos -= 1;
    let mut f = Fmt { s: &fs, p: 0 };
    let mut h = Header { endian: NATIVE, align: 1 };
    // Results go straight into a Lua table (mlua can hold few live values).
    let res = Results {
        t: lua.create_table()?,
        n: 0,
        last: Value::Nil,
    };
    let mut res = res;
    let base = a.len();
    while let Some(opt) = f.next() {
        let mut size = optsize(opt, &mut f)?;
        pos = pos.wrapping_add(gettoalign(pos, &h, opt, size));
        if !(size <= ld && pos <= ld - size) {
            return arg_error(2, "unpack", "data string too short");
        }
        if base + res.n + 2 > LUAI_MAXCSTACK {
            return err("stack overflow (too many results)");
        }
        match opt {
            _ if is_int_opt(opt) => {
                let signed = opt.is_ascii_lowercase();
                res.push(Value::Number(getinteger(&data[pos..pos + size], h.endian, signed)))?;
            }
            b'x' => {}
            b'f' => {
                let mut b4 = [0u8; 4];
                b4.copy_from_slice(&data[pos..pos + 4]);
                let v = if h.endian == LITTLE { f32::from_le_bytes(b4) } else { f32::from_be_bytes(b4) };
                res.push(Value::Number(v as f64))?;
            }
            b'd' => {
                let mut b8 = [0u8; 8];
                b8.copy_from_slice(&data[pos..pos + 8]);
                let v = if h.endian == LITTLE { f64::from_le_bytes(b8) } else { f64::from_be_bytes(b8) };
                res.push(Value::Number(v))?;
            }
            b'c' => {
                if size == 0 {
                    // The length is the previous result (a number or a
                    // numeric string).
                    let prev = if res.n == 0 { None } else { to_number(lua, Some(&res.last))? };
                    let Some(n) = prev else {
                        return err("format 'c0' needs a previous size");
                    };
                    size = d2u64(n) as usize;
                    res.pop()?;
                    if !(size <= ld && pos <= ld - size) {
                        return arg_error(2, "unpack", "data string too short");
                    }
                }
                res.push(Value::String(lua.create_string(&data[pos..pos + size])?))?;
            }
            b's' => {
                let Some(z) = data[pos..].iter().position(|&c| c == 0) else {
                    return err("unfinished string in data");
                };
                size = z + 1;
                res.push(Value::String(lua.create_string(&data[pos..pos + z])?))?;
            }
            _ => controloptions(opt, &mut f, &mut h, "unpack")?,
        }
        pos = pos.wrapping_add(size);
    }
    res.push(Value::Number(pos.wrapping_add(1) as u64 as i64 as f64))?;
    Ok(Ret::Packed(res.t, res.n))
}

struct Results {
    t: Table,
    n: usize,
    /// Copy of the last result (for 'c0').
    last: Value,
}

impl Results {
    fn push(&mut self, v: Value) -> mlua::Result<()> {
        self.n += 1;
        self.t.raw_set(self.n, &v)?;
        self.last = v;
        Ok(())
    }
    fn pop(&mut self) -> mlua::Result<()> {
        self.t.raw_set(self.n, Value::Nil)?;
        self.n -= 1;
        self.last = if self.n > 0 { self.t.raw_get(self.n)? } else { Value::Nil };
        Ok(())
    }
}

fn size(lua: &Lua, a: &[Value]) -> LibResult<Ret> {
    let fs = fmt_bytes(lua, a, "size")?;
    let mut f = Fmt { s: &fs, p: 0 };
    let mut h = Header { endian: NATIVE, align: 1 };
    let mut pos: usize = 0;
    while let Some(opt) = f.next() {
        let size = optsize(opt, &mut f)?;
        pos = pos.wrapping_add(gettoalign(pos, &h, opt, size));
        if opt == b's' {
            return arg_error(1, "size", "option 's' has no fixed size");
        } else if opt == b'c' && size == 0 {
            return arg_error(1, "size", "option 'c0' has no fixed size");
        }
        if !opt.is_ascii_alphanumeric() {
            controloptions(opt, &mut f, &mut h, "size")?;
        }
        pos = pos.wrapping_add(size);
    }
    ret1(Value::Number(pos as f64))
}
