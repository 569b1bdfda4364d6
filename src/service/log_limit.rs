//! Keeping the journal readable under a flood: at most a burst of lines per window for one kind of
//! event, then one line saying how many were left out. Pure (the caller gives the time).

use std::time::{Duration, Instant};

/// One kind of log line (e.g. "rejected MQTT command"), limited to `burst` lines per `window`.
#[derive(Debug)]
pub struct LogLimit {
    burst: u32,
    window: Duration,
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

/// What to do with one occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` lines were left out since the last one logged (say so).
    Log { suppressed: u64 },
    /// Leave it out (it is counted).
    Suppress,
}

impl LogLimit {
    pub const fn new(burst: u32, window: Duration) -> LogLimit {
        LogLimit {
            burst,
            window,
            window_start: None,
            logged: 0,
            suppressed: 0,
        }
    }

    /// Whether the occurrence at `now` may be logged.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.window);
        if expired {
            self.window_start = Some(now);
            self.logged = 0;
        }
        if self.logged < self.burst {
            self.logged += 1;
            Verdict::Log {
                suppressed: std::mem::take(&mut self.suppressed),
            }
        } else {
            self.suppressed += 1;
            Verdict::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_window_then_a_count_of_what_was_left_out() {
        let mut limit = LogLimit::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> = (0..4000)
            .map(|i| limit.check(t0 + Duration::from_millis(i)))
            .collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v != Verdict::Suppress).count(),
            3
        );
        assert_eq!(
            limit.check(t0 + Duration::from_secs(61)),
            Verdict::Log { suppressed: 3997 }
        );
        assert_eq!(
            limit.check(t0 + Duration::from_secs(62)),
            Verdict::Log { suppressed: 0 }
        );
    }
}
