//! Waiting between attempts, one way for every reconnect and retry (the broker, the microphone, the
//! adapter source): capped exponential backoff with jitter ([`Backoff`]), and a sleep that a stop
//! request cuts short, from a thread or from a tokio task ([`Cancel`]).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Capped exponential backoff with jitter. Pure once seeded ([`Backoff::with_seed`]), so testable.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    /// Delays from `initial` doubling up to `max`, jittered with a per-process random seed.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff::with_seed(initial, max, random_seed())
    }

    /// [`Backoff::new`] with a chosen seed (any value; 0 is remapped).
    pub fn with_seed(initial: Duration, max: Duration, seed: u64) -> Backoff {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            failures: 0,
            rng: seed | 1,
        }
    }

    /// The wait before the next attempt: `initial · 2^failures` capped at `max`, scaled by a random
    /// factor in [0.75, 1.25) so that many nodes that failed together do not retry in lock-step,
    /// then kept within [`initial`, `max`]: the bounds a user configured are never crossed.
    pub fn next_delay(&mut self) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << self.failures.min(31))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let jitter = 0.75 + 0.5 * self.next_unit();
        // Out of `Duration`'s range only for absurd bounds: then the cap.
        Duration::try_from_secs_f64(base.as_secs_f64() * jitter)
            .unwrap_or(self.max)
            .clamp(self.initial, self.max)
    }

    /// An attempt succeeded: start from `initial` again next time.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failed attempts since the last success (or since the start).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The cap on any delay.
    pub fn max(&self) -> Duration {
        self.max
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

/// A random `u64`, new at each call, from the standard library's per-process keys (no RNG crate
/// needed for jitter).
fn random_seed() -> u64 {
    // Every `RandomState` gets fresh keys, so hashing nothing still gives a new value each call.
    RandomState::new().build_hasher().finish()
}

/// A stop request shared by the threads and tasks it concerns (cloning shares it). Sleeps through
/// it end as soon as it is cancelled; checking it never blocks, so the audio thread may poll it.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    inner: Arc<CancelInner>,
}

#[derive(Debug, Default)]
struct CancelInner {
    cancelled: AtomicBool,
    /// Held by a thread sleeper between checking `cancelled` and waiting, and by `cancel` before it
    /// notifies: the wake-up cannot fall in between and be lost.
    lock: Mutex<()>,
    wake: Condvar,
    wake_tasks: tokio::sync::Notify,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Cancels: every sleeper wakes now, every later sleep returns at once.
    pub fn cancel(&self) {
        let inner = &*self.inner;
        inner.cancelled.store(true, Ordering::SeqCst);
        drop(inner.lock.lock().unwrap_or_else(|p| p.into_inner()));
        inner.wake.notify_all();
        inner.wake_tasks.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Sleeps for `duration` on this thread unless cancelled first; returns whether it was cancelled.
    pub fn sleep(&self, duration: Duration) -> bool {
        let inner = &*self.inner;
        let deadline = Instant::now() + duration;
        let mut guard = inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.is_cancelled() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = inner
                .wake
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Resolves once cancelled (at once if it already is).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.wake_tasks.notified();
            tokio::pin!(notified);
            // Registered before the check: a `cancel` after it wakes this waiter.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// [`Cancel::sleep`] for a tokio task.
    pub async fn sleep_async(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.cancelled() => true,
            _ = tokio::time::sleep(duration) => self.is_cancelled(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grows_exponentially_then_caps_with_bounded_jitter() {
        let mut b = Backoff::with_seed(ms(100), ms(2000), 42);
        for i in 0..12u32 {
            let base = (100u64 << i).min(2000);
            let d = b.next_delay().as_millis() as u64;
            let (low, high) = ((base * 3 / 4).max(100), (base * 5 / 4).min(2000));
            assert!(d >= low && d <= high, "attempt {i}: {d} ms");
        }
        assert_eq!(b.failures(), 12);
        b.reset();
        assert!(b.next_delay() <= ms(125));
    }

    #[test]
    fn never_below_initial_nor_above_max() {
        for seed in 0..200 {
            let mut b = Backoff::with_seed(ms(1000), ms(3000), seed);
            for _ in 0..6 {
                let d = b.next_delay();
                assert!(d >= ms(1000) && d <= ms(3000), "{d:?}");
            }
        }
    }

    #[test]
    fn jitter_differs_between_seeds_and_processes_seed_randomly() {
        let delays = |mut b: Backoff| (0..5).map(|_| b.next_delay()).collect::<Vec<_>>();
        assert_ne!(
            delays(Backoff::with_seed(ms(1000), ms(60_000), 1)),
            delays(Backoff::with_seed(ms(1000), ms(60_000), 2))
        );
        let firsts: std::collections::BTreeSet<Duration> = (0..50)
            .map(|_| Backoff::new(ms(1000), ms(60_000)).next_delay())
            .collect();
        assert!(firsts.len() > 10, "{firsts:?}");
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::with_seed(Duration::MAX / 2, Duration::MAX, 7);
        for _ in 0..100 {
            b.next_delay();
        }
        let mut b = Backoff::with_seed(Duration::ZERO, Duration::ZERO, 7);
        assert_eq!(b.next_delay(), ms(1));
    }

    #[test]
    fn cancel_wakes_a_sleeping_thread_early() {
        let cancel = Cancel::new();
        let other = cancel.clone();
        let t0 = Instant::now();
        let sleeper = std::thread::spawn(move || other.sleep(Duration::from_secs(30)));
        cancel.cancel();
        assert!(sleeper.join().unwrap());
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(cancel.sleep(Duration::from_secs(30)), "stays cancelled");
        assert!(!Cancel::new().sleep(ms(1)));
    }

    #[test]
    fn cancel_wakes_a_sleeping_task_early() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let cancel = Cancel::new();
        let other = cancel.clone();
        let t0 = Instant::now();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(ms(50));
            other.cancel();
        });
        assert!(runtime.block_on(cancel.sleep_async(Duration::from_secs(30))));
        canceller.join().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(runtime.block_on(cancel.sleep_async(Duration::from_secs(30))));
        assert!(!runtime.block_on(Cancel::new().sleep_async(ms(1))));
    }
}
