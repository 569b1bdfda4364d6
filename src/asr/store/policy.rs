//! How often and how patiently one adapter is fetched (the waits themselves: [`crate::retry`]).

use std::time::Duration;

use crate::retry::Backoff;

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
    /// 5 attempts over roughly 15-20 s: long enough to ride out a router reboot or a hub hiccup,
    /// short enough that a device started without network comes up with its present languages
    /// quickly.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The waits between this policy's attempts.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.initial_delay, self.max_delay)
    }
}
