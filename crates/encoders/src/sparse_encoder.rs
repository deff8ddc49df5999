//! `SparseEncoder`: SPLADE — texts to vocabulary-sized sparse vectors, compared by dot product.

use std::collections::HashMap;

use crate::config::{
    ModuleEntry, SentenceTransformersConfig, SpladePoolingConfig, read_json, read_optional, role_prompt,
};
use crate::device::LoadOptions;
use crate::embeddings::{SparseEmbeddings, SparseVector, Sparsity};
use crate::error::{EncoderError, Result};
use crate::hub::ModelFiles;
use crate::models::Task;
use crate::tokenizer::Tokenizer;
use crate::transformer::{Inputs, Transformer, to_vec};

/// Options of [`SparseEncoder::encode_with`].
///
/// ```no_run
/// use sieve_encoders::{SparseEncodeOptions, SparseEncoder};
///
/// let model = SparseEncoder::from_pretrained("rasyosef/splade-tiny")?;
/// let options = SparseEncodeOptions { max_active_dims: Some(64), batch_size: 16, ..Default::default() };
/// let embeddings = model.encode_with(&["A long document about the weather."], &options)?;
/// assert!(embeddings.row(0).nnz() <= 64);
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SparseEncodeOptions {
    /// Texts per forward pass (default 32).
    pub batch_size: usize,
    /// Keep only the largest `k` weights of each vector.
    pub max_active_dims: Option<usize>,
    /// Name of a prompt in the model's `prompts`.
    pub prompt_name: Option<String>,
    /// A literal prompt; takes precedence over `prompt_name`.
    pub prompt: Option<String>,
    /// Draw a progress bar on stderr.
    pub show_progress_bar: bool,
}

impl Default for SparseEncodeOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            max_active_dims: None,
            prompt_name: None,
            prompt: None,
            show_progress_bar: false,
        }
    }
}

/// A SPLADE encoder: a masked-LM whose logits are pooled as `max_t log(1 + relu(logit))`.
///
/// ```no_run
/// use sieve_encoders::SparseEncoder;
/// let model = SparseEncoder::from_pretrained("rasyosef/splade-tiny")?;
/// let emb = model.encode(&["The weather is lovely today."])?;
/// assert_eq!(emb.shape(), [1, 30522]);
/// for (token, weight) in model.decode(emb.row(0), 5) {
///     println!("{token}: {weight:.2}");
/// }
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
pub struct SparseEncoder {
    transformer: Transformer,
    vocab_size: usize,
    max_active_dims: Option<usize>,
    prompts: HashMap<String, String>,
}

crate::hub::pretrained_constructors!(SparseEncoder, "sparse-encoder", "rasyosef/splade-tiny");

impl SparseEncoder {
    /// Loads from resolved model files with explicit options.
    pub fn from_files(files: &ModelFiles, options: &LoadOptions) -> Result<Self> {
        let st: SentenceTransformersConfig =
            read_optional(files, "config_sentence_transformers.json")?.unwrap_or_default();
        sparse_modules(files)?;
        let transformer = Transformer::load(files, options, |_| Task::MaskedLm)?;
        let vocab_size = transformer
            .config
            .get("vocab_size")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0) as usize;
        Ok(Self {
            transformer,
            vocab_size,
            max_active_dims: None,
            prompts: st.prompts,
        })
    }

    /// Keeps at most `k` active dimensions per vector by default (`None`: all).
    pub fn with_max_active_dims(mut self, k: Option<usize>) -> Self {
        self.max_active_dims = k;
        self
    }

    /// Encodes `texts` with default options.
    ///
    /// ```no_run
    /// use sieve_encoders::SparseEncoder;
    ///
    /// let model = SparseEncoder::from_pretrained("rasyosef/splade-tiny")?;
    /// let query = model.encode_query(&["is it sunny?"])?;
    /// let docs = model.encode(&["The weather is lovely today.", "He drove to the stadium."])?;
    /// let scores = model.similarity(&query, &docs); // dot products, one row per query
    /// assert!(scores[0][0] > scores[0][1]);
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn encode(&self, texts: &[&str]) -> Result<SparseEmbeddings> {
        self.encode_with(texts, &SparseEncodeOptions::default())
    }

    /// Encodes with the `query` prompt when the model defines one.
    pub fn encode_query(&self, texts: &[&str]) -> Result<SparseEmbeddings> {
        self.encode_with(texts, &self.options_for("query"))
    }

    /// Encodes with the `document` prompt when the model defines one.
    pub fn encode_document(&self, texts: &[&str]) -> Result<SparseEmbeddings> {
        self.encode_with(texts, &self.options_for("document"))
    }

    /// Default options with the prompt for `role` (`"query"`, `"document"`) when the model
    /// defines one, as [`encode_query`](Self::encode_query) uses.
    ///
    /// ```no_run
    /// use sieve_encoders::{SparseEncodeOptions, SparseEncoder};
    /// let model = SparseEncoder::from_pretrained("rasyosef/splade-tiny")?;
    /// let options = SparseEncodeOptions { batch_size: 64, ..model.options_for("document") };
    /// let embeddings = model.encode_with(&["A long document."], &options)?;
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn options_for(&self, role: &str) -> SparseEncodeOptions {
        SparseEncodeOptions {
            prompt_name: role_prompt(&self.prompts, role),
            ..Default::default()
        }
    }

    /// Encodes `texts` with explicit options.
    pub fn encode_with(&self, texts: &[&str], options: &SparseEncodeOptions) -> Result<SparseEmbeddings> {
        let prompt = match (&options.prompt, &options.prompt_name) {
            (Some(prompt), _) => prompt.as_str(),
            (None, None) => "",
            (None, Some(name)) => self.prompts.get(name).map(String::as_str).ok_or_else(|| {
                EncoderError::InvalidArgument(format!("prompt `{name}` not found in the model's prompts"))
            })?,
        };
        let texts: Vec<String> = texts.iter().map(|t| format!("{prompt}{t}")).collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let max_active = options.max_active_dims.or(self.max_active_dims);
        let rows = self.transformer.over_batches(
            Inputs::Texts(&texts),
            options.batch_size,
            options.show_progress_bar,
            |batch| {
                let (ids, types, mask) = self.transformer.inputs(&batch);
                let dense = to_vec(self.transformer.model.splade(ids, types, &mask))?;
                Ok(dense
                    .chunks_exact(self.vocab_size)
                    .map(|row| {
                        let (indices, values) = row
                            .iter()
                            .enumerate()
                            .filter(|(_, v)| **v > 0.0)
                            .map(|(i, v)| (i as u32, *v))
                            .unzip();
                        let v = SparseVector { indices, values };
                        match max_active {
                            Some(k) => v.top_k(k),
                            None => v,
                        }
                    })
                    .collect::<Vec<_>>())
            },
        )?;
        Ok(SparseEmbeddings::new(rows, self.vocab_size))
    }

    /// `[a.len(), b.len()]` dot products.
    pub fn similarity(&self, a: &SparseEmbeddings, b: &SparseEmbeddings) -> Vec<Vec<f32>> {
        a.rows()
            .iter()
            .map(|x| b.rows().iter().map(|y| x.dot(y)).collect())
            .collect()
    }

    /// Mean active dimensions and sparsity ratio of `embeddings`.
    ///
    /// ```no_run
    /// use sieve_encoders::SparseEncoder;
    ///
    /// let model = SparseEncoder::from_pretrained("rasyosef/splade-tiny")?;
    /// let embeddings = model.encode(&["The weather is lovely today."])?;
    /// let stats = model.sparsity(&embeddings);
    /// println!("{:.1} active dims, {:.2}% zeros", stats.active_dims, 100.0 * stats.sparsity_ratio);
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn sparsity(&self, embeddings: &SparseEmbeddings) -> Sparsity {
        Sparsity::of(embeddings)
    }

    /// The `top_k` heaviest tokens of one vector, as (token, weight), heaviest first.
    ///
    /// ```no_run
    /// use sieve_encoders::SparseEncoder;
    ///
    /// let model = SparseEncoder::from_pretrained("rasyosef/splade-tiny")?;
    /// let embeddings = model.encode(&["The weather is lovely today."])?;
    /// let top = model.decode(embeddings.row(0), 3);
    /// println!("{top:?}"); // [("today", 2.54), ("lovely", 2.12), ("weather", 2.04)]
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn decode(&self, vector: &SparseVector, top_k: usize) -> Vec<(String, f32)> {
        let mut pairs: Vec<(u32, f32)> = vector
            .indices
            .iter()
            .copied()
            .zip(vector.values.iter().copied())
            .collect();
        pairs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        pairs
            .into_iter()
            .take(top_k)
            .map(|(id, w)| {
                (
                    self.transformer
                        .tokenizer
                        .inner()
                        .id_to_token(id)
                        .unwrap_or_else(|| format!("[{id}]")),
                    w,
                )
            })
            .collect()
    }

    /// The model's named prompts (`config_sentence_transformers.json`), e.g. `query`.
    pub fn prompts(&self) -> &HashMap<String, String> {
        &self.prompts
    }

    /// Vocabulary size (the embeddings' dimension).
    pub fn dim(&self) -> usize {
        self.vocab_size
    }

    /// Texts are truncated to this many tokens.
    pub fn max_seq_length(&self) -> usize {
        self.transformer.tokenizer.max_length()
    }

    /// The arithmetic the model runs in (the [`LoadOptions::dtype`] it was loaded with).
    ///
    /// ```no_run
    /// use sieve_encoders::{Dtype, LoadOptions, SparseEncoder};
    /// let options = LoadOptions { dtype: Dtype::Int8, ..LoadOptions::default() };
    /// let model = SparseEncoder::from_pretrained_with("rasyosef/splade-tiny", &options)?;
    /// assert_eq!(model.dtype(), Dtype::Int8);
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn dtype(&self) -> crate::device::Dtype {
        self.transformer.dtype
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.transformer.tokenizer
    }
}

/// Checks the modules `modules.json` lists: `MLMTransformer` (or `Transformer`) and a max / relu
/// `SpladePooling`.
pub(crate) fn sparse_modules(files: &ModelFiles) -> Result<()> {
    let modules: Option<Vec<ModuleEntry>> = read_optional(files, "modules.json")?;
    // A plain *ForMaskedLM folder (no modules.json) is MLMTransformer + SpladePooling("max").
    for module in modules.iter().flatten() {
        match module.class() {
            "Transformer" | "MLMTransformer" => {}
            "SpladePooling" => {
                let config: SpladePoolingConfig = read_json(&files.required(&format!("{}/config.json", module.path))?)?;
                if config.pooling_strategy != "max" || config.activation_function != "relu" {
                    return Err(EncoderError::InvalidArgument(format!(
                        "SpladePooling with pooling_strategy `{}` and activation `{}` is not supported (only max / relu)",
                        config.pooling_strategy, config.activation_function
                    )));
                }
            }
            other => {
                return Err(EncoderError::InvalidArgument(format!(
                    "module `{other}` of {} is not supported by SparseEncoder (supported: MLMTransformer, SpladePooling)",
                    files.name()
                )));
            }
        }
    }
    Ok(())
}
