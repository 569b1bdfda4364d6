//! ALSA capture: format negotiation, the real device behind [`CapturePcm`], and device listing.

use std::ffi::CString;

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction, ValueOr};

use super::capture::{
    self, CapturePcm, ChannelMode, PcmFault, PcmFormat, PcmOpener, ReopenDelays, SampleFormat,
};
use super::ring::RingWriter;
use super::source::{AudioError, AudioSource, SourceStats};
use super::MODEL_RATE_HZ;
use crate::retry::Cancel;

/// Capture settings (the `[audio]` table of the configuration).
#[derive(Debug, Clone)]
pub struct AlsaConfig {
    /// ALSA PCM name: `default`, `plughw:CARD=Device,DEV=0`, `dsnoop:...`.
    pub device: String,
    pub channel: ChannelMode,
    /// One read's worth of audio. 20 ms: the capture thread wakes 50 times a second.
    pub period_ms: u32,
    /// Periods in the device buffer: how late a read may be before audio is lost (overrun).
    pub buffer_periods: u32,
    pub reopen: ReopenDelays,
}

impl Default for AlsaConfig {
    fn default() -> Self {
        AlsaConfig {
            device: "default".into(),
            channel: ChannelMode::Mix,
            period_ms: 20,
            buffer_periods: 8,
            reopen: ReopenDelays::default(),
        }
    }
}

pub struct AlsaSource {
    opener: AlsaOpener,
}

impl AlsaSource {
    pub fn new(config: AlsaConfig) -> AlsaSource {
        AlsaSource {
            opener: AlsaOpener { config },
        }
    }
}

impl AudioSource for AlsaSource {
    fn describe(&self) -> String {
        format!("alsa:{}", self.opener.config.device)
    }

    fn run(
        &mut self,
        out: &mut RingWriter,
        stop: &Cancel,
        stats: &SourceStats,
    ) -> Result<(), AudioError> {
        let (channel, reopen) = (self.opener.config.channel, self.opener.config.reopen);
        capture::run(&mut self.opener, channel, reopen, out, stop, stats)
    }
}

struct AlsaOpener {
    config: AlsaConfig,
}

pub struct AlsaPcm {
    pcm: PCM,
    format: PcmFormat,
}

/// Native formats in order of preference: exact 16-bit first, then wider ones converted by us.
const FORMATS: [(Format, SampleFormat); 5] = [
    (Format::S16LE, SampleFormat::S16),
    (Format::S32LE, SampleFormat::S32),
    (Format::S24LE, SampleFormat::S24In32),
    (Format::S243LE, SampleFormat::S24Packed),
    (Format::FloatLE, SampleFormat::F32),
];

fn fault(e: alsa::Error) -> PcmFault {
    match e.errno() {
        libc_errno::EPIPE => PcmFault::Overrun,
        libc_errno::ESTRPIPE => PcmFault::Suspended,
        libc_errno::EBUSY | libc_errno::EAGAIN => PcmFault::Busy,
        libc_errno::ENODEV | libc_errno::EBADFD | libc_errno::EIO | libc_errno::ENXIO => {
            PcmFault::Gone
        }
        libc_errno::EACCES | libc_errno::EPERM => PcmFault::PermissionDenied,
        libc_errno::ENOENT => PcmFault::NoSuchDevice,
        _ => PcmFault::Other(e.to_string()),
    }
}

/// The errno values ALSA returns (negated), as on Linux for every architecture we build for.
mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const EIO: i32 = 5;
    pub const ENXIO: i32 = 6;
    pub const EAGAIN: i32 = 11;
    pub const EACCES: i32 = 13;
    pub const EBUSY: i32 = 16;
    pub const ENODEV: i32 = 19;
    pub const EPIPE: i32 = 32;
    pub const EBADFD: i32 = 77;
    pub const ESTRPIPE: i32 = 86;
}

impl PcmOpener for AlsaOpener {
    type Pcm = AlsaPcm;

    fn name(&self) -> String {
        self.config.device.clone()
    }

    fn open(&mut self) -> Result<AlsaPcm, PcmFault> {
        let pcm = PCM::new(&self.config.device, Direction::Capture, false).map_err(fault)?;
        let format = negotiate(&pcm, &self.config)?;
        pcm.prepare().map_err(fault)?;
        pcm.start().map_err(fault)?;
        Ok(AlsaPcm { pcm, format })
    }
}

/// Asks for 16 kHz mono S16; when the device only offers its native format (USB microphones: 44.1 or
/// 48 kHz, stereo, S16/S24/S32), takes that and converts in our code. ALSA's own resampling is turned
/// off: ours is band-limited and measured; the `plug` layer's default is linear interpolation.
fn negotiate(pcm: &PCM, config: &AlsaConfig) -> Result<PcmFormat, PcmFault> {
    let hwp = HwParams::any(pcm).map_err(fault)?;
    hwp.set_access(Access::RWInterleaved).map_err(fault)?;
    hwp.set_rate_resample(false).map_err(fault)?;
    let (alsa_format, sample) = FORMATS
        .iter()
        .find(|(f, _)| hwp.test_format(*f).is_ok())
        .copied()
        .ok_or_else(|| {
            PcmFault::Unusable("offers none of S16_LE, S32_LE, S24_LE, S24_3LE, FLOAT_LE".into())
        })?;
    hwp.set_format(alsa_format).map_err(fault)?;
    // Mix: the fewest channels the device offers, its native count on hardware (we average them), one
    // on a `plug` device (ALSA mixes). Pick: at least two, so that a `plug` layer cannot hand us its
    // down-mix as "channel 0"; on a mono device the second is a copy, so channel 0 is still exact.
    let min_channels = hwp.get_channels_min().map_err(fault)?;
    let candidates = match config.channel {
        ChannelMode::Mix => vec![min_channels.max(1)],
        ChannelMode::Pick(ch) => vec![
            (ch as u32 + 1).max(2).max(min_channels),
            (ch as u32 + 1).max(min_channels),
        ],
    };
    let channels = candidates
        .iter()
        .copied()
        .find(|c| hwp.test_channels(*c).is_ok())
        .ok_or_else(|| {
            PcmFault::Unusable(format!("cannot capture {} channel(s)", candidates[0]))
        })?;
    hwp.set_channels(channels).map_err(fault)?;
    let rate = if hwp.test_rate(MODEL_RATE_HZ).is_ok() {
        hwp.set_rate(MODEL_RATE_HZ, ValueOr::Nearest)
            .map_err(fault)?;
        MODEL_RATE_HZ
    } else {
        // The nearest rate at or above 16 kHz keeps the whole speech band.
        hwp.set_rate_near(MODEL_RATE_HZ, ValueOr::Greater)
            .map_err(fault)?
    };
    let period = (rate as i64 * config.period_ms as i64 / 1000).max(32);
    let period = hwp
        .set_period_size_near(period, ValueOr::Nearest)
        .map_err(fault)?;
    hwp.set_buffer_size_near(period * config.buffer_periods.max(2) as i64)
        .map_err(fault)?;
    pcm.hw_params(&hwp).map_err(fault)?;
    let hwp = pcm.hw_params_current().map_err(fault)?;
    Ok(PcmFormat {
        rate_hz: hwp.get_rate().map_err(fault)?,
        channels: hwp.get_channels().map_err(fault)? as u16,
        sample,
        period_frames: hwp.get_period_size().map_err(fault)? as usize,
    })
}

impl CapturePcm for AlsaPcm {
    fn format(&self) -> PcmFormat {
        self.format
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, PcmFault> {
        self.pcm.io_bytes().readi(buf).map_err(fault)
    }

    fn recover(&mut self, f: &PcmFault) -> Result<(), PcmFault> {
        let errno = match f {
            PcmFault::Overrun => libc_errno::EPIPE,
            PcmFault::Suspended => libc_errno::ESTRPIPE,
            other => return Err(other.clone()),
        };
        self.pcm.recover(-errno, true).map_err(fault)?;
        // After prepare a capture stream must be started again.
        self.pcm.start().map_err(fault)
    }
}

/// One line per capture device: its name and what it offers.
pub fn list_devices() -> Vec<String> {
    let mut lines = Vec::new();
    let Ok(hints) = alsa::device_name::HintIter::new_str(None, "pcm") else {
        return lines;
    };
    for hint in hints {
        let Some(name) = hint.name else { continue };
        if hint.direction == Some(Direction::Playback) || name == "null" {
            continue;
        }
        let desc = hint.desc.unwrap_or_default().replace('\n', " ");
        lines.push(format!("{name}\t{}\t{desc}", describe_capabilities(&name)));
    }
    lines
}

fn describe_capabilities(name: &str) -> String {
    let Ok(cname) = CString::new(name) else {
        return "?".into();
    };
    let Ok(pcm) = PCM::open(&cname, Direction::Capture, true) else {
        return "(cannot open now)".into();
    };
    let Ok(hwp) = HwParams::any(&pcm) else {
        return "?".into();
    };
    let _ = hwp.set_rate_resample(false);
    let formats: Vec<&str> = FORMATS
        .iter()
        .filter(|(f, _)| hwp.test_format(*f).is_ok())
        .map(|(_, s)| match s {
            SampleFormat::S16 => "S16_LE",
            SampleFormat::S32 => "S32_LE",
            SampleFormat::S24In32 => "S24_LE",
            SampleFormat::S24Packed => "S24_3LE",
            SampleFormat::F32 => "FLOAT_LE",
        })
        .collect();
    let rates: Vec<String> = [8000, 16000, 22050, 32000, 44100, 48000, 96000]
        .iter()
        .filter(|r| hwp.test_rate(**r).is_ok())
        .map(|r| r.to_string())
        .collect();
    let ch = (
        hwp.get_channels_min().unwrap_or(0),
        hwp.get_channels_max().unwrap_or(0),
    );
    format!(
        "formats {} rates {} Hz channels {}-{}",
        formats.join(","),
        rates.join(","),
        ch.0,
        ch.1.min(64)
    )
}
