//! Value metrics (`--histogram EXPR`, `--gauge EXPR`): the numbers a path reaches at each hit,
//! summarised lock-free in bounded memory.
//!
//! A histogram keeps a count per bucket of a fixed log-linear grid: for each sign, 16 buckets
//! per power of two from 2^-16 to 2^64 (smaller magnitudes count as 0, larger ones in the
//! last bucket, whose quantile is then the max or min), 2,561 counters in all (20 KiB per probe, allocated at arming). A quantile is
//! the middle of the bucket it falls in, clamped to the exact min and max: within 1/32 (about
//! 3%) of the true value. A gauge keeps the last value, the min and the max.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two.
const SUB: i32 = 16;
/// Powers of two covered: 2^LOW ..= 2^HIGH.
const LOW: i32 = -16;
const HIGH: i32 = 64;
/// Buckets per sign.
const SIDE: usize = ((HIGH - LOW) * SUB) as usize;

/// Which summary a probe keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Histogram,
    Gauge,
}

impl Kind {
    /// The record kind and the `status` field: `histogram` or `gauge`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Histogram => "histogram",
            Kind::Gauge => "gauge",
        }
    }
}

/// The summary of one probe's values.
#[derive(Debug)]
pub struct Metric {
    kind: Kind,
    /// Histogram only: negative magnitudes (`0..SIDE`), zero (`SIDE`), positive (`SIDE+1..`).
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// f64 bits, order-preserving ([`ordered`]) so `fetch_min`/`fetch_max` work.
    min: AtomicU64,
    max: AtomicU64,
    /// f64 bits of the last value (gauge) and of the sum (histogram, updated by CAS).
    last: AtomicU64,
    sum: AtomicU64,
}

/// Maps an f64 to a u64 whose order is the numbers' order (NaN excluded).
fn ordered(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | 1 << 63
    }
}

fn unordered(u: u64) -> f64 {
    f64::from_bits(if u >> 63 == 1 { u & !(1 << 63) } else { !u })
}

/// The bucket of a magnitude (> 0) within one sign's side.
fn side_bucket(m: f64) -> usize {
    let e = m.log2().floor() as i32;
    if e < LOW {
        return 0;
    }
    if e >= HIGH {
        return SIDE - 1;
    }
    let base = 2f64.powi(e);
    let sub = (((m / base) - 1.0) * SUB as f64).floor() as i32;
    ((e - LOW) * SUB + sub.clamp(0, SUB - 1)) as usize
}

/// The middle of a side's bucket.
fn side_middle(i: usize) -> f64 {
    let e = i as i32 / SUB + LOW;
    let sub = i as i32 % SUB;
    2f64.powi(e) * (1.0 + (sub as f64 + 0.5) / SUB as f64)
}

/// A summary: `count` values, `min`/`max` exact, quantiles within the bucket error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub sum: f64,
    pub last: f64,
}

impl Metric {
    pub fn new(kind: Kind) -> Metric {
        let n = if kind == Kind::Histogram {
            2 * SIDE + 1
        } else {
            0
        };
        Metric {
            kind,
            buckets: (0..n).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
            last: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Adds a value (NaN is not a number: the caller reports it).
    #[inline]
    pub fn record(&self, x: f64) {
        if self.kind == Kind::Histogram {
            let i = if x == 0.0 {
                SIDE
            } else if x > 0.0 {
                SIDE + 1 + side_bucket(x).min(SIDE - 1)
            } else {
                SIDE - 1 - side_bucket(-x).min(SIDE - 1)
            };
            if let Some(b) = self.buckets.get(i) {
                b.fetch_add(1, Ordering::Relaxed);
            }
            let _ = self
                .sum
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                    Some((f64::from_bits(s) + x).to_bits())
                });
        }
        self.last.store(x.to_bits(), Ordering::Relaxed);
        self.min.fetch_min(ordered(x), Ordering::Relaxed);
        self.max.fetch_max(ordered(x), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn summary(&self) -> Summary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count = self.count();
        let (min, max) = if count == 0 {
            (0.0, 0.0)
        } else {
            (
                unordered(self.min.load(Ordering::Relaxed)),
                unordered(self.max.load(Ordering::Relaxed)),
            )
        };
        let total: u64 = counts.iter().sum();
        let q = |f: f64| -> f64 {
            if total == 0 {
                return 0.0;
            }
            let want = ((total as f64) * f).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= want {
                    // The outermost buckets hold everything beyond 2^64: the extremes.
                    if i == 0 {
                        return min;
                    }
                    if i == 2 * SIDE {
                        return max;
                    }
                    let v = match i.cmp(&SIDE) {
                        std::cmp::Ordering::Less => -side_middle(SIDE - 1 - i),
                        std::cmp::Ordering::Equal => 0.0,
                        std::cmp::Ordering::Greater => side_middle(i - SIDE - 1),
                    };
                    return v.clamp(min, max);
                }
            }
            max
        };
        Summary {
            count,
            min,
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            max,
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
            last: f64::from_bits(self.last.load(Ordering::Relaxed)),
        }
    }
}

/// A number as JSON (a non-finite one as `null`; an integral one without a fraction).
fn num(out: &mut String, x: f64) {
    if !x.is_finite() {
        out.push_str("null");
    } else if x.fract() == 0.0 && x.abs() < 1e15 {
        let _ = write!(out, "{}", x as i64);
    } else {
        let _ = write!(out, "{x}");
    }
}

impl Summary {
    /// Histogram: `{"count","min","p50","p90","p99","max","sum"}`; gauge:
    /// `{"count","last","min","max"}`.
    pub fn write_json(&self, kind: Kind, out: &mut String) {
        let fields: &[(&str, f64)] = match kind {
            Kind::Histogram => &[
                ("min", self.min),
                ("p50", self.p50),
                ("p90", self.p90),
                ("p99", self.p99),
                ("max", self.max),
                ("sum", self.sum),
            ],
            Kind::Gauge => &[("last", self.last), ("min", self.min), ("max", self.max)],
        };
        let _ = write!(out, "{{\"count\":{}", self.count);
        for (name, v) in fields {
            let _ = write!(out, ",\"{name}\":");
            num(out, *v);
        }
        out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_the_bucket_error_and_min_max_exact() {
        let m = Metric::new(Kind::Histogram);
        for i in 1..=1000 {
            m.record(f64::from(i));
        }
        let s = m.summary();
        assert_eq!(
            (s.count, s.min, s.max, s.sum),
            (1000, 1.0, 1000.0, 500_500.0)
        );
        for (got, want) in [(s.p50, 500.0), (s.p90, 900.0), (s.p99, 990.0)] {
            assert!(
                (got - want).abs() / want < 1.0 / 32.0 + 0.002,
                "{got} vs {want}"
            );
        }
        let m = Metric::new(Kind::Histogram);
        for x in [-5.5, -0.25, 0.0, 0.0, 3.0e-7, 1e30] {
            m.record(x);
        }
        let s = m.summary();
        assert_eq!((s.min, s.max), (-5.5, 1e30));
        assert_eq!(s.p50, 0.0, "the third of six values");
        assert_eq!(s.p99, 1e30, "clamped to the max");
    }

    #[test]
    fn a_gauge_keeps_last_min_max_and_writes_json() {
        let m = Metric::new(Kind::Gauge);
        for x in [3.0, 9.5, -1.0, 4.0] {
            m.record(x);
        }
        let mut out = String::new();
        m.summary().write_json(Kind::Gauge, &mut out);
        assert_eq!(out, r#"{"count":4,"last":4,"min":-1,"max":9.5}"#);
    }
}
