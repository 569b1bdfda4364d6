//! Microphone → VAD: the capture thread feeds the ring, the `vad` thread cuts utterances out of it and
//! queues them for the recogniser (drop-oldest, counted).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::audio::ring::{ring, Read, RingStats};
use crate::audio::source::{AudioError, AudioSource, Capture, SourceStats};
use crate::audio::MODEL_RATE_HZ;
use crate::retry::Cancel;
use crate::vad::{EndReason, Segmenter, VadConfig, VadConfigError, VadEvent};

use super::queue::DropOldest;

/// Seconds of audio the ring from capture to VAD holds: the VAD thread may stall this long (a slow
/// SD card write of a log line, a burst of other work) before audio is dropped.
const RING_SECONDS: usize = 2;
/// How long [`Listener::stop`] waits for the source before leaving it behind.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// An utterance cut by the VAD, positions in 16 kHz samples since the start of capture.
#[derive(Debug, Clone)]
pub struct Utterance {
    pub start_sample: u64,
    pub samples: Vec<f32>,
    pub end: EndReason,
}

pub struct Listener {
    capture: Option<Capture>,
    vad_thread: Option<JoinHandle<()>>,
    utterances: DropOldest<Utterance>,
    ring_stats: Arc<RingStats>,
    /// Samples the VAD has taken from the ring (written − consumed = the ring's depth).
    consumed: Arc<AtomicU64>,
    /// A new VAD configuration for the `vad` thread to switch to between utterances.
    vad_update: Arc<Mutex<Option<VadConfig>>>,
    /// The configuration last given (in effect, or from the next pause).
    vad: VadConfig,
    /// Tells the VAD thread the source was left behind (see [`Listener::stop_within`]).
    abandoned: Cancel,
}

impl Listener {
    /// Starts capture and the VAD. Utterances wait in a queue of `queue_len`; when it is full the
    /// oldest is dropped (a live source), or, with `wait_when_full` (a recording read as fast as it is
    /// recognised), the VAD waits for room and the recording waits for the VAD.
    pub fn start(
        source: Box<dyn AudioSource>,
        vad: &VadConfig,
        queue_len: usize,
        wait_when_full: bool,
    ) -> Result<Listener, ListenError> {
        let mut segmenter = Segmenter::new(vad, MODEL_RATE_HZ).map_err(ListenError::Vad)?;
        let consumed = Arc::new(AtomicU64::new(0));
        let vad_update: Arc<Mutex<Option<VadConfig>>> = Arc::new(Mutex::new(None));
        let (consumed_by_vad, update) = (consumed.clone(), vad_update.clone());
        // Cancelled when the source is left behind stuck: its end of the ring then never closes.
        let abandoned = Cancel::new();
        let source_gone = abandoned.clone();
        let (writer, mut reader) = ring(RING_SECONDS * MODEL_RATE_HZ as usize);
        let ring_stats = writer.stats().clone();
        let utterances = DropOldest::new(queue_len);
        let queue = utterances.clone();
        // The VAD thread first, so it is reading (and registered for wake-ups) before audio flows.
        let vad_thread = std::thread::Builder::new()
            .name("vad".into())
            .spawn(move || {
                let mut block = Vec::with_capacity(MODEL_RATE_HZ as usize);
                let mut events = Vec::new();
                // A replaced segmenter counts from 0 again; positions stay relative to capture start.
                let mut base_sample = 0u64;
                loop {
                    block.clear();
                    let read = reader.read(&mut block, Duration::from_millis(500));
                    consumed_by_vad.fetch_add(block.len() as u64, Ordering::Relaxed);
                    let closed = read == Read::Closed || source_gone.is_cancelled();
                    if closed {
                        segmenter.finish(&mut events);
                    } else {
                        segmenter.push(&block, &mut events);
                    }
                    for event in events.drain(..) {
                        match event {
                            VadEvent::SpeechStart { start_sample } => {
                                log::debug!("vad: speech at sample {}", base_sample + start_sample)
                            }
                            VadEvent::Utterance { start_sample, samples, end } => {
                                let start_sample = base_sample + start_sample;
                                let u = Utterance { start_sample, samples, end };
                                if wait_when_full {
                                    queue.push_wait(u);
                                } else if queue.push(u).is_some() {
                                    log::warn!("vad: recogniser behind, dropped the oldest queued utterance");
                                }
                            }
                        }
                    }
                    // Reloaded thresholds take effect between utterances, never cutting one.
                    if !segmenter.in_utterance() {
                        let new = update.try_lock().ok().and_then(|mut u| u.take());
                        if let Some(config) = new {
                            match Segmenter::new(&config, MODEL_RATE_HZ) {
                                Ok(s) => {
                                    base_sample += segmenter.samples_seen();
                                    segmenter = s;
                                    log::info!("vad: new settings in effect");
                                }
                                Err(e) => log::error!("vad: new settings refused: {e}"),
                            }
                        }
                    }
                    if closed {
                        queue.close();
                        return;
                    }
                }
            })
            .map_err(ListenError::Thread)?;
        let capture = Capture::spawn(source, writer).map_err(ListenError::Thread)?;
        Ok(Listener {
            capture: Some(capture),
            vad_thread: Some(vad_thread),
            utterances,
            ring_stats,
            consumed,
            vad_update,
            vad: vad.clone(),
            abandoned,
        })
    }

    /// Switches the VAD to `config` at the next pause (the utterance in progress is finished with
    /// the old settings). `config` must be valid ([`VadConfig::validate`]).
    pub fn set_vad(&mut self, config: VadConfig) {
        self.vad = config.clone();
        *self.vad_update.lock().unwrap_or_else(|p| p.into_inner()) = Some(config);
    }

    /// The VAD configuration last given: in effect, or from the next pause.
    pub fn vad(&self) -> &VadConfig {
        &self.vad
    }

    /// Samples captured but not yet taken by the VAD.
    pub fn ring_depth(&self) -> u64 {
        let written = self.ring_stats.written_samples.load(Ordering::Relaxed);
        written.saturating_sub(self.consumed.load(Ordering::Relaxed))
    }

    /// The queue of finished utterances; `pop` returns `None` once the source ended and all were taken.
    pub fn utterances(&self) -> &DropOldest<Utterance> {
        &self.utterances
    }

    pub fn source_stats(&self) -> Option<&Arc<SourceStats>> {
        self.capture.as_ref().map(|c| c.stats())
    }

    /// Samples dropped between capture and VAD because the VAD thread was behind.
    pub fn dropped_samples(&self) -> u64 {
        self.ring_stats.dropped_samples.load(Ordering::Relaxed)
    }

    /// Both threads still running (the health the watchdog reports).
    pub fn is_healthy(&self) -> bool {
        self.capture.as_ref().is_some_and(|c| c.is_running())
            && self.vad_thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops capture; the VAD finishes the utterance in progress and queues it. Returns the capture's
    /// own result (an error if the source failed for good).
    pub fn stop(&mut self) -> Result<(), AudioError> {
        self.stop_within(STOP_WAIT)
    }

    /// [`Listener::stop`], bounded: a source still blocked after `within` (a FIFO nobody writes
    /// to) is left behind, and the VAD finishes without it (within one read, 500 ms).
    pub fn stop_within(&mut self, within: Duration) -> Result<(), AudioError> {
        let result = self
            .capture
            .take()
            .map(|c| c.stop_within(within))
            .unwrap_or(Ok(()));
        if matches!(result, Err(AudioError::Stuck(_))) {
            self.abandoned.cancel();
        }
        if let Some(t) = self.vad_thread.take() {
            let _ = t.join();
        }
        result
    }

    /// Waits until the source ends by itself (a file), then lets the VAD flush.
    pub fn wait(&mut self) -> Result<(), AudioError> {
        let result = self.capture.as_mut().map(|c| c.join()).unwrap_or(Ok(()));
        self.capture = None;
        if let Some(t) = self.vad_thread.take() {
            let _ = t.join();
        }
        result
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(transparent)]
    Vad(VadConfigError),
    #[error("cannot start a pipeline thread: {0}")]
    Thread(std::io::Error),
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::audio::ring::RingWriter;

    /// A source blocked in something that ignores the stop request, as `open` on a FIFO nobody
    /// writes to is.
    struct Blocked(std::sync::mpsc::Receiver<()>);

    impl AudioSource for Blocked {
        fn describe(&self) -> String {
            "blocked".into()
        }

        fn run(
            &mut self,
            _out: &mut RingWriter,
            _stop: &Cancel,
            _stats: &SourceStats,
        ) -> Result<(), AudioError> {
            let _ = self.0.recv();
            Ok(())
        }
    }

    #[test]
    fn stopping_is_bounded_whatever_the_source_is_blocked_in() {
        let (_keep, rx) = std::sync::mpsc::channel();
        let mut listener =
            Listener::start(Box::new(Blocked(rx)), &VadConfig::default(), 4, false).unwrap();
        let t0 = Instant::now();
        let result = listener.stop_within(Duration::from_millis(200));
        assert!(matches!(result, Err(AudioError::Stuck(_))), "{result:?}");
        // The source's wait, then at most one VAD read (500 ms).
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        assert!(listener.utterances().is_closed_and_empty());
        drop(listener);
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "drop waited: {:?}",
            t0.elapsed()
        );
    }
}
