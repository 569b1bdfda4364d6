//! `manifest.json`, written by `models/export.py`: what the graph expects and what every file should be.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::AsrError;

pub const MANIFEST_FILE: &str = "manifest.json";

/// A relative path with no `..`: it cannot leave the directory it is joined to.
fn is_inside(rel: &str) -> bool {
    let path = Path::new(rel);
    !rel.is_empty()
        && path.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub license: License,
    pub architecture: Architecture,
    pub audio: AudioSpec,
    pub graph: Graph,
    pub lm_head: LmHead,
    pub vocab: VocabSpec,
    pub default_language: String,
    /// Relative path of a language's adapter inside the model directory, `{}` standing for the code.
    pub adapter_file_template: String,
    /// Every adapter the source checkpoint has, bundled or not, with the hash a pulled copy must have.
    pub adapters: BTreeMap<String, AdapterEntry>,
    /// Every file of the export (relative path) with its size and sha256.
    pub files: BTreeMap<String, FileEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct License {
    pub id: String,
    pub note: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Architecture {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub conv_kernel: Vec<usize>,
    pub conv_stride: Vec<usize>,
    pub adapter_attn_dim: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AudioSpec {
    pub sample_rate: u32,
    pub frame_stride_samples: usize,
    pub normalize_eps: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Graph {
    pub file: String,
    pub quantization: String,
    pub input: String,
    pub output: String,
    pub adapter_inputs: Vec<TensorSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LmHead {
    pub weight: String,
    pub bias: String,
    pub hidden_size: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VocabSpec {
    pub file: String,
    pub blank: String,
    pub word_delimiter: String,
    pub never_printed: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AdapterEntry {
    pub sha256: String,
    pub size: u64,
    pub bundled: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FileEntry {
    pub sha256: String,
    pub size: u64,
}

impl Manifest {
    pub fn load(dir: &Path) -> Result<Manifest, AsrError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| AsrError::model_file(&path, e))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| AsrError::model_file(&path, e))?;
        if manifest.format != 1 {
            return Err(AsrError::model_file(
                &path,
                format!(
                    "format {} is not supported (this edgescribe reads format 1)",
                    manifest.format
                ),
            ));
        }
        manifest
            .validate()
            .map_err(|reason| AsrError::model_file(&path, reason))?;
        Ok(manifest)
    }

    /// What the types cannot say: every number the recogniser computes with is in range, and every
    /// file named stays inside the model directory. A manifest is input like any other: a zero
    /// sample rate or kernel must be an error here, not a division by zero or an underflow later.
    pub fn validate(&self) -> Result<(), String> {
        use crate::config::within;
        let audio = &self.audio;
        if audio.sample_rate != crate::audio::MODEL_RATE_HZ {
            return Err(format!(
                "audio.sample_rate is {}: MMS models take {} Hz",
                audio.sample_rate,
                crate::audio::MODEL_RATE_HZ
            ));
        }
        within(audio.frame_stride_samples, 1..=100_000)
            .map_err(|r| format!("audio.frame_stride_samples: {r}"))?;
        if !(audio.normalize_eps.is_finite() && (0.0..=1.0).contains(&audio.normalize_eps)) {
            return Err(format!(
                "audio.normalize_eps is {}: must be 0 to 1",
                audio.normalize_eps
            ));
        }
        let a = &self.architecture;
        if a.conv_kernel.is_empty() || a.conv_kernel.len() != a.conv_stride.len() {
            return Err(format!(
                "architecture: {} conv_kernel and {} conv_stride values: one of each per layer",
                a.conv_kernel.len(),
                a.conv_stride.len()
            ));
        }
        within(a.conv_kernel.len(), 1..=32)
            .map_err(|r| format!("architecture.conv_kernel: {r} layers"))?;
        for (k, s) in a.conv_kernel.iter().zip(&a.conv_stride) {
            within(*k, 1..=1024).map_err(|r| format!("architecture.conv_kernel: {r}"))?;
            within(*s, 1..=1024).map_err(|r| format!("architecture.conv_stride: {r}"))?;
        }
        within(a.hidden_size, 1..=1 << 16).map_err(|r| format!("architecture.hidden_size: {r}"))?;
        within(self.lm_head.hidden_size, 1..=1 << 16)
            .map_err(|r| format!("lm_head.hidden_size: {r}"))?;
        for input in &self.graph.adapter_inputs {
            let elements = input
                .shape
                .iter()
                .try_fold(1usize, |n, d| (*d > 0).then(|| n.checked_mul(*d)).flatten());
            if elements.is_none_or(|n| n > 1 << 28) {
                return Err(format!(
                    "graph.adapter_inputs: {} has shape {:?}: every dimension > 0, at most 2^28 values",
                    input.name, input.shape
                ));
            }
        }
        if !self.adapter_file_template.contains("{}") {
            return Err("adapter_file_template must contain {} (the language code)".into());
        }
        let named = [
            ("graph.file", self.graph.file.as_str()),
            ("vocab.file", self.vocab.file.as_str()),
            ("adapter_file_template", self.adapter_file_template.as_str()),
        ];
        for (key, rel) in named
            .into_iter()
            .chain(self.files.keys().map(|k| ("files", k.as_str())))
        {
            if !is_inside(rel) {
                return Err(format!(
                    "{key}: {rel:?} must be a relative path inside the model directory"
                ));
            }
        }
        Ok(())
    }

    /// Checks that a file of the export exists with the size the manifest records. A full sha256 of a
    /// 1 GB model would cost seconds at every start on a Pi; the size catches truncated copies, and tract
    /// rejects a corrupt graph when it parses it.
    pub fn check_file(&self, dir: &Path, rel: &str) -> Result<PathBuf, AsrError> {
        let path = dir.join(rel);
        let meta = std::fs::metadata(&path).map_err(|e| AsrError::model_file(&path, e))?;
        if let Some(entry) = self.files.get(rel) {
            if entry.size != meta.len() {
                return Err(AsrError::model_file(
                    &path,
                    format!(
                        "{} bytes, the manifest says {} (truncated or replaced?)",
                        meta.len(),
                        entry.size
                    ),
                ));
            }
        }
        Ok(path)
    }

    pub fn adapter_path(&self, dir: &Path, lang: &str) -> PathBuf {
        dir.join(self.adapter_file_template.replace("{}", lang))
    }

    /// Fewest 16 kHz samples that give one output frame: the receptive field of the conv front end.
    pub fn min_samples(&self) -> usize {
        let a = &self.architecture;
        a.conv_kernel
            .iter()
            .zip(&a.conv_stride)
            .rev()
            .fold(1, |need, (k, s)| (need - 1) * s + k)
    }

    /// Number of output frames the conv front end makes of `samples` samples.
    pub fn frames_for(&self, samples: usize) -> usize {
        let a = &self.architecture;
        a.conv_kernel
            .iter()
            .zip(&a.conv_stride)
            .fold(
                samples,
                |len, (k, s)| {
                    if len < *k {
                        0
                    } else {
                        (len - k) / s + 1
                    }
                },
            )
    }

    pub fn frame_ms(&self) -> f64 {
        self.audio.frame_stride_samples as f64 * 1000.0 / self.audio.sample_rate as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mms_arch() -> Architecture {
        Architecture {
            hidden_size: 1280,
            num_hidden_layers: 48,
            conv_kernel: vec![10, 3, 3, 3, 3, 2, 2],
            conv_stride: vec![5, 2, 2, 2, 2, 2, 2],
            adapter_attn_dim: 16,
        }
    }

    fn with_arch(architecture: Architecture) -> Manifest {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/mms-tiny/fp32/manifest.json"),
        )
        .unwrap();
        let mut m: Manifest = serde_json::from_str(&text).unwrap();
        m.architecture = architecture;
        m
    }

    #[test]
    fn receptive_field_and_frame_count_match_wav2vec2() {
        let m = with_arch(mms_arch());
        // wav2vec2's well-known numbers: 400-sample (25 ms) receptive field, 320-sample (20 ms) hop.
        assert_eq!(m.min_samples(), 400);
        assert_eq!(m.frames_for(399), 0);
        assert_eq!(m.frames_for(400), 1);
        assert_eq!(m.frames_for(16000), 49);
        assert_eq!(m.frames_for(28213), 87);
        assert_eq!(m.frame_ms(), 20.0);
    }

    /// Every shipped export is valid; each field an attacker or a broken export could set wrong is
    /// refused by name before anything divides by it or joins it to a path.
    #[test]
    fn hostile_manifests_are_refused_by_name() {
        let good = with_arch(mms_arch());
        good.validate().unwrap();
        let refused = |change: &dyn Fn(&mut Manifest), needle: &str| {
            let mut m = with_arch(mms_arch());
            change(&mut m);
            let e = m.validate().unwrap_err();
            assert!(e.contains(needle), "{needle}: {e}");
        };
        refused(&|m| m.audio.sample_rate = 0, "sample_rate");
        refused(&|m| m.audio.sample_rate = 8000, "sample_rate");
        refused(
            &|m| m.audio.frame_stride_samples = 0,
            "frame_stride_samples",
        );
        refused(&|m| m.audio.normalize_eps = f64::NAN, "normalize_eps");
        refused(&|m| m.architecture.conv_kernel[3] = 0, "conv_kernel");
        refused(&|m| m.architecture.conv_stride[0] = 0, "conv_stride");
        refused(
            &|m| m.architecture.conv_stride.pop().map(drop).unwrap_or(()),
            "conv_stride values",
        );
        refused(&|m| m.architecture.conv_kernel.clear(), "conv_kernel");
        refused(
            &|m| m.architecture.conv_kernel[0] = usize::MAX,
            "conv_kernel",
        );
        refused(&|m| m.lm_head.hidden_size = 0, "lm_head.hidden_size");
        refused(
            &|m| m.graph.adapter_inputs[0].shape = vec![usize::MAX, 2],
            "adapter_inputs",
        );
        refused(
            &|m| m.graph.adapter_inputs[0].shape = vec![0],
            "adapter_inputs",
        );
        refused(&|m| m.graph.file = "../../etc/passwd".into(), "graph.file");
        refused(&|m| m.vocab.file = "/etc/passwd".into(), "vocab.file");
        refused(
            &|m| m.adapter_file_template = "adapters/x.safetensors".into(),
            "{}",
        );
        refused(
            &|m| m.adapter_file_template = "../{}.safetensors".into(),
            "adapter_file_template",
        );
    }

    #[test]
    fn the_shipped_manifests_are_valid() {
        for dir in [
            "models/bundled",
            "tests/fixtures/mms-tiny/fp32",
            "tests/fixtures/mms-tiny/int8",
        ] {
            Manifest::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
                .unwrap_or_else(|e| panic!("{dir}: {e}"));
        }
    }
}
