//! sentence-transformers' `Transformer` module: a Hugging Face model with its tokenizer and
//! maximum sequence length, read from the model folder.

use std::path::Path;

use serde_json::Value;

use crate::batching::sorted_batches;
use crate::config::{SentenceBertConfig, TokenizerConfig, read_json, read_optional};
use crate::device::LoadOptions;
use crate::error::{EncoderError, Result};
use crate::hub::ModelFiles;
use crate::models::{Model, Task};
use crate::tokenizer::{TokenBatch, Tokenizer};

/// Hugging Face's "no limit" sentinel for `model_max_length`.
const NO_MAX_LENGTH: f64 = 1e12;

pub(crate) struct Transformer {
    pub(crate) tokenizer: Tokenizer,
    pub(crate) model: Model,
    pub(crate) config: Value,
    pub(crate) device: burn::tensor::Device,
    /// The arithmetic the model was loaded in.
    pub(crate) dtype: crate::device::Dtype,
}

impl Transformer {
    /// Loads tokenizer and model; `task` may look at `config.json` (e.g. for `num_labels`).
    pub(crate) fn load(files: &ModelFiles, options: &LoadOptions, task: impl FnOnce(&Value) -> Task) -> Result<Self> {
        let config_path = files.required("config.json")?;
        let config: Value = read_json(&config_path)?;
        let weights = files.required("model.safetensors")?;
        let device = options.device.burn_with(options.dtype)?;
        let model = Model::load(&config, &config_path, &weights, task(&config), &device, options.dtype)?;
        let tokenizer = load_tokenizer(files, &config, &config_path, model.max_position_embeddings())?;
        Ok(Self {
            tokenizer,
            model,
            config,
            device,
            dtype: options.dtype,
        })
    }

    pub(crate) fn inputs(
        &self,
        batch: &TokenBatch,
    ) -> (
        burn::tensor::Tensor<2, burn::tensor::Int>,
        burn::tensor::Tensor<2, burn::tensor::Int>,
        burn::tensor::Tensor<2>,
    ) {
        batch.tensors(&self.device)
    }

    /// Tokenizes `inputs` in length-sorted batches (one batch ahead of the model, see
    /// [`sorted_batches`]) and returns `run`'s per-item outputs in the input order.
    pub(crate) fn over_batches<T>(
        &self,
        inputs: Inputs<'_>,
        batch_size: usize,
        show_progress_bar: bool,
        run: impl FnMut(TokenBatch) -> Result<Vec<T>>,
    ) -> Result<Vec<T>> {
        let lengths: Vec<usize> = match inputs {
            Inputs::Texts(texts) => texts.iter().map(|t| t.chars().count()).collect(),
            Inputs::Pairs(pairs) => pairs
                .iter()
                .map(|(a, b)| a.chars().count() + b.chars().count())
                .collect(),
        };
        let tokenize = |idx: &[usize]| match inputs {
            Inputs::Texts(texts) => {
                let batch: Vec<&str> = idx.iter().map(|&i| texts[i]).collect();
                self.tokenizer.encode(&batch)
            }
            Inputs::Pairs(pairs) => {
                let batch: Vec<(&str, &str)> = idx.iter().map(|&i| pairs[i]).collect();
                self.tokenizer.encode_pairs(&batch)
            }
        };
        sorted_batches(&lengths, batch_size, show_progress_bar, tokenize, run)
    }
}

/// The model folder's tokenizer, truncating at sentence-transformers' `max_seq_length`.
pub(crate) fn load_tokenizer(
    files: &ModelFiles,
    config: &Value,
    config_path: &Path,
    positions: usize,
) -> Result<Tokenizer> {
    let sbert: SentenceBertConfig = read_optional(files, "sentence_bert_config.json")?.unwrap_or_default();
    let tokenizer_config: TokenizerConfig = read_optional(files, "tokenizer_config.json")?.unwrap_or_default();
    let tokenizer_path = files.required("tokenizer.json")?;
    // sentence-transformers: the configured max_seq_length, else the smaller of the
    // tokenizer's and the position table's limits.
    // A max_seq_length beyond the position table is clamped to it: longer inputs have no
    // position embedding to look up.
    let max_length = match sbert.max_seq_length {
        Some(m) => m.min(positions),
        None => match tokenizer_config.model_max_length {
            Some(m) if m > 0.0 && m < NO_MAX_LENGTH => (m as usize).min(positions),
            _ => positions,
        },
    };
    let tokenizer = Tokenizer::from_file(
        &tokenizer_path,
        max_length,
        sbert.do_lower_case,
        tokenizer_config.pad_token(),
    )?;
    check_vocabulary(config, config_path, &tokenizer, &tokenizer_path)?;
    Ok(tokenizer)
}

/// Every id the tokenizer can produce must index the model's embedding table (`vocab_size`
/// rows, checked against the weights at load); a larger id would fail mid-encode.
fn check_vocabulary(config: &Value, config_path: &Path, tokenizer: &Tokenizer, tokenizer_path: &Path) -> Result<()> {
    let Some(vocab_size) = config.get("vocab_size").and_then(Value::as_u64) else {
        return Ok(()); // each family's config parser has already required it
    };
    let top = tokenizer.inner().get_vocab(true).into_values().max().unwrap_or(0);
    if u64::from(top) >= vocab_size {
        return Err(EncoderError::InvalidConfig {
            path: config_path.to_path_buf(),
            reason: format!(
                "vocab_size is {vocab_size} but {} has token ids up to {top}",
                tokenizer_path.display()
            ),
        });
    }
    Ok(())
}

/// What a model reads: single texts (bi-encoders, SPLADE) or text pairs (cross-encoders).
#[derive(Clone, Copy)]
pub(crate) enum Inputs<'a> {
    Texts(&'a [&'a str]),
    Pairs(&'a [(&'a str, &'a str)]),
}

/// Reads a float tensor back to the host.
pub(crate) fn to_vec<const D: usize>(t: burn::tensor::Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_to_vec::<f32>()
        .map_err(|e| crate::EncoderError::Backend(format!("{e:?}")))
}
