//! The one boundary every audio input implements, and the named capture thread that drives it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::ring::RingWriter;
use crate::retry::Cancel;

/// Why a source stopped for good. Transient faults (overruns, a busy or unplugged device) are handled
/// inside the source and only counted; what reaches the caller needs the caller to act.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The recording could not be read. Fix the path or the file.
    #[error("audio file {path}: {reason}")]
    File {
        path: std::path::PathBuf,
        reason: String,
    },
    /// The device's formats cannot be converted (e.g. no rate at all, or a sample format we do not read).
    /// Pick another device.
    #[error("audio device {device}: {reason}")]
    Device { device: String, reason: String },
    /// The source did not return within the time it was given to stop (blocked in the kernel: a
    /// FIFO nobody writes to, a hung USB device). Its thread is left behind; the process may exit.
    #[error("audio source still blocked {0:?} after it was asked to stop; left behind")]
    Stuck(std::time::Duration),
}

/// How long dropping a [`Capture`] waits for its thread before leaving it behind.
const DROP_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Counters of a running source, for logs and the stats topic.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Overruns: the device's buffer filled before we read it (audio lost in the driver).
    pub xruns: AtomicU64,
    /// Times the device was (re)opened after an error.
    pub reopens: AtomicU64,
    /// Samples (16 kHz) produced.
    pub samples: AtomicU64,
    /// The source is delivering audio now (false while waiting for a device to come back).
    pub live: AtomicBool,
}

/// An input of 16 kHz mono samples: a microphone, a recording.
pub trait AudioSource: Send + 'static {
    /// For logs: `alsa:default`, `wav:/tmp/x.wav`.
    fn describe(&self) -> String;

    /// Produces samples into `out` until `stop` is cancelled or the input ends. Runs on the capture thread:
    /// must not wait on anything downstream (the ring drops what does not fit).
    fn run(
        &mut self,
        out: &mut RingWriter,
        stop: &Cancel,
        stats: &SourceStats,
    ) -> Result<(), AudioError>;
}

/// A running capture thread.
pub struct Capture {
    thread: Option<JoinHandle<Result<(), AudioError>>>,
    stop: Cancel,
    stats: Arc<SourceStats>,
    /// Disconnected when the thread ends (its sender is dropped then): a join with a deadline.
    finished: Receiver<()>,
}

impl Capture {
    /// Starts `source` on a thread named `audio-capture`, writing into `out`.
    pub fn spawn(
        mut source: Box<dyn AudioSource>,
        mut out: RingWriter,
    ) -> std::io::Result<Capture> {
        let stop = Cancel::new();
        let stats = Arc::new(SourceStats::default());
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let (done, finished) = std::sync::mpsc::sync_channel::<()>(0);
        let thread = std::thread::Builder::new()
            .name("audio-capture".into())
            .spawn(move || {
                let _done = done;
                log::info!("capture: starting {}", source.describe());
                let result = source.run(&mut out, &stop2, &stats2);
                stats2.live.store(false, Ordering::Relaxed);
                // Dropping `out` closes the ring: the reader drains what is left, then sees the end.
                result
            })?;
        Ok(Capture {
            thread: Some(thread),
            stop,
            stats,
            finished,
        })
    }

    pub fn stats(&self) -> &Arc<SourceStats> {
        &self.stats
    }

    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Asks the source to stop (it notices within one period) and waits for the thread, up to
    /// [`DROP_WAIT`].
    pub fn stop(self) -> Result<(), AudioError> {
        self.stop_within(DROP_WAIT)
    }

    /// Asks the source to stop and waits for its thread up to `within`; a source still blocked
    /// then is left behind ([`AudioError::Stuck`]), so that stopping is bounded whatever the
    /// source is blocked in.
    pub fn stop_within(mut self, within: std::time::Duration) -> Result<(), AudioError> {
        self.stop.cancel();
        if self.wait_finished(within) {
            self.join()
        } else {
            // Dropping the handle detaches the thread.
            self.thread = None;
            Err(AudioError::Stuck(within))
        }
    }

    /// Whether the thread ended within `within`.
    fn wait_finished(&self, within: std::time::Duration) -> bool {
        !matches!(
            self.finished.recv_timeout(within),
            Err(RecvTimeoutError::Timeout)
        )
    }

    /// Waits for the source to end by itself (a file source at the end of its file).
    pub fn join(&mut self) -> Result<(), AudioError> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(AudioError::Device {
                device: "capture thread".into(),
                reason: "panicked".into(),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.cancel();
        if self.thread.is_some() && self.wait_finished(DROP_WAIT) {
            let _ = self.join();
        }
    }
}
