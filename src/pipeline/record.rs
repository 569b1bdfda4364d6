//! Optional debugging aid: each utterance saved as `<time>-<seq>.wav` beside `<time>-<seq>.json`
//! (its transcript), the oldest pairs deleted beyond a disk cap.
//!
//! Writing runs on its own `record` thread behind a small drop-oldest queue, so a slow SD card
//! delays neither recognition nor publishing; a write error is logged and counted, never fatal.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::asr::Transcript;
use crate::audio::MODEL_RATE_HZ;
use crate::mqtt::payload::rfc3339_ms;

use super::queue::DropOldest;

/// Recordings waiting to be written; beyond this the oldest waiting one is skipped.
const QUEUE: usize = 8;

struct Job {
    stem: String,
    samples: Vec<f32>,
    json: Vec<u8>,
}

pub struct Recorder {
    dir: PathBuf,
    queue: DropOldest<Job>,
    thread: Option<JoinHandle<()>>,
    pub errors: Arc<AtomicU64>,
}

impl Recorder {
    /// Creates `dir` if needed and starts the `record` thread.
    pub fn start(dir: &Path, max_bytes: u64) -> std::io::Result<Recorder> {
        std::fs::create_dir_all(dir)?;
        let mut disk = Disk::scan(dir, max_bytes)?;
        let queue: DropOldest<Job> = DropOldest::new(QUEUE);
        let jobs = queue.clone();
        let errors = Arc::new(AtomicU64::new(0));
        let errs = errors.clone();
        let thread = std::thread::Builder::new()
            .name("record".into())
            .spawn(move || loop {
                match jobs.pop(Duration::from_millis(500)) {
                    Some(job) => {
                        if let Err(e) = disk.write(&job) {
                            errs.fetch_add(1, Ordering::Relaxed);
                            log::warn!("record: {}: {e}", job.stem);
                        }
                    }
                    None if jobs.is_closed_and_empty() => return,
                    None => {}
                }
            })?;
        Ok(Recorder {
            dir: dir.to_path_buf(),
            queue,
            thread: Some(thread),
            errors,
        })
    }

    /// Where the recordings go.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues one utterance; returns at once.
    pub fn save(&self, seq: u64, started_at: SystemTime, samples: Vec<f32>, t: &Transcript) {
        // 2026-11-24T10:15:02.123Z → 20261124T101502.123Z: sortable and valid on every filesystem.
        let time: String = rfc3339_ms(started_at)
            .chars()
            .filter(|c| *c != '-' && *c != ':')
            .collect();
        let json = match serde_json::to_vec_pretty(t) {
            Ok(j) => j,
            Err(_) => return,
        };
        if self
            .queue
            .push(Job {
                stem: format!("{time}-{seq:06}"),
                samples,
                json,
            })
            .is_some()
        {
            log::warn!("record: disk too slow, skipped recording an utterance");
        }
    }
}

impl Drop for Recorder {
    /// Writes what is queued, then stops.
    fn drop(&mut self) {
        self.queue.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The recordings on disk, oldest first, and their total size.
struct Disk {
    dir: PathBuf,
    max_bytes: u64,
    pairs: VecDeque<(String, u64)>,
    total: u64,
}

impl Disk {
    fn scan(dir: &Path, max_bytes: u64) -> std::io::Result<Disk> {
        let mut sizes = std::collections::BTreeMap::<String, u64>::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name
                .strip_suffix(".wav")
                .or_else(|| name.strip_suffix(".json"))
            {
                *sizes.entry(stem.to_string()).or_default() += entry.metadata()?.len();
            }
        }
        let total = sizes.values().sum();
        Ok(Disk {
            dir: dir.to_path_buf(),
            max_bytes,
            pairs: sizes.into_iter().collect(),
            total,
        })
    }

    fn write(&mut self, job: &Job) -> std::io::Result<()> {
        let wav = self.dir.join(format!("{}.wav", job.stem));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: MODEL_RATE_HZ,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&wav, spec).map_err(std::io::Error::other)?;
        for s in &job.samples {
            let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            w.write_sample(v).map_err(std::io::Error::other)?;
        }
        w.finalize().map_err(std::io::Error::other)?;
        let json = self.dir.join(format!("{}.json", job.stem));
        std::fs::write(&json, &job.json)?;
        let bytes = std::fs::metadata(&wav)?.len() + job.json.len() as u64;
        self.pairs.push_back((job.stem.clone(), bytes));
        self.total += bytes;
        while self.total > self.max_bytes && self.pairs.len() > 1 {
            let Some((stem, bytes)) = self.pairs.pop_front() else {
                break;
            };
            for ext in ["wav", "json"] {
                let _ = std::fs::remove_file(self.dir.join(format!("{stem}.{ext}")));
            }
            self.total -= bytes;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript() -> Transcript {
        Transcript {
            text: "lights on".into(),
            language: "eng".into(),
            confidence: 0.9,
            duration_ms: 500,
            words: vec![],
            decoding: Default::default(),
        }
    }

    #[test]
    fn keeps_pairs_under_the_cap_dropping_the_oldest() {
        let dir = std::env::temp_dir().join(format!("es-record-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // One pair is 16 kB of audio + header + JSON: a 40 kB cap holds two.
        let rec = Recorder::start(&dir, 40_000).unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for seq in 1..=4 {
            rec.save(
                seq,
                t0 + Duration::from_secs(seq),
                vec![0.25; 8000],
                &transcript(),
            );
        }
        drop(rec);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "20231114T221323.000Z-000003.json",
                "20231114T221323.000Z-000003.wav",
                "20231114T221324.000Z-000004.json",
                "20231114T221324.000Z-000004.wav"
            ]
        );
        let wav = hound::WavReader::open(dir.join(&names[1])).unwrap();
        assert_eq!((wav.spec().sample_rate, wav.len()), (16000, 8000));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(&names[0])).unwrap()).unwrap();
        assert_eq!(json["text"], "lights on");

        // A restart finds what is there and keeps counting it against the cap.
        let rec = Recorder::start(&dir, 40_000).unwrap();
        rec.save(
            5,
            t0 + Duration::from_secs(5),
            vec![0.0; 8000],
            &transcript(),
        );
        drop(rec);
        let count = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(count, 4);
        assert!(!dir.join("20231114T221323.000Z-000003.wav").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
