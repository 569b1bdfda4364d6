//! The `…/stats` real-time factor: recognition time over audio time, per publishing interval. Pure.

/// Cumulative sums at the previous report.
#[derive(Debug, Default, Clone, Copy)]
pub struct StatsWindow {
    audio_ms: u64,
    processing_ms: u64,
}

impl StatsWindow {
    /// Real-time factor since the previous call from the cumulative sums; `None` when no audio was
    /// recognised in between (an idle interval has no meaningful factor).
    pub fn real_time_factor(&mut self, audio_ms: u64, processing_ms: u64) -> Option<f64> {
        let audio = audio_ms.saturating_sub(self.audio_ms);
        let processing = processing_ms.saturating_sub(self.processing_ms);
        self.audio_ms = audio_ms;
        self.processing_ms = processing_ms;
        (audio > 0).then(|| processing as f64 / audio as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_per_interval() {
        let mut w = StatsWindow::default();
        assert_eq!(w.real_time_factor(0, 0), None);
        assert_eq!(w.real_time_factor(2000, 500), Some(0.25));
        assert_eq!(w.real_time_factor(2000, 500), None);
        assert_eq!(w.real_time_factor(3000, 1500), Some(1.0));
    }
}
