//! The adapter cache on disk: where it is, how it is laid out, and checking a file against the manifest.
//!
//! ```text
//! <root>/                                 --cache, or the default below
//!   <model key>/                          16 hex digits: one directory per adapter set
//!     adapter.fra.safetensors             verified copies, named as on the hub
//!     adapter.ita.safetensors.part        an interrupted download, resumed by the next pull
//! ```
//!
//! The key is a hash of the manifest's `adapters` table (every language's sha256 and size): two exports
//! of the same checkpoint (int8 and fp32, or with other bundled languages) share a directory because
//! their adapters are byte-identical, while another checkpoint, whose files differ, never sees them.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::asr::manifest::{AdapterEntry, Manifest};

/// Where the daemon's systemd unit puts state (`StateDirectory=edgescribe`).
const SYSTEM_STATE_DIR: &str = "/var/lib/edgescribe";

#[derive(Debug, Clone)]
pub struct CacheLayout {
    dir: PathBuf,
}

impl CacheLayout {
    pub fn new(root: &Path, manifest: &Manifest) -> CacheLayout {
        CacheLayout {
            dir: root.join(model_key(manifest)),
        }
    }

    /// This model's directory in the cache.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn adapter(&self, lang: &str) -> PathBuf {
        self.dir.join(format!("adapter.{lang}.safetensors"))
    }

    pub fn partial(&self, lang: &str) -> PathBuf {
        self.dir.join(format!("adapter.{lang}.safetensors.part"))
    }
}

/// 16 hex digits of the sha256 of the manifest's adapter table.
pub fn model_key(manifest: &Manifest) -> String {
    let mut h = Sha256::new();
    for (lang, entry) in &manifest.adapters {
        h.update(format!("{lang} {} {}\n", entry.sha256, entry.size));
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cache root when none is given: `$STATE_DIRECTORY/adapters` under systemd, else
/// `/var/lib/edgescribe/adapters` when that directory exists (an installed daemon's, shared with the
/// command line), else `$XDG_CACHE_HOME/edgescribe/adapters` or `~/.cache/edgescribe/adapters`.
pub fn default_root() -> Option<PathBuf> {
    root_from(
        |name| std::env::var_os(name),
        Path::new(SYSTEM_STATE_DIR).is_dir(),
    )
}

fn root_from(env: impl Fn(&str) -> Option<OsString>, system_dir_exists: bool) -> Option<PathBuf> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(state) = set("STATE_DIRECTORY") {
        // systemd passes one absolute path per StateDirectory= entry, colon-separated.
        let first = state.to_string_lossy().split(':').next()?.to_string();
        return Some(PathBuf::from(first).join("adapters"));
    }
    if system_dir_exists {
        return Some(Path::new(SYSTEM_STATE_DIR).join("adapters"));
    }
    if let Some(xdg) = set("XDG_CACHE_HOME") {
        return Some(PathBuf::from(xdg).join("edgescribe/adapters"));
    }
    set("HOME").map(|home| PathBuf::from(home).join(".cache/edgescribe/adapters"))
}

/// What a file on disk is, compared with what the manifest says it must be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check {
    Good,
    Absent,
    /// Present but not the file the manifest records (truncated, corrupt, tampered with): why.
    Bad(String),
}

/// Size first (cheap, catches truncation), then the full sha256: a cached file must be exactly the
/// one the exporter recorded, whatever its size.
pub(crate) fn check(path: &Path, entry: &AdapterEntry) -> Check {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Check::Absent,
        Err(e) => return Check::Bad(format!("unreadable: {e}")),
    };
    let len = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => return Check::Bad(format!("unreadable: {e}")),
    };
    if len != entry.size {
        return Check::Bad(format!(
            "{len} bytes, the manifest says {} (truncated or replaced)",
            entry.size
        ));
    }
    match sha256_hex(&mut file) {
        Ok(hex) if hex.eq_ignore_ascii_case(&entry.sha256) => Check::Good,
        Ok(hex) => Check::Bad(format!(
            "sha256 {hex} is not the manifest's {} (corrupt or tampered with)",
            entry.sha256
        )),
        Err(e) => Check::Bad(format!("unreadable: {e}")),
    }
}

fn sha256_hex(reader: &mut impl Read) -> std::io::Result<String> {
    let mut h = Sha256::new();
    std::io::copy(reader, &mut h)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn default_root_prefers_systemd_then_system_then_user() {
        let all = [
            ("STATE_DIRECTORY", "/var/lib/edgescribe:/var/lib/other"),
            ("XDG_CACHE_HOME", "/home/u/.xdg"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(
            root_from(env(&all), false),
            Some(PathBuf::from("/var/lib/edgescribe/adapters"))
        );
        assert_eq!(
            root_from(env(&all[1..]), true),
            Some(PathBuf::from("/var/lib/edgescribe/adapters"))
        );
        assert_eq!(
            root_from(env(&all[1..]), false),
            Some(PathBuf::from("/home/u/.xdg/edgescribe/adapters"))
        );
        assert_eq!(
            root_from(env(&[("XDG_CACHE_HOME", ""), ("HOME", "/home/u")]), false),
            Some(PathBuf::from("/home/u/.cache/edgescribe/adapters"))
        );
        assert_eq!(root_from(env(&[]), false), None);
    }

    #[test]
    fn checks_size_then_hash() {
        let dir =
            std::env::temp_dir().join(format!("edgescribe-cache-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a");
        std::fs::write(&path, b"abc").unwrap();
        let entry = |sha: &str, size| AdapterEntry {
            sha256: sha.into(),
            size,
            bundled: false,
        };
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(check(&path, &entry(abc, 3)), Check::Good);
        assert_eq!(check(&path, &entry(&abc.to_uppercase(), 3)), Check::Good);
        assert!(matches!(check(&path, &entry(abc, 4)), Check::Bad(m) if m.contains("3 bytes")));
        std::fs::write(&path, b"abd").unwrap();
        assert!(matches!(check(&path, &entry(abc, 3)), Check::Bad(m) if m.contains("tampered")));
        assert_eq!(check(&dir.join("none"), &entry(abc, 3)), Check::Absent);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
