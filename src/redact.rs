//! Secrets never reach a log line or an error message: URLs are shown without their user info and
//! query string.

/// `url` without user info and query string, which may hold credentials (`https://user:token@…`,
/// `?token=…`). Works on anything given as a URL, mistyped ones too (`mqtt//u:pw@host`): whatever
/// stands before the last `@`, back to the previous `/`, is hidden.
pub fn redact_url(url: &str) -> String {
    let (body, tail) = match url.find(['?', '#']) {
        Some(i) => (&url[..i], "?***"),
        None => (url, ""),
    };
    let body = match body.rfind('@') {
        Some(at) => {
            let start = body[..at].rfind('/').map_or(0, |i| i + 1);
            format!("{}***{}", &body[..start], &body[at..])
        }
        None => body.to_string(),
    };
    format!("{body}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_and_queries() {
        assert_eq!(
            redact_url("https://bob:s3cret@mirror.lan/mms/adapter.fra.safetensors?token=abc"),
            "https://***@mirror.lan/mms/adapter.fra.safetensors?***"
        );
        assert_eq!(
            redact_url(crate::asr::store::DEFAULT_SOURCE),
            crate::asr::store::DEFAULT_SOURCE
        );
        assert_eq!(redact_url("/srv/mirror/a"), "/srv/mirror/a");
    }

    #[test]
    fn redacts_any_scheme() {
        assert_eq!(redact_url("tcp://u:SECRET@host"), "tcp://***@host");
        assert_eq!(redact_url("u:SECRET@host:1883"), "***@host:1883");
        assert_eq!(redact_url("mqtt//u:SECRET@host"), "mqtt//***@host");
        assert_eq!(redact_url("mqtt://u:p@ss@host"), "mqtt://***@host");
    }
}
