//! Optional disk copy of the outbox, so transcripts survive a restart of the daemon during a
//! broker outage.
//!
//! One file per transcript, `<id>.json` with a zero-padded id so that name order is send order;
//! written to a temporary name and renamed, so a crash never leaves half a file under a final
//! name. Files are removed when the broker acknowledges them. No fsync: the spool protects
//! against daemon restarts, and an SD card should not be flushed for every utterance; after a
//! power cut a file may be empty, and is then skipped.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Creates the directory if needed.
    pub fn open(dir: &Path) -> io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        Ok(Spool {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}.json"))
    }

    /// Every complete transcript left by earlier runs, oldest first. Unreadable or empty files
    /// are removed and reported in the log, never fatal.
    pub fn load(&self) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") {
                // A write interrupted by a crash.
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let Some(id) = name
                .strip_suffix(".json")
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            match std::fs::read(entry.path()) {
                Ok(bytes) if !bytes.is_empty() => found.push((id, bytes)),
                Ok(_) => {
                    log::warn!(
                        "spool: {} is empty (power cut?), skipped",
                        entry.path().display()
                    );
                    let _ = std::fs::remove_file(entry.path());
                }
                Err(e) => log::warn!("spool: {}: {e}, skipped", entry.path().display()),
            }
        }
        found.sort_by_key(|(id, _)| *id);
        Ok(found)
    }

    pub fn write(&self, id: u64, payload: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!(".tmp-{id:020}"));
        std::fs::write(&tmp, payload)?;
        std::fs::rename(&tmp, self.path(id))
    }

    /// Removes a delivered or dropped transcript; a file already gone is fine.
    pub fn remove(&self, id: u64) -> io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_id_order_and_skips_debris() {
        let dir = std::env::temp_dir().join(format!("es-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Spool::open(&dir).unwrap();
        s.write(10, b"ten").unwrap();
        s.write(2, b"two").unwrap();
        s.write(300, b"three hundred").unwrap();
        std::fs::write(dir.join(".tmp-00000000000000000400"), b"half").unwrap();
        std::fs::write(dir.join("00000000000000000500.json"), b"").unwrap();
        std::fs::write(dir.join("README"), b"not ours").unwrap();
        s.remove(300).unwrap();
        s.remove(300).unwrap();
        let loaded = Spool::open(&dir).unwrap().load().unwrap();
        assert_eq!(loaded, vec![(2, b"two".to_vec()), (10, b"ten".to_vec())]);
        assert!(!dir.join(".tmp-00000000000000000400").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
