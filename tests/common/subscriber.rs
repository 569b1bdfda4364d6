//! A test subscriber (rumqttc, synchronous): persistent session, QoS 1, reconnects on its own,
//! hands every message to the test through a channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};

#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Message {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap()
    }
}

pub struct Subscriber {
    client: Client,
    rx: Receiver<Message>,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Subscriber {
    /// Connects to 127.0.0.1:`port` and subscribes to `filters`; returns once subscribed.
    pub fn connect(port: u16, client_id: &str, filters: &[&str]) -> Subscriber {
        Self::connect_with(port, client_id, filters, None)
    }

    pub fn connect_with(
        port: u16,
        client_id: &str,
        filters: &[&str],
        credentials: Option<(&str, &str)>,
    ) -> Subscriber {
        let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5))
            .set_clean_session(false)
            .set_max_packet_size(1 << 20, 1 << 20);
        if let Some((u, p)) = credentials {
            opts.set_credentials(u, p);
        }
        let (client, mut connection) = Client::new(opts, 100);
        let (tx, rx) = std::sync::mpsc::channel();
        let (subscribed_tx, subscribed_rx) = std::sync::mpsc::channel();
        let sub_client = client.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_thread = stop.clone();
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let thread = std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                        if !ack.session_present {
                            for f in &filters {
                                sub_client
                                    .try_subscribe(f.clone(), QoS::AtLeastOnce)
                                    .unwrap();
                            }
                        } else {
                            let _ = subscribed_tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let _ = subscribed_tx.send(());
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let _ = tx.send(Message {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        });
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    // Broker away: rumqttc would retry in a tight loop.
                    Err(_) if stop_thread.load(Ordering::SeqCst) => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        subscribed_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("test subscriber did not get its SubAck");
        Subscriber {
            client,
            rx,
            thread: Some(thread),
            stop,
        }
    }

    /// Next message, or `None` after `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Message> {
        match self.rx.recv_timeout(timeout) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("subscriber thread ended"),
        }
    }

    /// Waits for the first message matching `pred`, discarding others.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Message) -> bool) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let m = self.next(left)?;
            if pred(&m) {
                return Some(m);
            }
        }
    }

    /// Everything that arrives until nothing came for `quiet`.
    pub fn drain(&self, quiet: Duration) -> Vec<Message> {
        std::iter::from_fn(|| self.next(quiet)).collect()
    }

    pub fn publish(&self, topic: &str, payload: &[u8]) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
            .unwrap();
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.client.try_disconnect();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
