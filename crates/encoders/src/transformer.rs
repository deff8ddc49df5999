//! sentence-transformers' `Transformer` module: a Hugging Face model with its tokenizer and
//! maximum sequence length, read from the model folder.

use serde_json::Value;

use crate::config::{SentenceBertConfig, TokenizerConfig, read_json, read_optional};
use crate::error::Result;
use crate::hub::ModelFiles;
use crate::models::{Model, Task};
use crate::sentence_transformer::LoadOptions;
use crate::tokenizer::{TokenBatch, Tokenizer};

/// Hugging Face's "no limit" sentinel for `model_max_length`.
const NO_MAX_LENGTH: f64 = 1e12;

pub(crate) struct Transformer {
    pub(crate) tokenizer: Tokenizer,
    pub(crate) model: Model,
    pub(crate) config: Value,
    pub(crate) device: burn::tensor::Device,
}

impl Transformer {
    /// Loads tokenizer and model; `task` may look at `config.json` (e.g. for `num_labels`).
    pub(crate) fn load(files: &ModelFiles, options: &LoadOptions, task: impl FnOnce(&Value) -> Task) -> Result<Self> {
        let config_path = files.required("config.json")?;
        let config: Value = read_json(&config_path)?;
        let sbert: SentenceBertConfig = read_optional(files, "sentence_bert_config.json")?.unwrap_or_default();
        let tokenizer_config: TokenizerConfig = read_optional(files, "tokenizer_config.json")?.unwrap_or_default();
        let weights = files.required("model.safetensors")?;
        let tokenizer_path = files.required("tokenizer.json")?;

        let (device, dtype) = options.device.burn_with(options.dtype)?;
        let model = Model::load(&config, &config_path, &weights, task(&config), &device, dtype)?;
        // sentence-transformers: the configured max_seq_length, else the smaller of the
        // tokenizer's and the position table's limits.
        let max_length = sbert.max_seq_length.unwrap_or_else(|| {
            let positions = model.max_position_embeddings();
            match tokenizer_config.model_max_length {
                Some(m) if m > 0.0 && m < NO_MAX_LENGTH => (m as usize).min(positions),
                _ => positions,
            }
        });
        let tokenizer = Tokenizer::from_file(
            &tokenizer_path,
            max_length,
            sbert.do_lower_case,
            tokenizer_config.pad_token(),
        )?;
        Ok(Self {
            tokenizer,
            model,
            config,
            device,
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
}

/// Reads a float tensor back to the host.
pub(crate) fn to_vec<const D: usize>(t: burn::tensor::Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_to_vec::<f32>()
        .map_err(|e| crate::EncoderError::Backend(format!("{e:?}")))
}
