//! Reading `model.safetensors` into burn tensors, with every checkpoint-key spelling the models
//! accept kept in one table ([`KEY_RULES`]).
//!
//! Models ask for tensors by their canonical Hugging Face name relative to the backbone
//! (`embeddings.word_embeddings.weight`) or, for heads, as `transformers` names them
//! (`classifier.weight`, `cls.predictions.bias`). The table turns that name into every spelling a
//! checkpoint may use; the first one present wins.

#[cfg(feature = "train")]
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, FloatDType, Tensor, TensorData};
use safetensors::tensor::Metadata;
use safetensors::{Dtype, SafeTensors};

use crate::error::{EncoderError, Result};

/// How checkpoint keys may differ from the canonical names the models ask for.
pub(crate) struct KeyRules {
    /// Prefixes of the backbone inside task models (`BertForMaskedLM` stores `bert.encoder...`).
    pub prefixes: &'static [&'static str],
    /// Old spellings of a suffix: (canonical, alternative).
    pub renames: &'static [(&'static str, &'static str)],
    /// Tensors stored once and used twice: (asked for, stored as).
    pub tied: &'static [(&'static str, &'static str)],
}

/// The single mapping table between checkpoints and models.
pub(crate) const KEY_RULES: KeyRules = KeyRules {
    prefixes: &["", "bert.", "distilbert.", "roberta.", "mpnet.", "model."],
    renames: &[
        // TensorFlow-era BERT checkpoints name LayerNorm parameters gamma/beta.
        ("LayerNorm.weight", "LayerNorm.gamma"),
        ("LayerNorm.bias", "LayerNorm.beta"),
    ],
    tied: &[
        // BertForMaskedLM: the decoder is the word-embedding matrix and its bias lives one level up.
        ("cls.predictions.decoder.weight", "embeddings.word_embeddings.weight"),
        ("cls.predictions.decoder.bias", "cls.predictions.bias"),
        // DistilBertForMaskedLM: same tie under other names.
        ("vocab_projector.weight", "embeddings.word_embeddings.weight"),
        // RobertaForMaskedLM, XLMRobertaForMaskedLM, MPNetForMaskedLM.
        ("lm_head.decoder.weight", "embeddings.word_embeddings.weight"),
        ("lm_head.decoder.bias", "lm_head.bias"),
    ],
};

impl KeyRules {
    /// Every checkpoint key that may hold canonical `key`, in order of preference.
    pub(crate) fn candidates(&self, key: &str) -> Vec<String> {
        let mut names = vec![key.to_string()];
        for (canonical, alternative) in self.renames {
            if let Some(stem) = key.strip_suffix(canonical) {
                names.push(format!("{stem}{alternative}"));
            }
        }
        for (asked, stored) in self.tied {
            if key == *asked {
                names.push(stored.to_string());
            }
        }
        let mut out = Vec::new();
        for name in &names {
            for prefix in self.prefixes {
                let full = format!("{prefix}{name}");
                if !out.contains(&full) {
                    out.push(full);
                }
            }
        }
        out
    }
}

/// An opened `model.safetensors`, handing out tensors on one device.
pub(crate) struct Checkpoint {
    path: PathBuf,
    bytes: Vec<u8>,
    /// The parsed header, read once; tensor data starts at `data_start`.
    metadata: Metadata,
    data_start: usize,
    device: Device,
    /// What the tensors are cast to once on the device (f32 unless half precision was asked for).
    dtype: FloatDType,
    /// Set when the model is being trained: every tensor handed out is then a gradient-tracked
    /// leaf, kept here under the checkpoint key it was read from, so that each rebuild of the
    /// model shares (and an optimizer step replaces) the same leaves.
    #[cfg(feature = "train")]
    pub(crate) parameters: Option<std::cell::RefCell<Parameters>>,
}

/// One trainable tensor: a leaf on an autodiff device, in the layout the model uses it in.
#[cfg(feature = "train")]
#[derive(Clone)]
pub(crate) enum Leaf {
    One(Tensor<1>),
    Two(Tensor<2>),
    /// A PyTorch `nn.Linear` weight, kept as burn's `[in, out]` (the checkpoint stores `[out, in]`).
    Transposed(Tensor<2>),
}

/// The trainable tensors of a model by checkpoint key.
#[cfg(feature = "train")]
pub(crate) type Parameters = BTreeMap<String, Leaf>;

impl Checkpoint {
    pub(crate) fn open(path: &Path, device: &Device, dtype: FloatDType) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| EncoderError::io(path, e))?;
        // Validates the header and that every tensor lies within the file.
        let (header_len, metadata) = SafeTensors::read_metadata(&bytes).map_err(|e| EncoderError::InvalidWeights {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            metadata,
            data_start: 8 + header_len,
            device: device.clone(),
            dtype,
            #[cfg(feature = "train")]
            parameters: None,
        })
    }

    /// The values of `key` as f32, checked against `shape`.
    fn values(&self, key: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let found = self.resolve(key, shape)?;
        self.stored(&found)
    }

    /// The checkpoint key that holds canonical `key`, checked against `shape`.
    fn resolve(&self, key: &str, shape: &[usize]) -> Result<String> {
        let tried = KEY_RULES.candidates(key);
        let Some((found, info)) = tried.iter().find_map(|k| Some((k, self.metadata.info(k)?))) else {
            return Err(EncoderError::MissingTensor {
                key: key.to_string(),
                path: self.path.clone(),
                tried,
            });
        };
        if info.shape != shape {
            return Err(EncoderError::ShapeMismatch {
                key: found.clone(),
                expected: shape.to_vec(),
                found: info.shape.clone(),
            });
        }
        Ok(found.clone())
    }

    /// Every key stored in the file, in file order, with its shape.
    #[cfg(feature = "train")]
    pub(crate) fn stored_keys(&self) -> Vec<(String, Vec<usize>)> {
        let mut keys: Vec<_> = self
            .metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| (info.data_offsets.0, name, info.shape.clone()))
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, name, shape)| (name, shape)).collect()
    }

    /// The bytes stored under checkpoint key `key`, with their dtype and shape, undecoded (for
    /// copying tensors a model does not use, integer buffers included, into a new file).
    #[cfg(feature = "train")]
    pub(crate) fn raw(&self, key: &str) -> Option<(Dtype, Vec<usize>, &[u8])> {
        let info = self.metadata.info(key)?;
        let (begin, end) = info.data_offsets;
        Some((
            info.dtype,
            info.shape.clone(),
            &self.bytes[self.data_start + begin..self.data_start + end],
        ))
    }

    /// The values stored under checkpoint key `found`, decoded to f32.
    pub(crate) fn stored(&self, found: &str) -> Result<Vec<f32>> {
        let info = self.metadata.info(found).ok_or_else(|| EncoderError::MissingTensor {
            key: found.to_string(),
            path: self.path.clone(),
            tried: vec![found.to_string()],
        })?;
        let (begin, end) = info.data_offsets;
        let data = &self.bytes[self.data_start + begin..self.data_start + end];
        let values: Vec<f32> = match info.dtype {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("chunk of 8")) as f32)
                .collect(),
            other => {
                return Err(EncoderError::InvalidWeights {
                    path: self.path.clone(),
                    reason: format!("tensor `{found}` has dtype {other:?}, expected a float type"),
                });
            }
        };
        Ok(values)
    }

    pub(crate) fn tensor1(&self, key: &str, dim: usize) -> Result<Tensor<1>> {
        #[cfg(feature = "train")]
        if self.parameters.is_some() {
            return match self.leaf(key, &[dim], false)? {
                Leaf::One(t) => Ok(t),
                _ => Err(self.layout_clash(key)),
            };
        }
        let values = self.values(key, &[dim])?;
        Ok(self.on_device(TensorData::new(values, [dim])))
    }

    pub(crate) fn tensor2(&self, key: &str, shape: [usize; 2]) -> Result<Tensor<2>> {
        #[cfg(feature = "train")]
        if self.parameters.is_some() {
            return match self.leaf(key, &shape, false)? {
                Leaf::Two(t) => Ok(t),
                _ => Err(self.layout_clash(key)),
            };
        }
        let values = self.values(key, &shape)?;
        Ok(self.on_device(TensorData::new(values, shape)))
    }

    /// The trainable leaf behind canonical `key` (`transposed`: an `nn.Linear` weight, kept
    /// `[in, out]`), read from the file on first use and shared afterwards.
    #[cfg(feature = "train")]
    fn leaf(&self, key: &str, shape: &[usize], transposed: bool) -> Result<Leaf> {
        let found = self.resolve(key, shape)?;
        let parameters = self.parameters.as_ref().expect("called in training mode only");
        if let Some(leaf) = parameters.borrow().get(&found) {
            return Ok(leaf.clone());
        }
        let values = self.stored(&found)?;
        let leaf = match (shape, transposed) {
            (&[n], _) => Leaf::One(Tensor::from_data(TensorData::new(values, [n]), &self.device).require_grad()),
            (&[rows, cols], false) => {
                Leaf::Two(Tensor::from_data(TensorData::new(values, [rows, cols]), &self.device).require_grad())
            }
            (&[out, inp], true) => Leaf::Transposed(
                Tensor::from_data(TensorData::new(transpose(&values, out, inp), [inp, out]), &self.device)
                    .require_grad(),
            ),
            _ => return Err(self.layout_clash(key)),
        };
        parameters.borrow_mut().insert(found, leaf.clone());
        Ok(leaf)
    }

    /// One checkpoint tensor asked for in two layouts (say, as a linear weight and as a table).
    #[cfg(feature = "train")]
    fn layout_clash(&self, key: &str) -> EncoderError {
        EncoderError::InvalidWeights {
            path: self.path.clone(),
            reason: format!("tensor `{key}` is used in two layouts; it cannot be trained as one parameter"),
        }
    }

    /// Values decoded to f32 on the host, then cast on the device, so f16/bf16 checkpoints and
    /// half-precision loading share one path.
    fn on_device<const D: usize>(&self, data: TensorData) -> Tensor<D> {
        Tensor::<D>::from_data(data, &self.device).cast(self.dtype)
    }

    /// A PyTorch `nn.Linear(d_input, d_output)` stored as `{prefix}.weight` `[out, in]` and
    /// `{prefix}.bias`; burn keeps the weight as `[in, out]`, so it is transposed once here.
    pub(crate) fn linear(&self, prefix: &str, d_input: usize, d_output: usize) -> Result<Linear> {
        let key = format!("{prefix}.weight");
        #[cfg(feature = "train")]
        if self.parameters.is_some() {
            let Leaf::Transposed(weight) = self.leaf(&key, &[d_output, d_input], true)? else {
                return Err(self.layout_clash(&key));
            };
            return Ok(Linear {
                weight: Param::from_tensor(weight),
                bias: Some(Param::from_tensor(self.tensor1(&format!("{prefix}.bias"), d_output)?)),
            });
        }
        let weight = self.values(&key, &[d_output, d_input])?;
        let transposed = transpose(&weight, d_output, d_input);
        let weight = self.on_device(TensorData::new(transposed, [d_input, d_output]));
        let bias = self.tensor1(&format!("{prefix}.bias"), d_output)?;
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(bias)),
        })
    }

    pub(crate) fn layer_norm(&self, prefix: &str, d_model: usize, eps: f64) -> Result<LayerNorm> {
        let mut norm = LayerNormConfig::new(d_model).with_epsilon(eps).init(&self.device);
        norm.gamma = Param::from_tensor(self.tensor1(&format!("{prefix}.weight"), d_model)?);
        norm.beta = Some(Param::from_tensor(self.tensor1(&format!("{prefix}.bias"), d_model)?));
        Ok(norm)
    }

    pub(crate) fn embedding(&self, key: &str, n: usize, d_model: usize) -> Result<Embedding> {
        Ok(Embedding {
            weight: Param::from_tensor(self.tensor2(key, [n, d_model])?),
        })
    }
}

/// `[rows, cols]` row-major to `[cols, rows]`.
pub(crate) fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; values.len()];
    for (r, row) in values.chunks_exact(cols).enumerate() {
        for (c, v) in row.iter().enumerate() {
            out[c * rows + r] = *v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_cover_prefixes_renames_and_ties() {
        let c = KEY_RULES.candidates("embeddings.LayerNorm.weight");
        assert_eq!(c[0], "embeddings.LayerNorm.weight");
        assert!(c.contains(&"bert.embeddings.LayerNorm.gamma".to_string()));
        let c = KEY_RULES.candidates("cls.predictions.decoder.weight");
        assert!(c.contains(&"bert.embeddings.word_embeddings.weight".to_string()));
        // RoBERTa / XLM-R / MPNet masked-LM heads: decoder tied, bias one level up.
        let c = KEY_RULES.candidates("lm_head.decoder.weight");
        assert!(c.contains(&"roberta.embeddings.word_embeddings.weight".to_string()));
        assert!(c.contains(&"mpnet.embeddings.word_embeddings.weight".to_string()));
        assert!(
            KEY_RULES
                .candidates("lm_head.decoder.bias")
                .contains(&"lm_head.bias".to_string())
        );
    }
}
