//! Fetching one adapter into the cache: resumable, verified, installed atomically, retried.
//!
//! The partial file (`.part`) is the temporary file: it grows across attempts and across runs, is
//! verified (size, sha256, tensors) only when complete, and is renamed over the final name only then,
//! so the cache never holds a file that has not passed every check.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::cache::{check, CacheLayout, Check};
use super::policy::RetryPolicy;
use super::source::{FetchError, Source};
use super::status::PullObserver;
use crate::asr::manifest::AdapterEntry;
use crate::retry::Cancel;

pub(crate) struct Job<'a> {
    pub lang: &'a str,
    pub entry: &'a AdapterEntry,
    pub layout: &'a CacheLayout,
    pub source: &'a dyn Source,
    pub cancel: &'a Cancel,
    /// The model's own adapter check (tensor names and shapes), on the complete file.
    pub fits_model: &'a dyn Fn(&Path) -> Result<(), String>,
}

/// Why a job ended without a file: the last attempt's error, and how many attempts were made.
pub(crate) struct Failed {
    pub error: FetchError,
    pub attempts: u32,
}

/// Fetches with up to `attempts` attempts; returns the file's size and the attempts it took.
pub(crate) fn fetch(
    job: &Job,
    policy: &RetryPolicy,
    attempts: u32,
    observer: &mut dyn PullObserver,
) -> Result<(u64, u32), Failed> {
    let mut attempt = 0;
    let mut backoff = policy.backoff();
    loop {
        if job.cancel.is_cancelled() {
            return Err(Failed {
                error: FetchError::Cancelled,
                attempts: attempt,
            });
        }
        attempt += 1;
        let error = match fetch_once(job, observer) {
            Ok(bytes) => return Ok((bytes, attempt)),
            Err(e) => e,
        };
        let retryable = matches!(error, FetchError::Transient(_) | FetchError::Corrupt(_));
        if !retryable || attempt >= attempts.max(1) {
            return Err(Failed {
                error,
                attempts: attempt,
            });
        }
        let delay = backoff.next_delay();
        observer.retrying(job.lang, attempt, delay, &error.to_string());
        if job.cancel.sleep(delay) {
            return Err(Failed {
                error: FetchError::Cancelled,
                attempts: attempt,
            });
        }
    }
}

fn fetch_once(job: &Job, observer: &mut dyn PullObserver) -> Result<u64, FetchError> {
    let part = job.layout.partial(job.lang);
    let result = download_and_install(job, &part, observer);
    if matches!(result, Err(FetchError::Corrupt(_))) {
        // Bytes that failed a check cannot be resumed from: the next attempt starts over.
        if let Err(e) = std::fs::remove_file(&part) {
            if e.kind() != ErrorKind::NotFound {
                return Err(local(&part, e));
            }
        }
    }
    result
}

fn download_and_install(
    job: &Job,
    part: &Path,
    observer: &mut dyn PullObserver,
) -> Result<u64, FetchError> {
    let size = job.entry.size;
    let have = match std::fs::metadata(part) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == ErrorKind::NotFound => 0,
        Err(e) => return Err(local(part, e)),
    };
    if have > size {
        return Err(FetchError::Corrupt(format!(
            "{}: {have} bytes, more than the {size} the manifest records",
            part.display()
        )));
    }
    if have < size {
        receive(job, part, have, observer)?;
    }
    match check(part, job.entry) {
        Check::Good => {}
        Check::Bad(why) => {
            return Err(FetchError::Corrupt(format!(
                "{} rejected: {why}",
                job.source.describe(job.lang)
            )))
        }
        Check::Absent => return Err(FetchError::Local(format!("{} vanished", part.display()))),
    }
    if let Err(why) = (job.fits_model)(part) {
        // The hash matched the manifest, so the source is right and the manifest disagrees with its
        // own graph: no retry can fix that.
        let _ = std::fs::remove_file(part);
        return Err(FetchError::Unfit(format!("does not fit the model: {why}")));
    }
    let target = job.layout.adapter(job.lang);
    std::fs::rename(part, &target).map_err(|e| local(&target, e))?;
    // The rename is durable only once the directory is synced: a power cut must not lose it.
    if let Some(dir) = target.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| local(dir, e))?;
    }
    Ok(size)
}

/// Appends the source's bytes to `part` from `have` (or rewrites it if the source cannot resume).
fn receive(
    job: &Job,
    part: &Path,
    have: u64,
    observer: &mut dyn PullObserver,
) -> Result<(), FetchError> {
    let size = job.entry.size;
    let mut download = job.source.open(job.lang, have)?;
    observer.download_started(
        job.lang,
        &job.source.describe(job.lang),
        download.start,
        size,
    );
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(part)
        .map_err(|e| local(part, e))?;
    // start is `have` when resuming, 0 when the source sent the whole file.
    file.set_len(download.start)
        .and_then(|()| file.seek(SeekFrom::Start(download.start)).map(drop))
        .map_err(|e| local(part, e))?;

    let mut pos = download.start;
    let mut buf = vec![0u8; 64 * 1024];
    let outcome = loop {
        if job.cancel.is_cancelled() {
            break Err(FetchError::Cancelled);
        }
        let n = match download.reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                break Err(FetchError::Transient(format!(
                    "{}: connection lost at byte {pos} of {size}: {e}",
                    job.source.describe(job.lang)
                )))
            }
        };
        if pos + n as u64 > size {
            break Err(FetchError::Corrupt(format!(
                "{}: more than the {size} bytes the manifest records",
                job.source.describe(job.lang)
            )));
        }
        if let Err(e) = file.write_all(&buf[..n]) {
            break Err(local(part, e));
        }
        pos += n as u64;
        observer.download_progress(job.lang, pos);
    };
    // Whatever happened, what was written stays on disk for the next attempt to resume from.
    file.sync_all().map_err(|e| local(part, e))?;
    outcome?;
    if pos < size {
        return Err(FetchError::Transient(format!(
            "{}: the source stopped at byte {pos} of {size}",
            job.source.describe(job.lang)
        )));
    }
    Ok(())
}

fn local(path: &Path, e: std::io::Error) -> FetchError {
    FetchError::Local(format!("{}: {e}", path.display()))
}
