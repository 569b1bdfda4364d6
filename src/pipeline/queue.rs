//! A bounded queue between pipeline threads whose overflow policy is "drop the oldest, count it":
//! when the recogniser falls behind, the freshest utterances are the ones worth transcribing, and memory
//! stays bounded whatever the backlog.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

pub struct DropOldest<T> {
    inner: Arc<Shared<T>>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    /// Signalled when an item is taken (for [`DropOldest::push_wait`]).
    space: Condvar,
    capacity: usize,
    dropped: AtomicU64,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

impl<T> Clone for DropOldest<T> {
    fn clone(&self) -> Self {
        DropOldest {
            inner: self.inner.clone(),
        }
    }
}

impl<T> DropOldest<T> {
    pub fn new(capacity: usize) -> DropOldest<T> {
        let capacity = capacity.max(1);
        DropOldest {
            inner: Arc::new(Shared {
                state: Mutex::new(State {
                    items: VecDeque::with_capacity(capacity),
                    closed: false,
                }),
                ready: Condvar::new(),
                space: Condvar::new(),
                capacity,
                dropped: AtomicU64::new(0),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // A panic while holding this lock cannot leave the deque inconsistent: keep going.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an item; if the queue is full the oldest is dropped (and counted) to make room.
    /// Returns the dropped item, if any.
    pub fn push(&self, item: T) -> Option<T> {
        let mut state = self.lock();
        let dropped = if state.items.len() >= self.inner.capacity {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            state.items.pop_front()
        } else {
            None
        };
        state.items.push_back(item);
        drop(state);
        self.inner.ready.notify_one();
        dropped
    }

    /// Adds an item, waiting while the queue is full instead of dropping: for a recording read as
    /// fast as it is recognised, where nothing should be lost and only the reader sets the pace.
    pub fn push_wait(&self, item: T) {
        let state = self.lock();
        let mut state = self
            .inner
            .space
            .wait_while(state, |s| s.items.len() >= self.inner.capacity && !s.closed)
            .unwrap_or_else(|e| e.into_inner());
        state.items.push_back(item);
        drop(state);
        self.inner.ready.notify_one();
    }

    /// Takes the oldest item, waiting up to `timeout`. `None`: timed out, or closed and empty.
    pub fn pop(&self, timeout: Duration) -> Option<T> {
        let state = self.lock();
        let (mut state, _) = self
            .inner
            .ready
            .wait_timeout_while(state, timeout, |s| s.items.is_empty() && !s.closed)
            .unwrap_or_else(|e| e.into_inner());
        let item = state.items.pop_front();
        drop(state);
        if item.is_some() {
            self.inner.space.notify_one();
        }
        item
    }

    /// No more pushes will come; readers drain what is left, then get `None` at once.
    pub fn close(&self) {
        self.lock().closed = true;
        self.inner.ready.notify_all();
        self.inner.space.notify_all();
    }

    pub fn is_closed_and_empty(&self) -> bool {
        let s = self.lock();
        s.closed && s.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_wait_waits_for_room_and_loses_nothing() {
        let q = DropOldest::new(2);
        let producer = {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    q.push_wait(i);
                }
                q.close();
            })
        };
        let mut got = Vec::new();
        while let Some(i) = q.pop(Duration::from_secs(5)) {
            got.push(i);
        }
        producer.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(q.dropped(), 0);
    }

    #[test]
    fn full_queue_drops_the_oldest_and_counts() {
        let q = DropOldest::new(2);
        assert_eq!(q.push(1), None);
        assert_eq!(q.push(2), None);
        assert_eq!(q.push(3), Some(1));
        assert_eq!(q.dropped(), 1);
        assert_eq!(q.pop(Duration::ZERO), Some(2));
        assert_eq!(q.pop(Duration::ZERO), Some(3));
        assert_eq!(q.pop(Duration::from_millis(5)), None);
    }

    #[test]
    fn close_lets_readers_drain_then_stop() {
        let q = DropOldest::new(4);
        q.push("a");
        q.close();
        assert!(!q.is_closed_and_empty());
        assert_eq!(q.pop(Duration::from_secs(5)), Some("a"));
        let t0 = std::time::Instant::now();
        assert_eq!(q.pop(Duration::from_secs(5)), None);
        assert!(t0.elapsed() < Duration::from_secs(1), "closed: no waiting");
        assert!(q.is_closed_and_empty());
    }

    #[test]
    fn a_waiting_reader_is_woken_by_a_push() {
        let q = DropOldest::new(4);
        let q2 = q.clone();
        let reader = std::thread::spawn(move || q2.pop(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        q.push(7);
        assert_eq!(reader.join().unwrap(), Some(7));
    }
}
