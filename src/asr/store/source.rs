//! Where adapters are fetched from: the I/O boundary of the store, one backend per file
//! ([`super::http`], [`super::dir`]).

use std::io::Read;
use std::path::PathBuf;

use super::http::HttpSource;
use super::local::DirSource;

/// The hub's own layout: what `--source` defaults to.
pub const DEFAULT_SOURCE: &str =
    "https://huggingface.co/facebook/mms-1b-all/resolve/main/adapter.{lang}.safetensors";

/// File name of an adapter at a source given as a directory or a base URL (the hub's name).
const HUB_FILE: &str = "adapter.{lang}.safetensors";

/// A response body positioned somewhere in the file.
pub(crate) struct Download {
    pub reader: Box<dyn Read + Send>,
    /// Offset in the file of the first byte `reader` yields: the offset asked for when the source
    /// honoured it, 0 when it sends the whole file instead.
    pub start: u64,
}

/// Why one attempt failed, by what the puller should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FetchError {
    /// Network down, timeout, server overloaded, connection cut: keep what was received, retry later.
    Transient(String),
    /// Bytes that cannot be trusted (bad hash, wrong range): throw the partial file away and retry.
    Corrupt(String),
    /// Retrying cannot help (no such file at the source, access denied): report it.
    Permanent(String),
    /// The file is the one the manifest records, but its tensors do not fit the model (the manifest
    /// disagrees with its own graph): report it, no retry can help.
    Unfit(String),
    /// The cache cannot be written (permissions, disk full): report it.
    Local(String),
    /// Cancelled (shutdown).
    Cancelled,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Transient(m)
            | FetchError::Corrupt(m)
            | FetchError::Permanent(m)
            | FetchError::Unfit(m)
            | FetchError::Local(m) => f.write_str(m),
            FetchError::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// A place adapters can be fetched from.
pub(crate) trait Source: Send + Sync + std::fmt::Debug {
    /// Opens `lang`'s adapter, from byte `offset` if the source can (see [`Download::start`]).
    fn open(&self, lang: &str, offset: u64) -> Result<Download, FetchError>;
    /// Where `lang`'s adapter is, fit for logs (credentials and query strings removed).
    fn describe(&self, lang: &str) -> String;
}

/// Parses a `--source`: an `http(s)://` URL template, a `file://` URL or a local path. `{lang}` stands
/// for the language code; a template without it is a directory (or base URL) holding the hub's
/// `adapter.<lang>.safetensors` files, as a mirror made with `huggingface-cli download` does.
pub(crate) fn parse(template: &str) -> Result<Box<dyn Source>, String> {
    let template = template.trim();
    if template.is_empty() {
        return Err("the adapter source is empty".into());
    }
    let with_file = |base: &str| {
        if base.contains("{lang}") {
            base.to_string()
        } else {
            format!("{}/{HUB_FILE}", base.trim_end_matches('/'))
        }
    };
    let lower = template.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(Box::new(HttpSource::new(with_file(template))));
    }
    let path = if lower.starts_with("file://") {
        let rest = &template["file://".len()..];
        // file:///srv/mirror (empty host) or file://localhost/srv/mirror.
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        if !path.starts_with('/') {
            return Err(format!(
                "{template}: a file:// source needs an absolute path (file:///srv/mirror)"
            ));
        }
        path.to_string()
    } else if template.contains("://") {
        return Err(format!(
            "{}: unsupported scheme (use https://, http://, file:// or a directory)",
            crate::redact::redact_url(template)
        ));
    } else {
        template.to_string()
    };
    Ok(Box::new(DirSource::new(PathBuf::from(with_file(&path)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_directories_and_schemes() {
        let hub = parse(DEFAULT_SOURCE).unwrap();
        assert_eq!(
            hub.describe("fra"),
            "https://huggingface.co/facebook/mms-1b-all/resolve/main/adapter.fra.safetensors"
        );
        let base = parse("http://mirror.lan:8080/mms/").unwrap();
        assert_eq!(
            base.describe("deu"),
            "http://mirror.lan:8080/mms/adapter.deu.safetensors"
        );
        assert_eq!(
            parse("file:///srv/mms").unwrap().describe("eng"),
            "/srv/mms/adapter.eng.safetensors"
        );
        assert_eq!(
            parse("/srv/{lang}.st").unwrap().describe("eng"),
            "/srv/eng.st"
        );
        assert!(parse("ftp://x/y").unwrap_err().contains("unsupported"));
        assert!(parse("file://relative/x").is_err());
        assert!(parse("  ").is_err());
    }
}
