//! The bounded channel from an audio source to the VAD: a wait-free SPSC ring of 16 kHz mono samples.
//!
//! The writer never blocks and never allocates: when the ring is full, the new block is dropped whole and
//! counted (a live microphone cannot wait; old audio is already the reader's). The reader parks until the
//! writer wakes it, so an idle pipeline costs no polling.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use rtrb::{Consumer, Producer, RingBuffer};

/// Counters shared by both ends (and read by stats).
#[derive(Debug, Default)]
pub struct RingStats {
    /// Samples dropped because the reader was behind.
    pub dropped_samples: AtomicU64,
    /// Samples accepted.
    pub written_samples: AtomicU64,
    closed: AtomicBool,
    /// The reading thread, recorded by its first read, for the writer to unpark (lock-free to read).
    reader: OnceLock<Thread>,
}

pub struct RingWriter {
    producer: Producer<f32>,
    stats: Arc<RingStats>,
}

pub struct RingReader {
    consumer: Consumer<f32>,
    stats: Arc<RingStats>,
}

/// A ring holding `capacity` samples.
pub fn ring(capacity: usize) -> (RingWriter, RingReader) {
    let (producer, consumer) = RingBuffer::new(capacity);
    let stats = Arc::new(RingStats::default());
    (
        RingWriter {
            producer,
            stats: stats.clone(),
        },
        RingReader { consumer, stats },
    )
}

/// What a read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// This many samples were appended.
    Samples(usize),
    /// Nothing arrived within the timeout.
    Timeout,
    /// The writer is gone and everything it wrote has been read.
    Closed,
}

impl RingWriter {
    pub fn stats(&self) -> &Arc<RingStats> {
        &self.stats
    }

    pub fn free(&self) -> usize {
        self.producer.slots()
    }

    /// Writes `block` whole, or drops it whole and counts it if there is no room. Never blocks.
    pub fn push(&mut self, block: &[f32]) -> bool {
        let ok = match self.producer.write_chunk_uninit(block.len()) {
            Ok(chunk) => {
                chunk.fill_from_iter(block.iter().copied());
                self.stats
                    .written_samples
                    .fetch_add(block.len() as u64, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.stats
                    .dropped_samples
                    .fetch_add(block.len() as u64, Ordering::Relaxed);
                false
            }
        };
        self.wake_reader();
        ok
    }
}

impl RingWriter {
    fn wake_reader(&self) {
        if let Some(t) = self.stats.reader.get() {
            t.unpark();
        }
    }
}

impl Drop for RingWriter {
    fn drop(&mut self) {
        self.stats.closed.store(true, Ordering::Release);
        self.wake_reader();
    }
}

impl RingReader {
    pub fn stats(&self) -> &Arc<RingStats> {
        &self.stats
    }

    /// Appends whatever is available to `out`, waiting up to `timeout` for something to arrive.
    /// The writer wakes the thread that first called `read`; keep reading from that thread.
    pub fn read(&mut self, out: &mut Vec<f32>, timeout: Duration) -> Read {
        let _ = self.stats.reader.set(std::thread::current());
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let n = self.consumer.slots();
            if n > 0 {
                if let Ok(chunk) = self.consumer.read_chunk(n) {
                    out.extend(chunk);
                    return Read::Samples(n);
                }
            }
            // Check `closed` only after finding the ring empty, and re-check the ring after seeing
            // it: the writer's last block may land between the two loads.
            if self.stats.closed.load(Ordering::Acquire) {
                if self.consumer.slots() > 0 {
                    continue;
                }
                return Read::Closed;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Read::Timeout;
            }
            std::thread::park_timeout(deadline - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_ring_drops_whole_blocks_and_counts_them() {
        let (mut w, mut r) = ring(10);
        assert!(w.push(&[1.0; 6]));
        assert!(!w.push(&[2.0; 6]), "only 4 free");
        assert!(w.push(&[3.0; 4]));
        assert_eq!(w.stats().dropped_samples.load(Ordering::Relaxed), 6);
        let mut out = Vec::new();
        assert_eq!(r.read(&mut out, Duration::ZERO), Read::Samples(10));
        assert_eq!(out, [[1.0; 6].as_slice(), [3.0; 4].as_slice()].concat());
    }

    #[test]
    fn reader_wakes_on_write_and_sees_close_after_the_last_block() {
        let (mut w, mut r) = ring(1024);
        let mut first = Vec::new();
        assert_eq!(
            r.read(&mut first, Duration::ZERO),
            Read::Timeout,
            "registers this thread as the reader"
        );
        let writer = std::thread::spawn(move || {
            for i in 0..50 {
                while !w.push(&[i as f32; 16]) {
                    std::thread::yield_now();
                }
            }
        });
        let mut out = Vec::new();
        loop {
            match r.read(&mut out, Duration::from_secs(5)) {
                Read::Samples(_) => {}
                Read::Closed => break,
                Read::Timeout => panic!("writer never woke the reader"),
            }
        }
        writer.join().unwrap();
        assert_eq!(out.len(), 800);
        assert!(out
            .chunks(16)
            .enumerate()
            .all(|(i, c)| c.iter().all(|v| *v == i as f32)));
    }

    #[test]
    fn empty_read_times_out() {
        let (_w, mut r) = ring(8);
        let mut out = Vec::new();
        assert_eq!(r.read(&mut out, Duration::from_millis(5)), Read::Timeout);
    }
}
