//! One request between `transcribe` and `audio-stop`, sans I/O: events in, the `error` to send (if
//! any) out. After an error the request is refused: its remaining chunks are dropped quietly until
//! `audio-stop`, so one mistake gets one answer.

use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use serde_json::{Map, Value};

use super::audio::{AudioIn, Format};
use super::codec::Event;
use super::messages::error;
use super::server::Counters;

pub struct Request {
    /// The MMS code it runs in, and the code the client used (echoed in the transcript).
    pub lang: String,
    pub asked: String,
    pub started_at: SystemTime,
    /// `request_timeout_s` from its start: a client trickling audio is cut off.
    pub deadline: Instant,
    audio: Option<AudioIn>,
    refused: bool,
}

impl Request {
    pub fn new(lang: String, asked: String, deadline: Instant) -> Request {
        Request {
            lang,
            asked,
            started_at: SystemTime::now(),
            deadline,
            audio: None,
            refused: false,
        }
    }

    /// A request already answered with an error (an unknown language): its audio is dropped.
    pub fn refused(deadline: Instant) -> Request {
        Request {
            refused: true,
            ..Request::new(String::new(), String::new(), deadline)
        }
    }

    fn refuse(
        &mut self,
        counter: &std::sync::atomic::AtomicU64,
        text: &str,
        code: &str,
    ) -> Option<Event> {
        counter.fetch_add(1, Ordering::Relaxed);
        self.refused = true;
        self.audio = None;
        Some(error(text, code))
    }

    pub fn audio_start(
        &mut self,
        data: &Map<String, Value>,
        max_s: u64,
        counters: &Counters,
    ) -> Option<Event> {
        if self.refused {
            return None;
        }
        match Format::from_data(data).and_then(|f| AudioIn::start(f, max_s)) {
            Ok(audio) => {
                self.started_at = SystemTime::now();
                self.audio = Some(audio);
                None
            }
            Err(e) => self.refuse(&counters.protocol_errors, &e.to_string(), "bad_request"),
        }
    }

    pub fn audio_chunk(
        &mut self,
        data: &Map<String, Value>,
        pcm: &[u8],
        counters: &Counters,
    ) -> Option<Event> {
        if self.refused {
            return None;
        }
        let Some(audio) = self.audio.as_mut() else {
            return self.refuse(
                &counters.protocol_errors,
                "audio-chunk before audio-start",
                "bad_request",
            );
        };
        match Format::from_data(data).and_then(|f| audio.push(f, pcm)) {
            Ok(()) => None,
            Err(e) => {
                let counter = if e.code() == "audio_too_long" {
                    &counters.too_long
                } else {
                    &counters.protocol_errors
                };
                self.refuse(counter, &e.to_string(), e.code())
            }
        }
    }

    /// `audio-stop`: the audio to recognise (16 kHz mono); `Err`: what to answer instead (nothing
    /// for a refused request, which was answered already).
    pub fn audio_stop(self, counters: &Counters) -> Result<Vec<f32>, Option<Event>> {
        match self.audio {
            _ if self.refused => Err(None),
            Some(audio) => Ok(audio.finish()),
            None => {
                counters.protocol_errors.fetch_add(1, Ordering::Relaxed);
                Err(Some(error("audio-stop without audio-start", "bad_request")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn request() -> Request {
        Request::new("eng".into(), "en".into(), Instant::now())
    }

    const MONO: fn() -> Map<String, Value> =
        || data(json!({"rate": 16000, "width": 2, "channels": 1}));

    #[test]
    fn a_request_collects_its_audio_at_16k() {
        let c = Counters::default();
        let mut r = request();
        assert_eq!(r.audio_start(&MONO(), 10, &c), None);
        assert_eq!(r.audio_chunk(&MONO(), &[0, 64, 0, 192], &c), None);
        assert_eq!(r.audio_stop(&c).ok(), Some(vec![0.5, -0.5]));
    }

    #[test]
    fn one_mistake_gets_one_error_then_silence_until_audio_stop() {
        let c = Counters::default();
        let mut r = request();
        let e = r.audio_chunk(&MONO(), &[0, 0], &c).expect("an error");
        assert_eq!(e.data["code"], "bad_request");
        assert_eq!(r.audio_start(&MONO(), 10, &c), None, "refused: ignored");
        assert_eq!(r.audio_chunk(&MONO(), &[0, 0], &c), None);
        assert!(matches!(r.audio_stop(&c), Err(None)));
        assert_eq!(c.protocol_errors.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn audio_over_the_bound_is_counted_as_too_long() {
        let c = Counters::default();
        let mut r = request();
        r.audio_start(&MONO(), 1, &c);
        let e = r.audio_chunk(&MONO(), &[0; 32_002], &c).expect("an error");
        assert_eq!(e.data["code"], "audio_too_long");
        assert_eq!(c.too_long.load(Ordering::Relaxed), 1);
        assert!(
            matches!(request().audio_stop(&c), Err(Some(_))),
            "no audio-start"
        );
        let mut r = Request::refused(Instant::now());
        assert_eq!(r.audio_start(&MONO(), 1, &c), None);
    }
}
