//! Retry timing (pure) and the cancellable sleep between attempts.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How often and how patiently one adapter is fetched before it is reported missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per language, the first included (1: no retry).
    pub attempts: u32,
    /// Delay before the first retry; it doubles on each further retry up to `max_delay`.
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts over roughly 8-15 s: long enough to ride out a router reboot or a hub hiccup, short
    /// enough that a device started without network comes up with its present languages quickly.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `retry` (1 = the first retry), from a random `jitter` value.
    ///
    /// "Equal jitter": uniformly in `[base/2, base]` with `base = min(max, initial·2^(retry-1))`. Never
    /// below half the base, so a flapping source is never hammered; jittered, so devices that lost the
    /// network together do not all come back at the same instant.
    pub fn delay(&self, retry: u32, jitter: u64) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        let base = self
            .initial_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        let half_ns = (base.as_nanos() / 2) as u64;
        Duration::from_nanos(half_ns + jitter % (half_ns + 1))
    }
}

/// A random `u64` per call, seeded per process by the standard library (no RNG dependency needed
/// for jitter).
pub(crate) fn jitter() -> u64 {
    // Every `RandomState` gets fresh keys, so hashing nothing still gives a new value each call.
    RandomState::new().build_hasher().finish()
}

/// Stops a pull between attempts and between reads: the daemon cancels on SIGTERM so shutdown is not
/// held up by a backoff sleep or a slow download. Cloning shares the token.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    pub fn cancel(&self) {
        let (flag, wake) = &*self.inner;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
    }

    pub fn is_cancelled(&self) -> bool {
        *self.inner.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps for `duration` unless cancelled first; returns whether it was cancelled.
    pub fn sleep(&self, duration: Duration) -> bool {
        let (flag, wake) = &*self.inner;
        let deadline = Instant::now() + duration;
        let mut cancelled = flag.lock().unwrap_or_else(|p| p.into_inner());
        while !*cancelled {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            cancelled = wake
                .wait_timeout(cancelled, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 10,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        }
    }

    #[test]
    fn delays_double_stay_in_the_jitter_band_and_are_capped() {
        let p = policy();
        for (retry, base_ms) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let base = Duration::from_millis(base_ms);
            for jitter in [0, 1, 12_345_678, u64::MAX / 3, u64::MAX] {
                let d = p.delay(retry, jitter);
                assert!(d >= base / 2 && d <= base, "retry {retry}: {d:?}");
            }
            assert_eq!(p.delay(retry, 0), base / 2);
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let p = policy();
        let delays: std::collections::BTreeSet<Duration> =
            (0..50).map(|_| p.delay(3, jitter())).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn cancel_wakes_a_sleeper_early() {
        let cancel = Cancel::new();
        let other = cancel.clone();
        let t0 = Instant::now();
        let sleeper = std::thread::spawn(move || other.sleep(Duration::from_secs(30)));
        cancel.cancel();
        assert!(sleeper.join().unwrap());
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(cancel.sleep(Duration::from_secs(30)), "stays cancelled");
        assert!(!Cancel::new().sleep(Duration::from_millis(1)));
    }
}
