//! A language: its adapter tensors (graph inputs), its CTC head and its vocabulary.
//!
//! Adapters are read from the hub's own `adapter.<lang>.safetensors` files, unchanged.

use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use tract_onnx::prelude::*;

use super::manifest::{Manifest, TensorSpec};
use super::vocab::Vocab;
use super::AsrError;

/// Everything language-specific. Built once per language and shared read-only (`Arc`): switching
/// language is swapping which pack the next utterance uses; the base model is untouched.
#[derive(Debug)]
pub struct LanguagePack {
    lang: String,
    /// Adapter tensors in the graph's input order. `TValue` is an `Arc<Tensor>`: every run hands the
    /// same tensors to tract without copying them.
    pub(crate) inputs: Vec<TValue>,
    /// `lm_head.weight`, `[vocab, hidden]`, row-major.
    pub(crate) head_weight: Vec<f32>,
    pub(crate) head_bias: Vec<f32>,
    pub(crate) vocab: Vocab,
    bytes: usize,
}

impl LanguagePack {
    pub fn language(&self) -> &str {
        &self.lang
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Bytes of tensor data this language holds (adapters and head).
    pub fn size_bytes(&self) -> usize {
        self.bytes
    }

    /// Reads and checks an adapter file against the manifest: every adapter tensor the graph takes must
    /// be there with the right shape, and the head must fit the language's vocabulary.
    pub fn load(
        manifest: &Manifest,
        lang: &str,
        vocab: Vocab,
        path: &Path,
    ) -> Result<LanguagePack, AsrError> {
        let bytes = std::fs::read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                AsrError::AdapterMissing {
                    lang: lang.to_string(),
                    searched: vec![path.to_path_buf()],
                }
            } else {
                AsrError::bad_adapter(path, e)
            }
        })?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| AsrError::bad_adapter(path, e))?;

        let mut inputs = Vec::with_capacity(manifest.graph.adapter_inputs.len());
        let mut total = 0;
        for spec in &manifest.graph.adapter_inputs {
            let t = read_tensor(&st, spec, path)?;
            total += t.len() * 4;
            inputs.push(TValue::from_const(Arc::new(t)));
        }
        let hidden = manifest.lm_head.hidden_size;
        let weight_spec = TensorSpec {
            name: manifest.lm_head.weight.clone(),
            shape: vec![vocab.len(), hidden],
        };
        let bias_spec = TensorSpec {
            name: manifest.lm_head.bias.clone(),
            shape: vec![vocab.len()],
        };
        let head_weight = read_tensor(&st, &weight_spec, path)?
            .into_plain_array::<f32>()
            .map_err(AsrError::engine)?;
        let head_bias = read_tensor(&st, &bias_spec, path)?
            .into_plain_array::<f32>()
            .map_err(AsrError::engine)?;
        total += (head_weight.len() + head_bias.len()) * 4;

        let expected = manifest.graph.adapter_inputs.len() + 2;
        if st.len() != expected {
            let known: Vec<&str> = manifest
                .graph
                .adapter_inputs
                .iter()
                .map(|s| s.name.as_str())
                .chain([
                    manifest.lm_head.weight.as_str(),
                    manifest.lm_head.bias.as_str(),
                ])
                .collect();
            let extra = st
                .names()
                .into_iter()
                .find(|n| !known.contains(n))
                .unwrap_or("?")
                .to_string();
            return Err(AsrError::bad_adapter(
                path,
                format!("{} tensors where the model takes {expected} (unexpected {extra:?}): made for another model?", st.len()),
            ));
        }
        Ok(LanguagePack {
            lang: lang.to_string(),
            inputs,
            head_weight: head_weight.into_raw_vec_and_offset().0,
            head_bias: head_bias.into_raw_vec_and_offset().0,
            vocab,
            bytes: total,
        })
    }
}

fn read_tensor(st: &SafeTensors, spec: &TensorSpec, path: &Path) -> Result<Tensor, AsrError> {
    let view = st
        .tensor(&spec.name)
        .map_err(|_| AsrError::bad_adapter(path, format!("missing tensor {}", spec.name)))?;
    if view.shape() != spec.shape.as_slice() {
        return Err(AsrError::bad_adapter(
            path,
            format!(
                "tensor {} has shape {:?}, the model needs {:?}",
                spec.name,
                view.shape(),
                spec.shape
            ),
        ));
    }
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => view
            .data()
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(AsrError::bad_adapter(
                path,
                format!("tensor {} is {other:?}, expected F32 or F16", spec.name),
            ))
        }
    };
    Tensor::from_shape(&spec.shape, &values).map_err(AsrError::engine)
}
