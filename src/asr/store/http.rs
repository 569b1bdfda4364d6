//! HTTP(S) sources (the hub, a mirror): `ureq` over rustls, resuming with `Range`.

use std::time::Duration;

use ureq::http::StatusCode;
use ureq::Agent;

use super::source::{Download, FetchError, Source};
use crate::redact::redact_url as redact;

#[derive(Debug)]
pub(crate) struct HttpSource {
    template: String,
    agent: Agent,
}

impl HttpSource {
    pub fn new(template: String) -> HttpSource {
        let agent = Agent::config_builder()
            // Statuses are classified below (retry or give up); they are not errors to ureq.
            .http_status_as_error(false)
            .user_agent(concat!("edgescribe/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            // Per read, not per body: a 9 MB adapter over a slow link may take minutes, but a
            // connection silent for a minute is dead and the download should resume on a new one.
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        HttpSource { template, agent }
    }

    fn url(&self, lang: &str) -> String {
        self.template.replace("{lang}", lang)
    }
}

impl Source for HttpSource {
    fn open(&self, lang: &str, offset: u64) -> Result<Download, FetchError> {
        let url = self.url(lang);
        let shown = redact(&url);
        let mut request = self.agent.get(&url);
        if offset > 0 {
            // Kept across redirects by ureq, so it also works through the hub's CDN redirect.
            request = request.header("Range", format!("bytes={offset}-"));
        }
        let response = request.call().map_err(|e| classify_error(&shown, e))?;
        let status = response.status();
        let start = match status {
            StatusCode::OK => 0,
            StatusCode::PARTIAL_CONTENT => {
                let range = response
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(content_range_start);
                if range != Some(offset) {
                    return Err(FetchError::Corrupt(format!(
                        "{shown}: asked for bytes from {offset}, the server sent a range starting at {range:?}"
                    )));
                }
                offset
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                return Err(FetchError::Corrupt(format!(
                    "{shown}: the partial download is longer than the file on the server"
                )))
            }
            s => return Err(classify_status(&shown, s)),
        };
        Ok(Download {
            reader: Box::new(response.into_body().into_reader()),
            start,
        })
    }

    fn describe(&self, lang: &str) -> String {
        redact(&self.url(lang))
    }
}

/// `bytes 1000-1999/2000` → 1000.
fn content_range_start(value: &str) -> Option<u64> {
    value
        .trim()
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn classify_status(url: &str, status: StatusCode) -> FetchError {
    let msg = format!("{url}: HTTP {status}");
    match status.as_u16() {
        408 | 425 | 429 | 500..=599 => FetchError::Transient(msg),
        404 | 410 => FetchError::Permanent(format!(
            "{msg} (the source has no adapter for this language: check --source)"
        )),
        _ => FetchError::Permanent(msg),
    }
}

fn classify_error(url: &str, e: ureq::Error) -> FetchError {
    let msg = format!("{url}: {e}");
    match e {
        // Mistakes in the template or the proxy settings: no retry fixes those.
        ureq::Error::BadUri(_) | ureq::Error::InvalidProxyUrl | ureq::Error::Http(_) => {
            FetchError::Permanent(msg)
        }
        // Everything else is the network: refused, unreachable, DNS, timeouts, and TLS failures,
        // which on a board without a real-time clock are usually a clock not yet set by NTP.
        _ => FetchError::Transient(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_range() {
        assert_eq!(content_range_start("bytes 1000-1999/2000"), Some(1000));
        assert_eq!(content_range_start("bytes 0-0/*"), Some(0));
        assert_eq!(content_range_start("items 1-2/3"), None);
    }

    #[test]
    fn classifies_statuses_by_what_to_do() {
        let s = |c| classify_status("u", StatusCode::from_u16(c).unwrap());
        assert!(matches!(s(503), FetchError::Transient(_)));
        assert!(matches!(s(429), FetchError::Transient(_)));
        assert!(matches!(s(404), FetchError::Permanent(_)));
        assert!(matches!(s(403), FetchError::Permanent(_)));
    }
}
