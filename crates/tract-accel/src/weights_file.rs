//! Reads an ONNX model's external weights (`model.int8.onnx.data`) for tract's parser.
//!
//! Why not tract's default (`MmapDataResolver`): it maps the whole data file again for every
//! initializer (~600 at MMS-1B), faults the tensor's pages of the mapping in, copies them out and
//! unmaps. This keeps one open file and copies each tensor's bytes straight from the page cache
//! with `pread`: no mapping, no faults on file pages, and none of the file counted in the process's
//! RSS while the model loads.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use tract_onnx::data_resolver::ModelDataResolver;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{ensure, format_err};

/// A [`ModelDataResolver`] that keeps the last external-data file open (MMS exports have one).
#[derive(Default)]
pub struct PreadResolver {
    open: Mutex<Option<(PathBuf, Arc<File>, u64)>>,
}

impl PreadResolver {
    fn file(&self, path: &Path) -> TractResult<(Arc<File>, u64)> {
        let mut open = self.open.lock().map_err(|_| format_err!("poisoned"))?;
        if let Some((p, file, size)) = open.as_ref() {
            if p == path {
                return Ok((file.clone(), *size));
            }
        }
        let file = File::open(path).with_context(|| format!("opening {path:?}"))?;
        let size = file.metadata()?.len();
        let file = Arc::new(file);
        *open = Some((path.to_path_buf(), file.clone(), size));
        Ok((file, size))
    }
}

impl ModelDataResolver for PreadResolver {
    fn read_bytes_from_path(
        &self,
        buf: &mut Vec<u8>,
        path: &Path,
        offset: usize,
        length: Option<usize>,
    ) -> TractResult<()> {
        let (file, size) = self.file(path)?;
        let size = usize::try_from(size)?;
        ensure!(
            offset <= size,
            "external data offset {offset} is past the end of {path:?} ({size} bytes)"
        );
        let length = length.unwrap_or(size - offset);
        ensure!(
            length <= size - offset,
            "external data {offset}+{length} runs past the end of {path:?} ({size} bytes)"
        );
        let start = buf.len();
        buf.resize(start + length, 0);
        if let Err(e) = file.read_exact_at(&mut buf[start..], offset as u64) {
            buf.truncate(start);
            return Err(e)
                .with_context(|| format!("reading {length} bytes at {offset} of {path:?}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("edgescribe-weights-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_ranges_appends_and_switches_files() {
        let a = scratch("a.data", &(0..=255u8).collect::<Vec<_>>());
        let b = scratch("b.data", b"other file");
        let resolver = PreadResolver::default();
        let mut buf = vec![7u8];
        resolver
            .read_bytes_from_path(&mut buf, &a, 10, Some(4))
            .unwrap();
        assert_eq!(
            buf,
            [7, 10, 11, 12, 13],
            "appended after what the buffer held"
        );
        let mut rest = Vec::new();
        resolver
            .read_bytes_from_path(&mut rest, &a, 250, None)
            .unwrap();
        assert_eq!(
            rest,
            [250, 251, 252, 253, 254, 255],
            "no length: to the end"
        );
        let mut other = Vec::new();
        resolver
            .read_bytes_from_path(&mut other, &b, 6, Some(4))
            .unwrap();
        assert_eq!(other, b"file");
        let mut again = Vec::new();
        resolver
            .read_bytes_from_path(&mut again, &a, 0, Some(2))
            .unwrap();
        assert_eq!(again, [0, 1]);
    }

    #[test]
    fn ranges_past_the_end_are_errors_naming_the_file() {
        let a = scratch("short.data", b"0123456789");
        let resolver = PreadResolver::default();
        let mut buf = Vec::new();
        let past = resolver.read_bytes_from_path(&mut buf, &a, 11, None);
        assert!(format!("{:#}", past.unwrap_err()).contains("short.data"));
        let long = resolver.read_bytes_from_path(&mut buf, &a, 8, Some(3));
        assert!(format!("{:#}", long.unwrap_err()).contains("past the end"));
        let missing = resolver.read_bytes_from_path(&mut buf, &a.with_file_name("none"), 0, None);
        assert!(missing.is_err());
        assert!(buf.is_empty(), "a failed read leaves the buffer as it was");
    }
}
