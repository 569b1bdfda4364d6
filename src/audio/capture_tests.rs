//! The capture loop's fault handling, through the PCM boundary with injected errors.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::audio::ring::{ring, Read};

/// What one `read` of the scripted device does.
enum Step {
    /// One period of 16 kHz mono S16 samples with these values.
    Data(Vec<i16>),
    Fault(PcmFault),
}

struct ScriptedPcm {
    format: PcmFormat,
    steps: VecDeque<Step>,
    recovers: Arc<AtomicUsize>,
}

impl CapturePcm for ScriptedPcm {
    fn format(&self) -> PcmFormat {
        self.format
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, PcmFault> {
        match self.steps.pop_front() {
            Some(Step::Data(v)) => {
                for (i, s) in v.iter().enumerate() {
                    buf[2 * i..2 * i + 2].copy_from_slice(&s.to_le_bytes());
                }
                Ok(v.len() / self.format.channels as usize)
            }
            Some(Step::Fault(f)) => Err(f),
            None => Err(PcmFault::Gone),
        }
    }
    fn recover(&mut self, _: &PcmFault) -> Result<(), PcmFault> {
        self.recovers.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Each `open` takes the next scripted outcome; when the script ends it asks the loop to stop.
struct ScriptedOpener {
    opens: VecDeque<Result<Vec<Step>, PcmFault>>,
    attempts: Arc<AtomicUsize>,
    recovers: Arc<AtomicUsize>,
    stop: Cancel,
}

impl PcmOpener for ScriptedOpener {
    type Pcm = ScriptedPcm;
    fn name(&self) -> String {
        "scripted".into()
    }
    fn open(&mut self) -> Result<ScriptedPcm, PcmFault> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        match self.opens.pop_front() {
            Some(Ok(steps)) => Ok(ScriptedPcm {
                format: PcmFormat {
                    rate_hz: 16000,
                    channels: 1,
                    sample: SampleFormat::S16,
                    period_frames: 320,
                },
                steps: steps.into(),
                recovers: self.recovers.clone(),
            }),
            Some(Err(f)) => Err(f),
            None => {
                self.stop.cancel();
                Err(PcmFault::Gone)
            }
        }
    }
}

fn period(v: i16) -> Step {
    Step::Data(vec![v; 320])
}

struct Outcome {
    samples: Vec<f32>,
    stats: SourceStats,
    attempts: usize,
    recovers: usize,
    result: Result<(), AudioError>,
}

fn run_script(opens: Vec<Result<Vec<Step>, PcmFault>>) -> Outcome {
    let stop = Cancel::new();
    let (attempts, recovers) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut opener = ScriptedOpener {
        opens: opens.into(),
        attempts: attempts.clone(),
        recovers: recovers.clone(),
        stop: stop.clone(),
    };
    let (mut writer, mut reader) = ring(1 << 16);
    let stats = SourceStats::default();
    let delays = ReopenDelays {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(4),
    };
    let result = run(
        &mut opener,
        ChannelMode::Mix,
        delays,
        &mut writer,
        &stop,
        &stats,
    );
    drop(writer);
    let mut samples = Vec::new();
    while reader.read(&mut samples, Duration::ZERO) != Read::Closed {}
    Outcome {
        samples,
        stats,
        attempts: attempts.load(Ordering::Relaxed),
        recovers: recovers.load(Ordering::Relaxed),
        result,
    }
}

fn values(samples: &[f32]) -> Vec<i16> {
    samples
        .iter()
        .map(|v| (v * 32768.0).round() as i16)
        .collect()
}

#[test]
fn overrun_is_recovered_counted_and_capture_goes_on() {
    let o = run_script(vec![Ok(vec![
        period(1),
        Step::Fault(PcmFault::Overrun),
        period(2),
        period(3),
    ])]);
    o.result.unwrap();
    assert_eq!(o.stats.xruns.load(Ordering::Relaxed), 1);
    assert_eq!(o.recovers, 1);
    assert_eq!(
        values(&o.samples),
        [vec![1; 320], vec![2; 320], vec![3; 320]].concat()
    );
}

#[test]
fn busy_device_is_retried_with_backoff_until_free() {
    let o = run_script(vec![
        Err(PcmFault::Busy),
        Err(PcmFault::Busy),
        Err(PcmFault::Busy),
        Ok(vec![period(7)]),
    ]);
    o.result.unwrap();
    assert_eq!(
        o.attempts, 5,
        "three busy, one success, one at the end of the script"
    );
    assert_eq!(values(&o.samples), vec![7; 320]);
    assert_eq!(
        o.stats.reopens.load(Ordering::Relaxed),
        0,
        "first open is not a reopen"
    );
}

#[test]
fn unplugged_device_is_reopened_when_it_comes_back() {
    let o = run_script(vec![
        Ok(vec![period(1), Step::Fault(PcmFault::Gone)]),
        Err(PcmFault::NoSuchDevice),
        Err(PcmFault::NoSuchDevice),
        Ok(vec![period(2)]),
    ]);
    o.result.unwrap();
    assert_eq!(o.stats.reopens.load(Ordering::Relaxed), 1);
    assert_eq!(values(&o.samples), [vec![1; 320], vec![2; 320]].concat());
    assert!(!o.stats.live.load(Ordering::Relaxed));
}

#[test]
fn unusable_device_stops_with_an_error_naming_it() {
    let o = run_script(vec![Err(PcmFault::Unusable(
        "offers no format we read".into(),
    ))]);
    let err = o.result.unwrap_err().to_string();
    assert!(
        err.contains("scripted") && err.contains("no format"),
        "{err}"
    );
}

#[test]
fn permission_error_names_the_audio_group() {
    assert!(PcmFault::PermissionDenied
        .to_string()
        .contains("`audio` group"));
}

#[test]
fn backoff_is_capped_and_waits_between_attempts() {
    // 20 busy answers with a 1..4 ms backoff: at least ~60 ms in total, and no busy loop.
    let t0 = std::time::Instant::now();
    let o = run_script((0..20).map(|_| Err(PcmFault::Busy)).collect());
    let took = t0.elapsed();
    assert_eq!(o.attempts, 21);
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn stereo_is_averaged_or_one_channel_picked() {
    let stereo = |mode: ChannelMode| {
        let stop = Cancel::new();
        let recovers = Arc::new(AtomicUsize::new(0));
        // 160 stereo frames: left 1000, right 3000.
        let period: Vec<i16> = (0..320)
            .map(|i| if i % 2 == 0 { 1000 } else { 3000 })
            .collect();
        let mut pcm = ScriptedPcm {
            format: PcmFormat {
                rate_hz: 16000,
                channels: 2,
                sample: SampleFormat::S16,
                period_frames: 160,
            },
            steps: VecDeque::from([Step::Data(period)]),
            recovers,
        };
        let (mut writer, mut reader) = ring(4096);
        let stats = SourceStats::default();
        let format = pcm.format();
        let fault =
            capture_until_fault(&mut pcm, format, mode, &mut writer, &stop, &stats).unwrap();
        assert_eq!(fault, Some(PcmFault::Gone), "end of script");
        let mut got = Vec::new();
        reader.read(&mut got, Duration::ZERO);
        values(&got)
    };
    assert_eq!(stereo(ChannelMode::Mix), vec![2000; 160]);
    assert_eq!(stereo(ChannelMode::Pick(0)), vec![1000; 160]);
    assert_eq!(stereo(ChannelMode::Pick(1)), vec![3000; 160]);
}

#[test]
fn sample_formats_convert_to_unit_scale() {
    assert_eq!(SampleFormat::S16.to_f32(&(-16384i16).to_le_bytes()), -0.5);
    assert_eq!(
        SampleFormat::S24In32.to_f32(&0x00c0_0000i32.to_le_bytes()),
        -0.5
    );
    assert_eq!(
        SampleFormat::S24In32.to_f32(&(0xff40_0000u32 as i32).to_le_bytes()),
        0.5
    );
    assert_eq!(SampleFormat::S24Packed.to_f32(&[0x00, 0x00, 0x40]), 0.5);
    assert_eq!(SampleFormat::S32.to_f32(&(i32::MIN).to_le_bytes()), -1.0);
    assert_eq!(SampleFormat::F32.to_f32(&0.25f32.to_le_bytes()), 0.25);
}
