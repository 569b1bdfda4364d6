//! The `mqtt-eventloop` thread: owns the rumqttc connection for the daemon's whole life.
//!
//! One thread, one current-thread tokio runtime, one task: it polls rumqttc, and between polls
//! hands queued work to rumqttc. Because the same task submits publish requests and reads
//! rumqttc's events, the order of `Outgoing::Publish` events matches the order of submissions
//! exactly, which is what the [`Outbox`](super::outbox::Outbox) relies on.
//!
//! Session policy: clean session on every connection. rumqttc then drops its own queue on
//! reconnect, and our outbox re-sends everything unacknowledged, in order. A persistent session
//! would make the broker replay stale commands and rumqttc re-send on its own, doubling
//! duplicates for no gain.

use std::sync::atomic::Ordering;
use std::sync::mpsc::TrySendError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Filter, LastWill, PubAck, PubAckReason, RetainForwardRule, SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};

use super::command::{parse_incoming, Incoming as Parsed, ParseContext};
use super::discovery::discovery_messages;
use super::limits;
use super::payload::TranscriptMessage;
use super::shared::{Shared, HERMES_MAX_AGE};
use super::{broker, credentials, DeviceInfo, MqttConfig, MqttError};
use crate::retry::Backoff;
use crate::service::{LogLimit, Verdict};

/// Command rejections logged per minute at most.
const COMMAND_LOG_BURST: u32 = 10;

/// Which (topic, payload) pairs were seen, by hash, remembering at most `SEEN_MAX`.
#[derive(Default)]
struct SeenSet(std::collections::VecDeque<u64>);

const SEEN_MAX: usize = 64;

impl SeenSet {
    /// Whether this pair is new (and remembers it, forgetting the oldest beyond `SEEN_MAX`).
    fn first_time(&mut self, topic: &str, payload: &[u8]) -> bool {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (topic, payload).hash(&mut h);
        let key = h.finish();
        if self.0.contains(&key) {
            return false;
        }
        if self.0.len() == SEEN_MAX {
            self.0.pop_front();
        }
        self.0.push_back(key);
        true
    }
}

/// Retained messages to mark dirty again after a submission round.
#[derive(Default, PartialEq)]
struct Resend {
    state: bool,
    languages: bool,
    announce: bool,
    stats: bool,
}

/// "; N more like it left out of the log", when some were.
fn left_out(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} more left out of the log)")
    }
}

/// Transcripts handed to rumqttc at once; the rest wait in the outbox. Below rumqttc's
/// `inflight` (100), so rumqttc never stops reading requests because of transcripts.
const WINDOW: usize = 32;
/// rumqttc's request channel: the window plus the few other messages of one connection.
const REQUEST_CAPACITY: usize = WINDOW + 64;

/// The running thread and a way to wait for it with a timeout.
pub struct Thread {
    join: std::thread::JoinHandle<()>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Thread {
    pub fn join(self, timeout: Duration) {
        match self.done.recv_timeout(timeout) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = self.join.join();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                log::warn!("MQTT thread did not stop within {timeout:?}; leaving it");
            }
        }
    }
}

struct Ctx {
    config: MqttConfig,
    info: DeviceInfo,
    device_id: String,
    broker: String,
}

pub fn spawn(
    config: &MqttConfig,
    info: DeviceInfo,
    device_id: String,
    shared: Arc<Shared>,
) -> Result<Thread, MqttError> {
    let (host, port, use_tls) = match config.broker_addr()? {
        Some(b) => (b.host, b.port, b.tls),
        None => {
            let addr = broker::start(config.embedded_listen, config.max_packet_bytes)?;
            (addr.ip().to_string(), addr.port(), false)
        }
    };
    let broker_name = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut opts = MqttOptions::new(config.client_id(&device_id), host, port);
    // The packet limit goes to the broker in CONNECT: it then drops larger messages (a 2 MB
    // retained one, say) instead of sending them, which would end the connection at every
    // reconnect. rumqttc applies the same limit to what it reads.
    let max_packet = u32::try_from(config.max_packet_bytes).unwrap_or(u32::MAX);
    opts.set_keep_alive(Duration::from_secs(config.keep_alive_s))
        .set_clean_start(true)
        .set_max_packet_size(Some(max_packet))
        .set_last_will(LastWill::new(
            shared.topics.status.clone(),
            "offline",
            QoS::AtLeastOnce,
            true,
            None,
        ));
    let credentials = credentials::read(config, use_tls)?;
    if let Some((user, password)) = &credentials.login {
        opts.set_credentials(user.clone(), password.expose());
    }
    if let Some(tls_config) = credentials.tls {
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls_config,
        )));
    }
    let (client, eventloop) = AsyncClient::new(opts, REQUEST_CAPACITY);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(MqttError::Runtime)?;
    let ctx = Ctx {
        config: config.clone(),
        info,
        device_id,
        broker: broker_name,
    };
    let (done_tx, done) = std::sync::mpsc::channel();
    let join = std::thread::Builder::new()
        .name("mqtt-eventloop".into())
        .spawn(move || {
            let mut l = Loop {
                backoff: Backoff::new(
                    Duration::from_millis(ctx.config.reconnect_min_ms),
                    Duration::from_millis(ctx.config.reconnect_max_ms),
                ),
                ctx,
                client,
                eventloop,
                shared,
                connected: false,
                broker_max_packet: None,
                command_logs: LogLimit::new(COMMAND_LOG_BURST, Duration::from_secs(60)),
                publish_logs: LogLimit::new(COMMAND_LOG_BURST, Duration::from_secs(60)),
                retained_seen: SeenSet::default(),
            };
            runtime.block_on(l.run());
            let _ = done_tx.send(());
        })
        .map_err(MqttError::Runtime)?;
    Ok(Thread { join, done })
}

struct Loop {
    ctx: Ctx,
    client: AsyncClient,
    eventloop: EventLoop,
    shared: Arc<Shared>,
    backoff: Backoff,
    connected: bool,
    /// The broker's packet limit from its CONNACK, if it announced one.
    broker_max_packet: Option<usize>,
    /// Rejected and dropped commands are logged at most a burst a minute (all are counted in
    /// `…/stats`): a flood from the network must not flood the journal.
    command_logs: LogLimit,
    /// Messages left out or not queued, logged at most a burst a minute.
    publish_logs: LogLimit,
    /// Retained commands already refused: the broker sends them again at every reconnect, and
    /// they are refused and reported once.
    retained_seen: SeenSet,
}

impl Loop {
    async fn run(&mut self) {
        let mut shutdown_deadline: Option<Instant> = None;
        let mut disconnecting = false;
        loop {
            if shutdown_deadline.is_none() && self.shared.shutdown.is_cancelled() {
                shutdown_deadline = Some(Instant::now() + self.shutdown_grace());
            }
            if let Some(deadline) = shutdown_deadline {
                if !self.connected {
                    return;
                }
                if !disconnecting
                    && (self.shared.lock_outbox().is_empty() || Instant::now() >= deadline)
                {
                    // A clean DISCONNECT suppresses the Last Will: say `offline` ourselves.
                    let status = self.ctx_status_topic();
                    self.publish(&status, QoS::AtLeastOnce, true, "offline");
                    let _ = self.client.try_disconnect();
                    disconnecting = true;
                }
                if Instant::now() >= deadline + Duration::from_secs(1) {
                    return;
                }
            }
            if self.connected && !disconnecting {
                if self.ack_overdue() {
                    // Reconnecting is the only way MQTT allows to re-send a publish.
                    self.eventloop.clean();
                    self.on_connection_lost("a transcript was never acknowledged".into())
                        .await;
                    continue;
                }
                self.submit_work();
            }
            let event = if self.connected {
                let wake_at = shutdown_deadline.map(tokio::time::Instant::from_std);
                tokio::select! {
                    biased;
                    ev = self.eventloop.poll() => Some(ev),
                    _ = self.shared.wake.notified() => None,
                    _ = sleep_until(wake_at) => None,
                }
            } else {
                // While connecting, only shutdown may interrupt: cancelling a connection attempt
                // for every new transcript would never let it finish.
                tokio::select! {
                    ev = self.eventloop.poll() => Some(ev),
                    _ = self.shared.shutdown.cancelled() => None,
                }
            };
            match event {
                None => {}
                Some(Ok(Event::Outgoing(Outgoing::Disconnect))) if disconnecting => {
                    log::info!("MQTT: disconnected from {}", self.ctx.broker);
                    self.shared.lock_connection().connected = false;
                    return;
                }
                Some(Ok(event)) => self.handle_event(event),
                Some(Err(e)) => {
                    if disconnecting {
                        return;
                    }
                    self.on_connection_lost(describe(&e)).await;
                }
            }
        }
    }

    /// A transcript has waited for its PubAck longer than two keep-alive periods: something
    /// lost it (the broker answers pings within one period if the link is alive).
    fn ack_overdue(&self) -> bool {
        let limit = Duration::from_secs(2 * self.ctx.config.keep_alive_s);
        let overdue = self
            .shared
            .lock_outbox()
            .oldest_in_flight()
            .is_some_and(|since| since.elapsed() > limit);
        if overdue {
            log::warn!(
                "MQTT: no acknowledgement from {} for {limit:?}; reconnecting to re-send",
                self.ctx.broker
            );
        }
        overdue
    }

    fn ctx_status_topic(&self) -> String {
        self.shared.topics.status.clone()
    }

    /// How long shutdown waits for the outbox to drain (the caller's timeout).
    fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shared.shutdown_timeout_ms.load(Ordering::SeqCst))
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Incoming::ConnAck(ack)) => self.on_connack(&ack),
            Event::Incoming(Incoming::PubAck(ack)) => self.on_puback(&ack),
            Event::Incoming(Incoming::Publish(p)) => match std::str::from_utf8(&p.topic) {
                Ok(topic) => self.on_message(topic, &p.payload, p.retain),
                // MQTT requires UTF-8 topics; a broker that breaks that is not worth a reconnect.
                Err(_) => log::debug!("MQTT: message on a topic that is not UTF-8 ignored"),
            },
            Event::Incoming(Incoming::SubAck(ack))
                if ack
                    .return_codes
                    .iter()
                    .any(|c| !matches!(c, SubscribeReasonCode::Success(_))) =>
            {
                log::warn!(
                    "MQTT broker {} refused a subscription: commands may not arrive (check its ACL)",
                    self.ctx.broker
                );
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => self
                .shared
                .lock_outbox()
                .on_outgoing_publish(pkid, Instant::now()),
            _ => {}
        }
    }

    /// A PubAck: delivered, or (MQTT 5 reason code) refused by the broker.
    fn on_puback(&mut self, ack: &PubAck) {
        let accepted = matches!(
            ack.reason,
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers
        );
        let id = if accepted {
            self.shared.lock_outbox().on_puback(ack.pkid)
        } else {
            let id = self.shared.lock_outbox().on_refused(ack.pkid);
            if id.is_some() {
                if let Verdict::Log { suppressed } = self.command_logs.check(Instant::now()) {
                    log::error!(
                        "MQTT: broker {} refused a transcript ({:?}); dropped, not re-sent (check its ACL and quotas){}",
                        self.ctx.broker,
                        ack.reason,
                        left_out(suppressed)
                    );
                }
            }
            id
        };
        if let Some(id) = id {
            self.shared.unspool(id);
            self.shared.delivered.notify_all();
        }
    }

    fn on_connack(&mut self, ack: &ConnAck) {
        self.broker_max_packet = ack
            .properties
            .as_ref()
            .and_then(|p| p.max_packet_size)
            .map(|bytes| bytes as usize);
        if let Some(limit) = self.broker_max_packet {
            if limit < self.ctx.config.max_packet_bytes {
                log::info!(
                    "MQTT: broker {} accepts packets of at most {limit} bytes: longer transcripts are cut to fit",
                    self.ctx.broker
                );
            }
        }
        self.connected = true;
        self.backoff.reset();
        {
            let mut c = self.shared.lock_connection();
            c.connected = true;
            c.attempts += 1;
            c.connections += 1;
            c.last_error = None;
            if c.connections > 1 {
                self.shared
                    .counters
                    .reconnects
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        log::info!("MQTT: connected to {}", self.ctx.broker);
        // rumqttc forgot everything of the previous connection (clean session).
        self.shared.lock_outbox().on_disconnect();
        let t = &self.shared.topics;
        let mut commands = vec![
            t.set_language.clone(),
            t.set_listening.clone(),
            t.set_phrases.clone(),
        ];
        if self.ctx.config.hermes {
            commands.push(t.hermes_toggle_on.to_string());
            commands.push(t.hermes_toggle_off.to_string());
        }
        // Retain Handling 2: the broker sends no retained message on these topics (a command is
        // taken live only; one retained would be obeyed again at every reconnect). Home
        // Assistant's status is not a command: its retained birth message is wanted.
        let mut filters: Vec<Filter> = commands
            .into_iter()
            .map(|path| Filter {
                retain_forward_rule: RetainForwardRule::Never,
                ..Filter::new(path, QoS::AtLeastOnce)
            })
            .collect();
        if self.ctx.config.ha_discovery {
            filters.push(Filter::new(t.ha_status.clone(), QoS::AtLeastOnce));
        }
        if let Err(e) = self.client.try_subscribe_many(filters) {
            log::warn!("MQTT: cannot queue subscriptions: {e}");
        }
        let status = self.shared.topics.status.clone();
        self.publish(&status, QoS::AtLeastOnce, true, "online");
        let mut p = self.shared.lock_pending();
        // Retained messages may be gone (broker restarted without persistence): say them again.
        p.state_dirty = true;
        p.languages_dirty = p.languages.is_some();
        p.stats_dirty = p.stats.is_some();
        p.announce = self.ctx.config.ha_discovery;
    }

    fn on_message(&mut self, topic: &str, payload: &[u8], retain: bool) {
        // A retained command would be obeyed again at every reconnect, overriding every command
        // sent since: commands are taken live only. (Home Assistant's retained birth message on
        // its status topic is not a command.)
        if retain && topic != self.shared.topics.ha_status {
            self.shared
                .counters
                .commands_rejected
                .fetch_add(1, Ordering::Relaxed);
            if self.retained_seen.first_time(topic, payload) {
                if let Verdict::Log { suppressed } = self.command_logs.check(Instant::now()) {
                    log::warn!(
                        "MQTT: ignored a retained command on {topic} (commands are taken live only; clear it with an empty retained message){}",
                        left_out(suppressed)
                    );
                }
                self.shared.reject(
                    topic,
                    "retained commands are ignored: publish commands without the retain flag"
                        .into(),
                );
            }
            return;
        }
        let ctx = ParseContext {
            topics: &self.shared.topics,
            languages: &self.ctx.info.languages,
            hermes: self.ctx.config.hermes,
            site_id: &self.ctx.config.site_id,
        };
        match parse_incoming(topic, payload, &ctx) {
            Ok(Parsed::Command(cmd)) => match self.shared.commands.try_send(cmd) {
                Ok(()) => {}
                Err(TrySendError::Full(cmd)) => {
                    self.shared
                        .counters
                        .commands_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    if let Verdict::Log { suppressed } = self.command_logs.check(Instant::now()) {
                        log::warn!(
                            "MQTT: daemon busy, command {cmd:?} dropped{}",
                            left_out(suppressed)
                        );
                    }
                    self.shared.reject(
                        topic,
                        "busy: earlier commands not handled yet, dropped".into(),
                    );
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.shared.reject(topic, "daemon is shutting down".into());
                }
            },
            Ok(Parsed::HomeAssistantOnline) => {
                log::info!("Home Assistant came online: announcing entities again");
                self.shared.lock_pending().announce = true;
            }
            Ok(Parsed::Ignored) => {}
            Err(e) => {
                self.shared
                    .counters
                    .commands_rejected
                    .fetch_add(1, Ordering::Relaxed);
                if let Verdict::Log { suppressed } = self.command_logs.check(Instant::now()) {
                    log::info!(
                        "MQTT: rejected command on {topic}: {e}{}",
                        left_out(suppressed)
                    );
                }
                self.shared.reject(topic, e.to_string());
            }
        }
    }

    /// The connection failed or was lost: requeue, record why, wait the backoff delay.
    async fn on_connection_lost(&mut self, reason: String) {
        let was_connected = self.connected;
        self.connected = false;
        self.shared.lock_outbox().on_disconnect();
        let delay = self.backoff.next_delay();
        {
            let mut c = self.shared.lock_connection();
            c.connected = false;
            if !was_connected {
                c.attempts += 1;
            }
            c.last_error = Some(reason.clone());
        }
        if was_connected {
            log::warn!(
                "MQTT: connection to {} lost: {reason}; reconnecting in {} ms",
                self.ctx.broker,
                delay.as_millis()
            );
        } else {
            log::warn!(
                "MQTT: cannot connect to {} (attempt {}): {reason}; retrying in {} ms",
                self.ctx.broker,
                self.backoff.failures(),
                delay.as_millis()
            );
        }
        self.shared.shutdown.sleep_async(delay).await;
    }

    /// Hands queued work to rumqttc: state, discovery, stats, Hermes, then transcripts.
    fn submit_work(&mut self) {
        let (state, languages, announce, stats, hermes) = {
            let mut p = self.shared.lock_pending();
            let state = std::mem::take(&mut p.state_dirty).then(|| serde_json::to_vec(&p.state));
            let languages = std::mem::take(&mut p.languages_dirty)
                .then(|| p.languages.clone())
                .flatten();
            let announce = std::mem::take(&mut p.announce);
            let stats_dirty = std::mem::take(&mut p.stats_dirty);
            let stats = p.stats.as_mut().filter(|_| stats_dirty).map(|s| {
                s.mqtt = self.shared.counters();
                serde_json::to_vec(s)
            });
            // Hermes captures are only meaningful live; do not replay them after an outage.
            let hermes: Vec<Vec<u8>> = p
                .hermes
                .drain(..)
                .filter(|(queued, _)| queued.elapsed() <= HERMES_MAX_AGE)
                .map(|(_, bytes)| bytes)
                .collect();
            (state, languages, announce, stats, hermes)
        };
        let t = self.shared.topics.clone();
        self.fit_transcripts(&t.transcript);
        // A retained message the client could not queue (its request channel full under a
        // flood) is marked to be sent again: forgetting it would leave a stale retained copy.
        let mut retry = Resend::default();
        if let Some(Ok(state)) = state {
            retry.state = !self.publish(&t.state, QoS::AtLeastOnce, true, state);
        }
        if let Some(languages) = languages {
            retry.languages = !self.publish(&t.languages, QoS::AtLeastOnce, true, languages);
        }
        if announce {
            let msgs = discovery_messages(
                &self.ctx.config.ha_discovery_prefix,
                &self.ctx.device_id,
                &t,
                &self.ctx.info,
            );
            for m in msgs {
                retry.announce |=
                    !self.publish(&m.topic, QoS::AtLeastOnce, true, m.payload.to_string());
            }
        }
        if let Some(Ok(stats)) = stats {
            retry.stats = !self.publish(&t.stats, QoS::AtLeastOnce, true, stats);
        }
        if retry != Resend::default() {
            let mut p = self.shared.lock_pending();
            p.state_dirty |= retry.state;
            p.languages_dirty |= retry.languages;
            p.announce |= retry.announce;
            p.stats_dirty |= retry.stats;
        }
        for h in hermes {
            self.publish(t.hermes_text_captured, QoS::AtMostOnce, false, h);
        }
        loop {
            let next = self.shared.lock_outbox().next_to_send(WINDOW);
            let Some((_, payload)) = next else { break };
            if let Err(e) =
                self.client
                    .try_publish(&t.transcript, QoS::AtLeastOnce, false, payload.to_vec())
            {
                // Cannot happen while the window is below the channel capacity; if it does,
                // the transcript is re-sent after the next reconnect.
                log::error!("MQTT: request queue full ({e}); transcript waits for reconnect");
                break;
            }
        }
    }

    /// Cuts queued transcripts down to the broker's packet limit; those that cannot fit leave.
    fn fit_transcripts(&mut self, topic: &str) {
        let Some(limit) = self.broker_max_packet else {
            return;
        };
        let max_payload = limits::max_payload_bytes(topic, limit, true).unwrap_or(0);
        let refused = self
            .shared
            .lock_outbox()
            .fit_queued(max_payload, TranscriptMessage::shrink_json);
        for id in refused {
            log::error!(
                "MQTT: a transcript cannot fit in the {limit}-byte packets broker {} accepts, even without its text; dropped",
                self.ctx.broker
            );
            self.shared.unspool(id);
            self.shared.delivered.notify_all();
        }
    }

    /// Publishes a non-transcript message, recording it for the packet-id bookkeeping. One larger
    /// than the broker accepts is left out (logged, counted): sent, it would end the connection.
    /// `false` when the client's request queue is full: the caller decides whether to retry.
    fn publish(
        &mut self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> bool {
        let payload = payload.into();
        let packet = limits::publish_packet_bytes(topic, payload.len(), qos != QoS::AtMostOnce);
        if let Some(limit) = self.broker_max_packet.filter(|limit| packet > *limit) {
            self.shared
                .counters
                .messages_too_large
                .fetch_add(1, Ordering::Relaxed);
            if let Verdict::Log { suppressed } = self.publish_logs.check(Instant::now()) {
                log::warn!(
                    "MQTT: message for {topic} ({packet} bytes) left out: broker {} accepts at most {limit}{}",
                    self.ctx.broker,
                    left_out(suppressed)
                );
            }
            return true;
        }
        match self.client.try_publish(topic, qos, retain, payload) {
            Ok(()) => {
                self.shared.lock_outbox().note_other_publish();
                true
            }
            Err(e) => {
                if let Verdict::Log { suppressed } = self.publish_logs.check(Instant::now()) {
                    log::debug!(
                        "MQTT: cannot queue message for {topic} now ({e}){}",
                        left_out(suppressed)
                    );
                }
                false
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One line a user can act on.
fn describe(e: &ConnectionError) -> String {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as C;
    match e {
        ConnectionError::ConnectionRefused(C::BadUserNamePassword) => {
            "broker refused the connection: bad user name or password".into()
        }
        ConnectionError::ConnectionRefused(C::NotAuthorized) => {
            "broker refused the connection: not authorized (user name, password or ACL)".into()
        }
        ConnectionError::ConnectionRefused(
            C::UnsupportedProtocolVersion | C::RefusedProtocolVersion,
        ) => {
            "broker refused the connection: it does not speak MQTT 5 (Mosquitto 1.6 or later does)"
                .into()
        }
        ConnectionError::ConnectionRefused(code) => {
            format!("broker refused the connection: {code:?}")
        }
        ConnectionError::Tls(t) => {
            let t = t.to_string();
            let hint = if t.contains("UnknownIssuer") {
                " (ca_file is not the CA that signed the broker's certificate)"
            } else if t.contains("NotValidForName") {
                " (the broker's certificate does not name the host in `broker`)"
            } else {
                ""
            };
            format!("TLS: {t}{hint}")
        }
        ConnectionError::Io(io) => format!("network: {io}"),
        other => other.to_string(),
    }
}
