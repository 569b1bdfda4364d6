//! The queue between the connections and the recogniser: finished requests wait here, at most
//! `queue_requests` of them; one more is refused at once (the connection answers `busy`, counted)
//! rather than kept waiting behind a backlog. One thread, `wyoming-asr`, serves it in order.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::oneshot;

use super::server::Counters;
use super::Backend;

pub struct Job {
    pub lang: String,
    pub samples: Vec<f32>,
    pub started_at: SystemTime,
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// The connections' end of the queue.
#[derive(Clone)]
pub struct Jobs {
    tx: SyncSender<Job>,
    counters: Arc<Counters>,
}

impl Jobs {
    /// Queues a job; `Err` with the job's audio dropped when the queue is full (counted).
    pub fn submit(&self, job: Job) -> Result<(), ()> {
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.busy.fetch_add(1, Ordering::Relaxed);
                Err(())
            }
        }
    }
}

/// Starts `wyoming-asr`. It ends once every [`Jobs`] is dropped and the queue is empty.
pub fn spawn(
    backend: Arc<dyn Backend>,
    capacity: usize,
    counters: Arc<Counters>,
) -> std::io::Result<Jobs> {
    let (tx, rx) = sync_channel::<Job>(capacity);
    let served = counters.clone();
    std::thread::Builder::new()
        .name("wyoming-asr".into())
        .spawn(move || serve(rx, backend.as_ref(), &served))?;
    Ok(Jobs { tx, counters })
}

fn serve(rx: Receiver<Job>, backend: &dyn Backend, counters: &Counters) {
    let mut next = rx.recv().ok();
    while let Some(job) = next {
        // The client went away (or timed out) while waiting: skip the work.
        if job.reply.is_closed() {
            counters.abandoned.fetch_add(1, Ordering::Relaxed);
        } else {
            let result = backend.transcribe(&job.lang, job.samples, job.started_at);
            if result.is_err() {
                counters.failures.fetch_add(1, Ordering::Relaxed);
            }
            let _ = job.reply.send(result);
        }
        next = match rx.try_recv() {
            Ok(job) => Some(job),
            Err(TryRecvError::Empty) => {
                // Idle: the run's activations go back to the system now, as the microphone's
                // recogniser thread does (see `crate::memory`); kept while requests wait.
                crate::memory::release_freed();
                rx.recv().ok()
            }
            Err(TryRecvError::Disconnected) => None,
        };
    }
}
