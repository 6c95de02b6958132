//! Random numbers and key distributions.

/// wyrand: tiny, fast, statistically fine for load generation.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // Scramble the seed so that neighbouring seeds diverge at once.
        let mut r = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
        r.next_u64();
        r
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.0 as u128).wrapping_mul((self.0 ^ 0xe703_7ed1_a0b4_28db) as u128);
        (t as u64) ^ ((t >> 64) as u64)
    }

    /// Uniform in `0..n` (n > 0), Lemire's multiply-shift (bias is negligible for n << 2^64).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Zipfian sampler over ranks `1..=n` with exponent `theta` (> 0), using
/// rejection-inversion (W. Hörmann, G. Derflinger, "Rejection-inversion to
/// generate variates from monotone discrete distributions", 1996): O(1)
/// set-up and O(1) expected time per sample for any key-space size, unlike
/// the Gray/YCSB method whose set-up needs zeta(n) (O(n)) and which only
/// covers theta < 1.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: f64,
    theta: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    s: f64,
}

impl Zipf {
    pub fn new(n: u64, theta: f64) -> Self {
        assert!(n >= 1 && theta > 0.0 && theta.is_finite());
        let mut z = Zipf {
            n: n as f64,
            theta,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            s: 0.0,
        };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(z.n + 0.5);
        z.s = 2.0 - z.h_integral_inv(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// A rank in `1..=n`; rank 1 is the most popular.
    #[inline]
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_integral_n + rng.f64() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inv(u);
            let mut k = (x + 0.5) as u64; // saturating float->int cast
            if k < 1 {
                k = 1;
            } else if k as f64 > self.n {
                k = self.n as u64;
            }
            let kf = k as f64;
            if kf - x <= self.s || u >= self.h_integral(kf + 0.5) - self.h(kf) {
                return k;
            }
        }
    }

    #[inline]
    fn h(&self, x: f64) -> f64 {
        (-self.theta * x.ln()).exp()
    }

    #[inline]
    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        helper2((1.0 - self.theta) * log_x) * log_x
    }

    #[inline]
    fn h_integral_inv(&self, x: f64) -> f64 {
        let mut t = x * (1.0 - self.theta);
        if t < -1.0 {
            t = -1.0;
        }
        (helper1(t) * x).exp()
    }
}

/// log(1+x)/x, accurate near 0.
#[inline]
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// (exp(x)-1)/x, accurate near 0.
#[inline]
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))
    }
}

#[derive(Debug, Clone)]
pub enum Distribution {
    Uniform,
    /// Each connection walks the key space from its own offset.
    Sequential,
    /// Normal around the middle of the key space, stddev = keys/6 (as memtier).
    Gaussian,
    Zipf(Zipf),
}

impl Distribution {
    pub fn parse(s: &str, keys: u64) -> Result<Distribution, String> {
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "uniform" | "random" => Ok(Distribution::Uniform),
            "sequential" | "seq" => Ok(Distribution::Sequential),
            "gaussian" | "normal" => Ok(Distribution::Gaussian),
            _ => {
                if let Some(t) = lower.strip_prefix("zipf") {
                    let t = t.strip_prefix(':').unwrap_or(if t.is_empty() { "0.99" } else { t });
                    let theta: f64 = t.parse().map_err(|_| format!("bad zipf exponent {t:?} in --distribution {s:?}"))?;
                    if !(theta > 0.0 && theta.is_finite()) {
                        return Err(format!("zipf exponent must be > 0, got {theta}"));
                    }
                    Ok(Distribution::Zipf(Zipf::new(keys, theta)))
                } else {
                    Err(format!("unknown --distribution {s:?} (uniform, sequential, gaussian, zipf:THETA)"))
                }
            }
        }
    }

    pub fn name(&self) -> String {
        match self {
            Distribution::Uniform => "uniform".into(),
            Distribution::Sequential => "sequential".into(),
            Distribution::Gaussian => "gaussian".into(),
            Distribution::Zipf(z) => format!("zipf:{}", z.theta),
        }
    }
}

/// Per-connection key generator state.
#[derive(Debug, Clone)]
pub struct KeyState {
    pub seq_next: u64,
    gauss_spare: Option<f64>,
}

impl KeyState {
    pub fn new(seq_start: u64) -> Self {
        KeyState {
            seq_next: seq_start,
            gauss_spare: None,
        }
    }
}

/// Next key index in `0..keys`.
#[inline]
pub fn next_key(dist: &Distribution, keys: u64, st: &mut KeyState, rng: &mut Rng) -> u64 {
    match dist {
        Distribution::Uniform => rng.below(keys),
        Distribution::Sequential => {
            let k = st.seq_next;
            st.seq_next += 1;
            if st.seq_next >= keys {
                st.seq_next = 0;
            }
            k
        }
        Distribution::Gaussian => {
            let mean = (keys as f64 - 1.0) / 2.0;
            let sd = (keys as f64 / 6.0).max(f64::MIN_POSITIVE);
            loop {
                let z = match st.gauss_spare.take() {
                    Some(z) => z,
                    None => {
                        // Box-Muller: two normals per two uniforms.
                        let u1 = 1.0 - rng.f64(); // (0, 1]
                        let u2 = rng.f64();
                        let r = (-2.0 * u1.ln()).sqrt();
                        let a = std::f64::consts::TAU * u2;
                        st.gauss_spare = Some(r * a.sin());
                        r * a.cos()
                    }
                };
                let v = (mean + z * sd).round();
                if v >= 0.0 && v < keys as f64 {
                    return v as u64;
                }
            }
        }
        Distribution::Zipf(z) => z.sample(rng) - 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeta(n: u64, theta: f64) -> f64 {
        (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
    }

    #[test]
    fn zipf_frequencies_match_theory() {
        for &(n, theta) in &[(1000u64, 0.99f64), (100, 0.5), (50, 1.2), (10, 2.0)] {
            let z = Zipf::new(n, theta);
            let mut rng = Rng::new(42);
            let samples = 400_000;
            let mut counts = vec![0u64; n as usize + 1];
            for _ in 0..samples {
                let k = z.sample(&mut rng);
                assert!((1..=n).contains(&k), "rank {k} out of range");
                counts[k as usize] += 1;
            }
            let zn = zeta(n, theta);
            for rank in 1..=5u64.min(n) {
                let p = 1.0 / (rank as f64).powf(theta) / zn;
                let got = counts[rank as usize] as f64 / samples as f64;
                let tol = 4.0 * (p * (1.0 - p) / samples as f64).sqrt() + 1e-3;
                assert!((got - p).abs() < tol, "n={n} theta={theta} rank={rank}: got {got}, want {p}");
            }
            // Popularity decreases with rank (on aggregate).
            assert!(counts[1] > counts[2] && counts[2] > counts[3]);
            let head: u64 = counts[1..=(n as usize / 10).max(1)].iter().sum();
            let tail: u64 = counts[(n as usize - n as usize / 10).max(1)..].iter().sum();
            assert!(head > tail);
        }
    }

    #[test]
    fn zipf_huge_keyspace_is_cheap_and_in_range() {
        let n = 10_000_000_000u64;
        let z = Zipf::new(n, 0.99);
        let mut rng = Rng::new(7);
        let mut ones = 0;
        for _ in 0..100_000 {
            let k = z.sample(&mut rng);
            assert!((1..=n).contains(&k));
            if k == 1 {
                ones += 1;
            }
        }
        assert!(ones > 1000, "rank 1 should be hot, got {ones}");
    }

    #[test]
    fn distributions_stay_in_range() {
        for d in ["uniform", "sequential", "gaussian", "zipf:0.9", "zipf"] {
            let dist = Distribution::parse(d, 1000).unwrap();
            let mut st = KeyState::new(990);
            let mut rng = Rng::new(1);
            for _ in 0..50_000 {
                let k = next_key(&dist, 1000, &mut st, &mut rng);
                assert!(k < 1000, "{d}: {k}");
            }
        }
        assert!(Distribution::parse("zipf:-1", 10).is_err());
        assert!(Distribution::parse("zipf:abc", 10).is_err());
        assert!(Distribution::parse("pareto", 10).is_err());
    }

    #[test]
    fn gaussian_is_centered() {
        let dist = Distribution::parse("gaussian", 1_000_000).unwrap();
        let mut st = KeyState::new(0);
        let mut rng = Rng::new(3);
        let n = 100_000;
        let mean: f64 = (0..n).map(|_| next_key(&dist, 1_000_000, &mut st, &mut rng) as f64).sum::<f64>() / n as f64;
        assert!((mean - 500_000.0).abs() < 5_000.0, "mean {mean}");
    }

    #[test]
    fn uniform_below_covers_range() {
        let mut rng = Rng::new(9);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[rng.below(10) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
