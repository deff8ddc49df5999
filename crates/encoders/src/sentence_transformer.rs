//! `SentenceTransformer`: texts to fixed-size dense embeddings (a bi-encoder).

use std::collections::HashMap;

use crate::config::{ModuleEntry, PoolingConfig, SentenceTransformersConfig, read_optional, role_prompt};
use crate::device::LoadOptions;
use crate::embeddings::Embeddings;
use crate::error::{EncoderError, Result};
use crate::hub::ModelFiles;
use crate::models::Task;
use crate::pooling::{normalize, normalize_row, pool};
use crate::quantization::{Precision, QuantizedEmbeddings, quantize_embeddings};
use crate::similarity::SimilarityFn;
use crate::tokenizer::Tokenizer;
use crate::transformer::{Inputs, Transformer, to_vec};

/// Options of [`SentenceTransformer::encode_with`], named as in Python's `encode()`.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// Texts per forward pass (default 32).
    pub batch_size: usize,
    /// L2-normalise the outputs even if the model has no `Normalize` module.
    pub normalize_embeddings: bool,
    /// Name of a prompt in the model's `prompts` (e.g. `"query"`), prepended to every text.
    pub prompt_name: Option<String>,
    /// A literal prompt; takes precedence over `prompt_name`.
    pub prompt: Option<String>,
    /// Draw a progress bar on stderr.
    pub show_progress_bar: bool,
    /// Output precision (default float32). Anything else needs
    /// [`SentenceTransformer::encode_quantized`], which returns integers;
    /// [`encode_with`](SentenceTransformer::encode_with) refuses it rather than ignore it.
    pub precision: Precision,
    /// Keep only the first this many dimensions (Matryoshka models); overrides the model's
    /// [`truncate_dim`](SentenceTransformer::truncate_dim). As in sentence-transformers the
    /// model's own `Normalize` runs before the cut, and `normalize_embeddings` after it.
    pub truncate_dim: Option<usize>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            normalize_embeddings: false,
            prompt_name: None,
            prompt: None,
            show_progress_bar: false,
            precision: Precision::Float32,
            truncate_dim: None,
        }
    }
}

/// A bi-encoder: `Transformer → Pooling → (Normalize)` as listed in `modules.json`.
///
/// ```no_run
/// use sieve_encoders::SentenceTransformer;
/// let model = SentenceTransformer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")?;
/// let embeddings = model.encode(&["The weather is lovely today.", "It's so sunny outside!"])?;
/// assert_eq!(embeddings.shape(), [2, 384]);
/// let similarities = model.similarity(&embeddings, &embeddings)?;
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
pub struct SentenceTransformer {
    transformer: Transformer,
    pooling: PoolingConfig,
    normalize: bool,
    similarity_fn: SimilarityFn,
    prompts: HashMap<String, String>,
    default_prompt_name: Option<String>,
    dim: usize,
    truncate_dim: Option<usize>,
}

crate::hub::pretrained_constructors!(SentenceTransformer, "sentence-transformers", "all-MiniLM-L6-v2");

impl SentenceTransformer {
    /// Loads from resolved model files with explicit options.
    pub fn from_files(files: &ModelFiles, options: &LoadOptions) -> Result<Self> {
        let st: SentenceTransformersConfig =
            read_optional(files, "config_sentence_transformers.json")?.unwrap_or_default();
        let (pooling, normalize) = dense_modules(files)?;
        let transformer = Transformer::load(files, options, |_| Task::FeatureExtraction)?;
        let similarity_fn = st
            .similarity_fn_name
            .as_deref()
            .map(str::parse)
            .transpose()?
            .unwrap_or_default();
        let dim = transformer.model.hidden_size() * pooling.modes.len();
        Ok(Self {
            transformer,
            pooling,
            normalize,
            similarity_fn,
            prompts: st.prompts,
            default_prompt_name: st.default_prompt_name,
            dim,
            truncate_dim: None,
        })
    }

    /// `SentenceTransformer(..., truncate_dim=...)`: every encode keeps only the first `dim`
    /// dimensions (for models trained with a Matryoshka loss, whose leading dimensions carry
    /// most of the meaning); `None` keeps them all. [`embedding_dim`](Self::embedding_dim)
    /// reports the truncated width. Zero, or more than the model has, is refused.
    ///
    /// ```no_run
    /// use sieve_encoders::SentenceTransformer;
    /// let model = SentenceTransformer::from_pretrained("all-MiniLM-L6-v2")?.with_truncate_dim(Some(128))?;
    /// assert_eq!(model.embedding_dim(), 128);
    /// assert_eq!(model.encode(&["Matryoshka dolls nest."])?.shape(), [1, 128]);
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn with_truncate_dim(mut self, dim: Option<usize>) -> Result<Self> {
        self.truncate_dim = self.check_truncate_dim(dim)?;
        Ok(self)
    }

    /// The width encodes truncate to, when set ([`with_truncate_dim`](Self::with_truncate_dim)).
    pub fn truncate_dim(&self) -> Option<usize> {
        self.truncate_dim
    }

    fn check_truncate_dim(&self, dim: Option<usize>) -> Result<Option<usize>> {
        match dim {
            Some(d) if d == 0 || d > self.dim => Err(EncoderError::InvalidArgument(format!(
                "truncate_dim {d} is outside 1..={} (the model's embedding width)",
                self.dim
            ))),
            dim => Ok(dim),
        }
    }

    /// Encodes `texts` into an `[n, embedding_dim]` matrix with default options.
    pub fn encode(&self, texts: &[&str]) -> Result<Embeddings> {
        self.encode_with(texts, &EncodeOptions::default())
    }

    /// Encodes with the query prompt, when the model defines one.
    pub fn encode_query(&self, texts: &[&str]) -> Result<Embeddings> {
        self.encode_with(texts, &self.options_for("query"))
    }

    /// Encodes with the document prompt, when the model defines one.
    pub fn encode_document(&self, texts: &[&str]) -> Result<Embeddings> {
        self.encode_with(texts, &self.options_for("document"))
    }

    /// Default options with the prompt for `role` (`"query"`, `"document"`) when the model
    /// defines one: what [`encode_query`](Self::encode_query) and
    /// [`encode_document`](Self::encode_document) use.
    ///
    /// ```no_run
    /// use sieve_encoders::{EncodeOptions, SentenceTransformer};
    /// let model = SentenceTransformer::from_pretrained("all-MiniLM-L6-v2")?;
    /// let options = EncodeOptions { batch_size: 64, ..model.options_for("document") };
    /// let embeddings = model.encode_with(&["A long document."], &options)?;
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn options_for(&self, role: &str) -> EncodeOptions {
        EncodeOptions {
            prompt_name: role_prompt(&self.prompts, role),
            ..Default::default()
        }
    }

    /// Encodes `texts` with explicit options (`precision` must be float32: see
    /// [`encode_quantized`](Self::encode_quantized)).
    pub fn encode_with(&self, texts: &[&str], options: &EncodeOptions) -> Result<Embeddings> {
        if options.precision != Precision::Float32 {
            return Err(EncoderError::InvalidArgument(format!(
                "precision {} gives integer embeddings: call encode_quantized",
                options.precision
            )));
        }
        self.encode_float(texts, options)
    }

    /// `encode(texts, precision=...)`: encodes, then quantizes to `options.precision` as
    /// [`quantize_embeddings`] does with no calibration — `int8` / `uint8` ranges come from these
    /// embeddings themselves (at least two texts), as in Python. To give queries and documents
    /// the same buckets, encode in float32 and quantize both with one
    /// [`Int8Ranges`](crate::quantization::Int8Ranges) instead.
    ///
    /// ```no_run
    /// use sieve_encoders::{EncodeOptions, Precision, SentenceTransformer};
    /// use sieve_encoders::quantization::hamming_distance;
    ///
    /// let model = SentenceTransformer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")?;
    /// let options = EncodeOptions { precision: Precision::Ubinary, ..Default::default() };
    /// let bits = model.encode_quantized(&["The weather is lovely today.", "It's so sunny outside!"], &options)?;
    /// assert_eq!(bits.shape(), [2, 48]); // 384 dimensions in 48 bytes
    /// let distance = hamming_distance(bits.row_bytes(0).unwrap(), bits.row_bytes(1).unwrap())?;
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn encode_quantized(&self, texts: &[&str], options: &EncodeOptions) -> Result<QuantizedEmbeddings> {
        let embeddings = self.encode_float(texts, options)?;
        quantize_embeddings(&embeddings, options.precision, None)
    }

    fn encode_float(&self, texts: &[&str], options: &EncodeOptions) -> Result<Embeddings> {
        let width = match options.truncate_dim {
            Some(d) => self.check_truncate_dim(Some(d))?.unwrap_or(self.dim),
            None => self.truncate_dim.unwrap_or(self.dim),
        };
        let prompt = self.resolve_prompt(options)?;
        let texts: Vec<String> = texts.iter().map(|t| format!("{prompt}{t}")).collect();
        // Tokens the prompt adds (its own tokens less the closing special token), cleared from
        // the pooling mask when the pooling module excludes the prompt.
        let prompt_length = if prompt.is_empty() || self.pooling.include_prompt {
            0
        } else {
            self.tokenizer().encode(&[&prompt])?.seq.saturating_sub(1)
        };
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let rows = self.transformer.over_batches(
            Inputs::Texts(&texts),
            options.batch_size,
            options.show_progress_bar,
            |batch| {
                let (ids, types, mask) = self.transformer.inputs(&batch);
                let hidden = self.transformer.model.token_embeddings(ids, types, &mask);
                let mut pool_mask = batch.attention_mask.clone();
                for row in pool_mask.chunks_mut(batch.seq.max(1)) {
                    row.iter_mut().take(prompt_length).for_each(|m| *m = 0);
                }
                let mut pooled = pool(&self.pooling, hidden, &batch, &pool_mask);
                if self.normalize || (options.normalize_embeddings && width == self.dim) {
                    pooled = normalize(pooled);
                }
                let flat = to_vec(pooled)?;
                Ok(flat
                    .chunks_exact(self.dim)
                    .map(|row| {
                        let mut row = row[..width].to_vec();
                        if width < self.dim && options.normalize_embeddings {
                            normalize_row(&mut row);
                        }
                        row
                    })
                    .collect::<Vec<_>>())
            },
        )?;
        Ok(Embeddings::new(rows.concat(), width).expect("every row has the output width"))
    }

    fn resolve_prompt(&self, options: &EncodeOptions) -> Result<String> {
        if let Some(prompt) = &options.prompt {
            return Ok(prompt.clone());
        }
        match options.prompt_name.as_ref().or(self.default_prompt_name.as_ref()) {
            None => Ok(String::new()),
            Some(name) => self.prompts.get(name).cloned().ok_or_else(|| {
                let mut known: Vec<&str> = self.prompts.keys().map(String::as_str).collect();
                known.sort_unstable();
                EncoderError::InvalidArgument(format!(
                    "prompt `{name}` not found (the model has: {})",
                    known.join(", ")
                ))
            }),
        }
    }

    /// `[a.len(), b.len()]` similarities with the model's similarity function.
    pub fn similarity(&self, a: &Embeddings, b: &Embeddings) -> Result<Vec<Vec<f32>>> {
        self.similarity_fn.matrix(a, b)
    }

    /// Similarity of each row of `a` with the same row of `b`.
    pub fn similarity_pairwise(&self, a: &Embeddings, b: &Embeddings) -> Result<Vec<f32>> {
        self.similarity_fn.pairwise(a, b)
    }

    /// The similarity function from `config_sentence_transformers.json` (cosine by default).
    pub fn similarity_fn(&self) -> SimilarityFn {
        self.similarity_fn
    }

    /// Width of the embeddings (`get_sentence_embedding_dimension()`): the truncated width
    /// when [`truncate_dim`](Self::truncate_dim) is set.
    pub fn embedding_dim(&self) -> usize {
        self.truncate_dim.unwrap_or(self.dim)
    }

    /// Texts are truncated to this many tokens: `max_seq_length` from
    /// `sentence_bert_config.json`, clamped to the model's position table.
    pub fn max_seq_length(&self) -> usize {
        self.transformer.tokenizer.max_length()
    }

    /// The prompts the model defines, by name.
    pub fn prompts(&self) -> &HashMap<String, String> {
        &self.prompts
    }

    /// The arithmetic the model runs in (the [`LoadOptions::dtype`] it was loaded with).
    ///
    /// ```no_run
    /// use sieve_encoders::{Dtype, LoadOptions, SentenceTransformer};
    /// let options = LoadOptions { dtype: Dtype::Int8, ..LoadOptions::default() };
    /// let model = SentenceTransformer::from_pretrained_with("sentence-transformers/all-MiniLM-L6-v2", &options)?;
    /// assert_eq!(model.dtype(), Dtype::Int8);
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn dtype(&self) -> crate::device::Dtype {
        self.transformer.dtype
    }

    /// The tokenizer (to inspect token ids).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.transformer.tokenizer
    }
}

/// The `Pooling` and `Normalize` modules `modules.json` lists after the `Transformer` (without
/// modules.json sentence-transformers builds Transformer + mean pooling).
pub(crate) fn dense_modules(files: &ModelFiles) -> Result<(PoolingConfig, bool)> {
    let modules: Option<Vec<ModuleEntry>> = read_optional(files, "modules.json")?;
    let mut pooling = None;
    let mut normalize = false;
    for module in modules.iter().flatten() {
        match module.class() {
            "Transformer" => {}
            "Pooling" => {
                let path = files.required(&format!("{}/config.json", module.path))?;
                pooling = Some(PoolingConfig::read(&path)?);
            }
            "Normalize" => normalize = true,
            other => {
                return Err(EncoderError::InvalidArgument(format!(
                    "module `{other}` of {} is not supported (supported: Transformer, Pooling, Normalize)",
                    files.name()
                )));
            }
        }
    }
    Ok((pooling.unwrap_or_else(PoolingConfig::mean), normalize))
}
