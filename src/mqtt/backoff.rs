//! Reconnect delays: capped exponential backoff with jitter. Pure (seeded), so it is testable.
//!
//! rumqttc reconnects as soon as it is polled again, i.e. in a tight loop against a broker that
//! is down or refuses us; the event-loop thread sleeps `next_delay()` between attempts instead.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min_ms: u64,
    max_ms: u64,
    failures: u32,
    rng: u64,
}

impl Backoff {
    /// `seed` only decorrelates nodes; any value works (0 is remapped).
    pub fn new(min_ms: u64, max_ms: u64, seed: u64) -> Backoff {
        Backoff {
            min_ms: min_ms.max(1),
            max_ms: max_ms.max(min_ms.max(1)),
            failures: 0,
            rng: seed | 1,
        }
    }

    /// The wait before the next attempt: `min · 2^failures`, capped at `max`, then scaled by a
    /// random factor in [0.75, 1.25) and capped at `max` again (so never below 0.75 · `min`).
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.min_ms.saturating_mul(1u64 << self.failures.min(32));
        let base = exp.min(self.max_ms);
        self.failures = self.failures.saturating_add(1);
        let jitter = 0.75 + 0.5 * self.next_unit();
        let ms = ((base as f64) * jitter).round() as u64;
        Duration::from_millis(ms.clamp(1, self.max_ms))
    }

    /// A connection succeeded: start from `min` again next time.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// xorshift64*: uniform in [0, 1).
    fn next_unit(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_then_caps_with_bounded_jitter() {
        let mut b = Backoff::new(100, 2000, 42);
        let delays: Vec<u64> = (0..10).map(|_| b.next_delay().as_millis() as u64).collect();
        for (i, d) in delays.iter().enumerate() {
            let base = (100u64 << i).min(2000);
            assert!(
                *d >= base * 3 / 4 && *d <= (base * 5 / 4).min(2000),
                "attempt {i}: {d} ms"
            );
        }
        assert!(delays[6..].iter().all(|d| *d >= 1500));
        b.reset();
        assert!(b.next_delay().as_millis() <= 125);
    }

    #[test]
    fn jitter_differs_between_seeds() {
        let a: Vec<_> = {
            let mut b = Backoff::new(1000, 60_000, 1);
            (0..5).map(|_| b.next_delay()).collect()
        };
        let c: Vec<_> = {
            let mut b = Backoff::new(1000, 60_000, 2);
            (0..5).map(|_| b.next_delay()).collect()
        };
        assert_ne!(a, c);
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(u64::MAX / 2, u64::MAX, 7);
        for _ in 0..100 {
            b.next_delay();
        }
    }
}
