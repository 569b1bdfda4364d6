//! Local sources: a directory (a USB stick, an NFS mount, a mirror made with `huggingface-cli`).

use std::fs::File;
use std::io::{ErrorKind, Seek, SeekFrom};
use std::path::PathBuf;

use super::source::{Download, FetchError, Source};

#[derive(Debug)]
pub(crate) struct DirSource {
    /// A path with `{lang}` in it.
    template: PathBuf,
}

impl DirSource {
    pub fn new(template: PathBuf) -> DirSource {
        DirSource { template }
    }

    fn path(&self, lang: &str) -> PathBuf {
        PathBuf::from(self.template.to_string_lossy().replace("{lang}", lang))
    }
}

impl Source for DirSource {
    fn open(&self, lang: &str, offset: u64) -> Result<Download, FetchError> {
        let path = self.path(lang);
        let mut file = File::open(&path).map_err(|e| {
            let msg = format!("{}: {e}", path.display());
            match e.kind() {
                // The directory itself is gone: an unmounted stick or share, maybe back later.
                ErrorKind::NotFound if !path.parent().is_some_and(|p| p.is_dir()) => {
                    FetchError::Transient(msg)
                }
                ErrorKind::NotFound => FetchError::Permanent(format!(
                    "{msg} (the source has no adapter for this language: check --source)"
                )),
                ErrorKind::PermissionDenied => FetchError::Permanent(msg),
                _ => FetchError::Transient(msg),
            }
        })?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| FetchError::Transient(format!("{}: {e}", path.display())))?;
        Ok(Download {
            reader: Box::new(file),
            start: offset,
        })
    }

    fn describe(&self, lang: &str) -> String {
        self.path(lang).display().to_string()
    }
}
