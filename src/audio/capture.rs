//! The capture loop of a live device, independent of ALSA itself so its fault handling can be tested
//! with injected errors: open with backoff, read periods, convert to 16 kHz mono, recover from overruns,
//! wait for an unplugged device to come back.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::resample::Resampler;
use super::ring::RingWriter;
use super::source::{AudioError, SourceStats};
use super::MODEL_RATE_HZ;
use crate::retry::{Backoff, Cancel};

/// Sample formats we convert ourselves (what USB microphones and codecs offer natively).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    S16,
    /// 24-bit in the low three bytes of a 32-bit word (ALSA's S24_LE).
    S24In32,
    /// Packed 3-byte 24-bit (ALSA's S24_3LE).
    S24Packed,
    S32,
    F32,
}

impl SampleFormat {
    pub fn bytes(self) -> usize {
        match self {
            SampleFormat::S16 => 2,
            SampleFormat::S24Packed => 3,
            SampleFormat::S24In32 | SampleFormat::S32 | SampleFormat::F32 => 4,
        }
    }

    fn to_f32(self, b: &[u8]) -> f32 {
        match self {
            SampleFormat::S16 => i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0,
            // Shift the 24 bits to the top, then back: sign-extends whatever the high byte held.
            SampleFormat::S24In32 => {
                ((i32::from_le_bytes([b[0], b[1], b[2], b[3]]) << 8) >> 8) as f32 / 8_388_608.0
            }
            SampleFormat::S24Packed => {
                ((i32::from_le_bytes([0, b[0], b[1], b[2]])) >> 8) as f32 / 8_388_608.0
            }
            SampleFormat::S32 => {
                i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
            }
            SampleFormat::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        }
    }
}

/// What a device was opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmFormat {
    pub rate_hz: u32,
    pub channels: u16,
    pub sample: SampleFormat,
    pub period_frames: usize,
}

/// Device faults, by what the loop does about them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcmFault {
    /// EPIPE: we read too late and the driver overwrote audio. Prepare and go on.
    #[error("overrun")]
    Overrun,
    /// ESTRPIPE: the system suspended the device. Resume and go on.
    #[error("suspended")]
    Suspended,
    /// EBUSY: another program holds the device. Retry later.
    #[error("device busy (held by another program?)")]
    Busy,
    /// ENODEV / EBADFD / EIO: unplugged or reset. Close and wait for it to come back.
    #[error("device gone (unplugged?)")]
    Gone,
    /// EACCES / EPERM.
    #[error("permission denied: the service user must be in the `audio` group")]
    PermissionDenied,
    /// ENOENT: no device of that name (yet: a USB device may appear later).
    #[error("no such device")]
    NoSuchDevice,
    /// The device offers nothing we can capture. Not retried.
    #[error("unusable: {0}")]
    Unusable(String),
    #[error("{0}")]
    Other(String),
}

/// An open capture device.
pub trait CapturePcm {
    fn format(&self) -> PcmFormat;
    /// Reads up to one period of interleaved frames into `buf`; returns the number of frames.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, PcmFault>;
    /// Recovers from an overrun or a suspend (prepare / resume).
    fn recover(&mut self, fault: &PcmFault) -> Result<(), PcmFault>;
}

/// Opens (and re-opens) a device.
pub trait PcmOpener: Send {
    type Pcm: CapturePcm;
    fn name(&self) -> String;
    fn open(&mut self) -> Result<Self::Pcm, PcmFault>;
}

/// How to make one channel of several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelMode {
    /// Average all channels.
    #[default]
    Mix,
    /// Use one channel (0-based), e.g. the one the microphone is on.
    #[serde(untagged)]
    Pick(u16),
}

/// Retry timing for a device that is busy, missing or gone (the waits: [`crate::retry::Backoff`]).
#[derive(Debug, Clone, Copy)]
pub struct ReopenDelays {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for ReopenDelays {
    fn default() -> Self {
        ReopenDelays {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

/// Runs the capture loop until `stop`: the body of the ALSA source (and of the fault-injection tests).
pub fn run<O: PcmOpener>(
    opener: &mut O,
    channel: ChannelMode,
    delays: ReopenDelays,
    out: &mut RingWriter,
    stop: &Cancel,
    stats: &SourceStats,
) -> Result<(), AudioError> {
    let name = opener.name();
    let mut backoff = Backoff::new(delays.initial, delays.max);
    let mut last_fault: Option<PcmFault> = None;
    let mut opened_before = false;
    while !stop.is_cancelled() {
        let mut pcm = match opener.open() {
            Ok(pcm) => pcm,
            Err(PcmFault::Unusable(reason)) => {
                return Err(AudioError::Device {
                    device: name,
                    reason,
                })
            }
            Err(fault) => {
                let delay = backoff.next_delay();
                // Log a fault when it starts or changes, not on every retry.
                if last_fault.as_ref() != Some(&fault) {
                    log::warn!(
                        "capture: {name}: {fault}; retrying in {delay:?}, backing off up to {:?}",
                        delays.max
                    );
                    last_fault = Some(fault);
                }
                stop.sleep(delay);
                continue;
            }
        };
        let format = pcm.format();
        if format.channels == 0 || format.period_frames == 0 {
            return Err(AudioError::Device {
                device: name,
                reason: format!("unusable format {format:?}"),
            });
        }
        if let ChannelMode::Pick(ch) = channel {
            if ch >= format.channels {
                let reason = format!(
                    "channel {ch} asked for, the device has {} (0-based)",
                    format.channels
                );
                return Err(AudioError::Device {
                    device: name,
                    reason,
                });
            }
        }
        if opened_before {
            stats.reopens.fetch_add(1, Ordering::Relaxed);
            log::info!("capture: {name}: back ({format:?})");
        } else {
            log::info!("capture: {name}: {format:?}");
        }
        opened_before = true;
        last_fault = None;
        backoff.reset();
        stats.live.store(true, Ordering::Relaxed);
        let fault = capture_until_fault(&mut pcm, format, channel, out, stop, stats)?;
        stats.live.store(false, Ordering::Relaxed);
        if let Some(fault) = fault {
            log::warn!("capture: {name}: {fault}; reopening");
            last_fault = Some(fault);
            drop(pcm);
            stop.sleep(backoff.next_delay());
        }
    }
    Ok(())
}

/// Reads periods until `stop` (returns None) or a fault that needs the device reopened.
fn capture_until_fault<P: CapturePcm>(
    pcm: &mut P,
    format: PcmFormat,
    channel: ChannelMode,
    out: &mut RingWriter,
    stop: &Cancel,
    stats: &SourceStats,
) -> Result<Option<PcmFault>, AudioError> {
    let device_err = |reason: String| AudioError::Device {
        device: "capture".into(),
        reason,
    };
    let frame_bytes = format.sample.bytes() * format.channels as usize;
    // Every buffer is sized here, once per open: the loop below does not allocate.
    let mut raw = vec![0u8; format.period_frames * frame_bytes];
    let mut mono = Vec::with_capacity(format.period_frames);
    let mut resampler = Resampler::new(format.rate_hz, MODEL_RATE_HZ).map_err(device_err)?;
    let out_per_period = format.period_frames * MODEL_RATE_HZ as usize / format.rate_hz as usize;
    let mut block = Vec::with_capacity(out_per_period + 4096);
    let mut overruns_logged = false;
    while !stop.is_cancelled() {
        match pcm.read(&mut raw) {
            Ok(frames) => {
                mono.clear();
                let sample_bytes = format.sample.bytes();
                let frames = frames.min(format.period_frames);
                for frame in raw[..frames * frame_bytes].chunks_exact(frame_bytes) {
                    let v = match channel {
                        ChannelMode::Pick(ch) => {
                            let at = ch as usize * sample_bytes;
                            format.sample.to_f32(&frame[at..at + sample_bytes])
                        }
                        ChannelMode::Mix => {
                            frame
                                .chunks_exact(sample_bytes)
                                .map(|s| format.sample.to_f32(s))
                                .sum::<f32>()
                                / format.channels as f32
                        }
                    };
                    mono.push(v);
                }
                block.clear();
                resampler.process(&mono, &mut block);
                if !block.is_empty() {
                    out.push(&block);
                    stats
                        .samples
                        .fetch_add(block.len() as u64, Ordering::Relaxed);
                }
            }
            Err(fault @ (PcmFault::Overrun | PcmFault::Suspended)) => {
                if fault == PcmFault::Overrun {
                    stats.xruns.fetch_add(1, Ordering::Relaxed);
                    if !overruns_logged {
                        log::warn!("capture: overrun (audio lost in the driver; counted in stats from now on)");
                        overruns_logged = true;
                    }
                }
                if let Err(fault) = pcm.recover(&fault) {
                    return Ok(Some(fault));
                }
            }
            Err(fault) => return Ok(Some(fault)),
        }
    }
    Ok(None)
}

#[cfg(test)]
#[path = "capture_tests.rs"]
mod tests;
