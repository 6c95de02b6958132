//! The 52-bit geohash of Redis's geo commands (geohash.c / geohash_helper.c
//! semantics): latitude bits in the even positions, longitude bits in the odd
//! ones, latitude range [-85.05112878, 85.05112878]; the 9-box area search,
//! the haversine distance with Redis's earth radius, and the bounding-box
//! checks, in the same operation order so every printed digit matches.

pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
pub const STEP_MAX: u8 = 26;

const D_R: f64 = std::f64::consts::PI / 180.0;
pub const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;

#[inline]
fn deg_rad(a: f64) -> f64 {
    a * D_R
}
#[inline]
fn rad_deg(a: f64) -> f64 {
    a / D_R
}

/// A geohash of `step` bits per coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Hash {
    pub bits: u64,
    pub step: u8,
}

impl Hash {
    pub fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }
    /// The hash's prefix aligned to a 52-bit score.
    pub fn align52(&self) -> u64 {
        self.bits << (52 - self.step as u32 * 2)
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Area {
    pub lon: Range,
    pub lat: Range,
}

const WGS_LON: Range = Range { min: LONG_MIN, max: LONG_MAX };
const WGS_LAT: Range = Range { min: LAT_MIN, max: LAT_MAX };

/// Spreads the 32 bits of `v` into the even bit positions.
fn spread(v: u32) -> u64 {
    let mut x = v as u64;
    x = (x | (x << 16)) & 0x0000FFFF0000FFFF;
    x = (x | (x << 8)) & 0x00FF00FF00FF00FF;
    x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0F;
    x = (x | (x << 2)) & 0x3333333333333333;
    x = (x | (x << 1)) & 0x5555555555555555;
    x
}

/// Gathers the even bit positions of `v` into 32 bits.
fn gather(v: u64) -> u32 {
    let mut x = v & 0x5555555555555555;
    x = (x | (x >> 1)) & 0x3333333333333333;
    x = (x | (x >> 2)) & 0x0F0F0F0F0F0F0F0F;
    x = (x | (x >> 4)) & 0x00FF00FF00FF00FF;
    x = (x | (x >> 8)) & 0x0000FFFF0000FFFF;
    x = (x | (x >> 16)) & 0x00000000FFFFFFFF;
    x as u32
}

/// Encodes (lon, lat) in the given ranges; None outside the supported bounds.
pub fn encode(lon_r: Range, lat_r: Range, lon: f64, lat: f64, step: u8) -> Option<Hash> {
    if step > 32 || step == 0 {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.min || lat > lat_r.max || lon < lon_r.min || lon > lon_r.max {
        return None;
    }
    let mut lat_off = (lat - lat_r.min) / (lat_r.max - lat_r.min);
    let mut lon_off = (lon - lon_r.min) / (lon_r.max - lon_r.min);
    let scale = (1u64 << step) as f64;
    lat_off *= scale;
    lon_off *= scale;
    let bits = spread(lat_off as u32) | (spread(lon_off as u32) << 1);
    Some(Hash { bits, step })
}

pub fn encode_wgs84(lon: f64, lat: f64, step: u8) -> Option<Hash> {
    encode(WGS_LON, WGS_LAT, lon, lat, step)
}

/// The 52-bit score of a point (coordinates already validated).
pub fn score_of(lon: f64, lat: f64) -> Option<u64> {
    encode_wgs84(lon, lat, STEP_MAX).map(|h| h.align52())
}

pub fn decode(lon_r: Range, lat_r: Range, h: Hash) -> Option<Area> {
    if h.is_zero() {
        return None;
    }
    let step = h.step as u32;
    let ilat = gather(h.bits) as f64;
    let ilon = gather(h.bits >> 1) as f64;
    let div = (1u64 << step) as f64;
    let lat_scale = lat_r.max - lat_r.min;
    let lon_scale = lon_r.max - lon_r.min;
    Some(Area {
        lat: Range {
            min: lat_r.min + (ilat * 1.0 / div) * lat_scale,
            max: lat_r.min + ((ilat + 1.0) * 1.0 / div) * lat_scale,
        },
        lon: Range {
            min: lon_r.min + (ilon * 1.0 / div) * lon_scale,
            max: lon_r.min + ((ilon + 1.0) * 1.0 / div) * lon_scale,
        },
    })
}

pub fn decode_wgs84(h: Hash) -> Option<Area> {
    decode(WGS_LON, WGS_LAT, h)
}

const TWO63: f64 = (1u64 << 63) as f64;

/// `(long long)d` as x86-64 compilers emit it (cvttsd2si: out of range is i64::MIN).
pub fn c_double_to_i64(v: f64) -> i64 {
    if v.is_nan() || !(-TWO63..TWO63).contains(&v) {
        i64::MIN
    } else {
        v as i64
    }
}

/// `(uint64_t)d` as x86-64 compilers emit it (cvttsd2si, with the 2^63
/// offset for large values): what a non-geo score decodes as.
fn c_double_to_u64(d: f64) -> u64 {
    let cvt = c_double_to_i64;
    if d < TWO63 {
        cvt(d) as u64
    } else {
        (cvt(d - TWO63) as u64) ^ (1u64 << 63)
    }
}

/// The centre of a 52-bit score's cell, clamped to the valid ranges.
pub fn decode_score(score: f64) -> Option<(f64, f64)> {
    let a = decode_wgs84(Hash {
        bits: c_double_to_u64(score),
        step: STEP_MAX,
    })?;
    let lon = ((a.lon.min + a.lon.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((a.lat.min + a.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    Some((lon, lat))
}

/// The standard 11-character geohash string of a score (GEOHASH).
pub fn hash_string(score: f64) -> Option<[u8; 11]> {
    const ALPHA: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = decode_score(score)?;
    let h = encode(Range { min: -180.0, max: 180.0 }, Range { min: -90.0, max: 90.0 }, lon, lat, 26)?;
    let mut buf = [b'0'; 11];
    for (i, b) in buf.iter_mut().enumerate().take(10) {
        let idx = (h.bits >> (52 - (i + 1) * 5)) & 0x1f;
        *b = ALPHA[idx as usize];
    }
    Some(buf)
}

fn move_x(h: &mut Hash, d: i8) {
    if d == 0 {
        return;
    }
    let mut x = h.bits & 0xaaaaaaaaaaaaaaaa;
    let y = h.bits & 0x5555555555555555;
    let sh = 64 - h.step as u32 * 2;
    let zz = 0x5555555555555555u64 >> sh;
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaaaaaaaaaaaaaau64 >> sh;
    h.bits = x | y;
}

fn move_y(h: &mut Hash, d: i8) {
    if d == 0 {
        return;
    }
    let x = h.bits & 0xaaaaaaaaaaaaaaaa;
    let mut y = h.bits & 0x5555555555555555;
    let sh = 64 - h.step as u32 * 2;
    let zz = 0xaaaaaaaaaaaaaaaau64 >> sh;
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555555555555555u64 >> sh;
    h.bits = x | y;
}

fn moved(h: Hash, dx: i8, dy: i8) -> Hash {
    let mut n = h;
    move_x(&mut n, dx);
    move_y(&mut n, dy);
    n
}

fn estimate_steps(mut range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range_meters < MERCATOR_MAX {
        range_meters *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// The search shape: a circle (radius) or a box (width, height), in the
/// unit given by `conversion` (meters per unit).
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    Radius(f64),
    Box(f64, f64),
}

#[derive(Clone, Copy, Debug)]
pub struct Search {
    pub lon: f64,
    pub lat: f64,
    pub conversion: f64,
    pub shape: Shape,
}

impl Search {
    fn bounds(&self) -> [f64; 4] {
        let (h, w) = match self.shape {
            Shape::Radius(r) => (self.conversion * r, self.conversion * r),
            Shape::Box(w, h) => (self.conversion * (h / 2.0), self.conversion * (w / 2.0)),
        };
        let lat_delta = rad_deg(h / EARTH_RADIUS_IN_METERS);
        let long_delta_top = rad_deg(w / EARTH_RADIUS_IN_METERS / deg_rad(self.lat + lat_delta).cos());
        let long_delta_bottom = rad_deg(w / EARTH_RADIUS_IN_METERS / deg_rad(self.lat - lat_delta).cos());
        let south = self.lat < 0.0;
        [
            if south { self.lon - long_delta_bottom } else { self.lon - long_delta_top },
            self.lat - lat_delta,
            if south { self.lon + long_delta_bottom } else { self.lon + long_delta_top },
            self.lat + lat_delta,
        ]
    }

    /// The 9 boxes to scan, in Redis's order (centre, N, S, E, W, NE, NW,
    /// SE, SW); a zero hash is a box excluded from the search.
    pub fn boxes(&self) -> [Hash; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let radius_meters = match self.shape {
            Shape::Radius(r) => r,
            Shape::Box(w, h) => ((w / 2.0) * (w / 2.0) + (h / 2.0) * (h / 2.0)).sqrt(),
        } * self.conversion;
        let mut steps = estimate_steps(radius_meters, self.lat);
        let enc = |steps: u8| encode(WGS_LON, WGS_LAT, self.lon, self.lat, steps).unwrap_or(Hash { bits: 0, step: steps });
        let dec = |h: Hash| decode(WGS_LON, WGS_LAT, h).unwrap_or_default();
        let mut hash = enc(steps);
        let mut n = neighbours(hash);
        let mut area = dec(hash);
        let mut decrease = false;
        if dec(n[1]).lat.max < max_lat {
            decrease = true;
        }
        if dec(n[2]).lat.min > min_lat {
            decrease = true;
        }
        if dec(n[3]).lon.max < max_lon {
            decrease = true;
        }
        if dec(n[4]).lon.min > min_lon {
            decrease = true;
        }
        if steps > 1 && decrease {
            steps -= 1;
            hash = enc(steps);
            n = neighbours(hash);
            area = dec(hash);
        }
        const ZERO: Hash = Hash { bits: 0, step: 0 };
        if steps >= 2 {
            if area.lat.min < min_lat {
                n[2] = ZERO;
                n[8] = ZERO;
                n[7] = ZERO;
            }
            if area.lat.max > max_lat {
                n[1] = ZERO;
                n[5] = ZERO;
                n[6] = ZERO;
            }
            if area.lon.min < min_lon {
                n[4] = ZERO;
                n[8] = ZERO;
                n[6] = ZERO;
            }
            if area.lon.max > max_lon {
                n[3] = ZERO;
                n[7] = ZERO;
                n[5] = ZERO;
            }
        }
        n
    }

    /// The distance (meters) of the point from the centre when it lies in
    /// the shape.
    pub fn within(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.shape {
            Shape::Radius(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                (d <= r * self.conversion).then_some(d)
            }
            Shape::Box(w, h) => {
                let (w, h) = (w * self.conversion, h * self.conversion);
                if lat_distance(lat, self.lat) > h / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > w / 2.0 {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }
}

/// [centre, N, S, E, W, NE, NW, SE, SW].
fn neighbours(h: Hash) -> [Hash; 9] {
    [
        h,
        moved(h, 0, 1),
        moved(h, 0, -1),
        moved(h, 1, 0),
        moved(h, -1, 0),
        moved(h, 1, 1),
        moved(h, -1, 1),
        moved(h, 1, -1),
        moved(h, -1, -1),
    ]
}

/// The [min, max) score range of a box.
pub fn score_range(h: Hash) -> (f64, f64) {
    let min = h.align52();
    let max = Hash {
        bits: h.bits.wrapping_add(1),
        step: h.step,
    }
    .align52();
    (min as f64, max as f64)
}

pub fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Haversine distance in meters.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = deg_rad(lon1);
    let lon2r = deg_rad(lon2);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let lat1r = deg_rad(lat1);
    let lat2r = deg_rad(lat2);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

/// fixedpoint_d2string(d, 4): the distance as Redis replies it.
pub fn fmt_distance(out: &mut Vec<u8>, d: f64) {
    if d == 0.0 {
        out.extend_from_slice(b"0.0000");
        return;
    }
    // llrint: out of range is LLONG_MIN on x86-64.
    let s = c_double_to_i64((d * 10000.0).round_ties_even());
    let neg = s < 0;
    let mag = s.unsigned_abs();
    if neg {
        out.push(b'-');
    }
    let digits = mag.to_string();
    if digits.len() <= 4 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', 4 - digits.len()));
        out.extend_from_slice(digits.as_bytes());
    } else {
        let (i, f) = digits.split_at(digits.len() - 4);
        out.extend_from_slice(i.as_bytes());
        out.push(b'.');
        out.extend_from_slice(f.as_bytes());
    }
}

/// A coordinate as addReplyHumanLongDouble prints it ("%.17Lf", trailing
/// zeros and dot removed).
pub fn fmt_coord(out: &mut Vec<u8>, d: f64) {
    let mut s = format!("{d:.17}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".into();
    }
    out.extend_from_slice(s.as_bytes());
}

/// The "%f" of C (6 decimals), for the invalid pair error.
pub fn fmt_f6(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    format!("{d:.6}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_gather_roundtrip() {
        for v in [0u32, 1, 0xdeadbeef, u32::MAX, 12345] {
            assert_eq!(gather(spread(v)), v);
        }
    }

    #[test]
    fn distance_format() {
        let mut b = Vec::new();
        fmt_distance(&mut b, 0.00004);
        assert_eq!(b, b"0.0000");
        b.clear();
        fmt_distance(&mut b, 166274.15156960033);
        assert_eq!(b, b"166274.1516");
        b.clear();
        fmt_distance(&mut b, 0.12);
        assert_eq!(b, b"0.1200");
    }
}
