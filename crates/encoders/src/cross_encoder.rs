//! `CrossEncoder`: scores (query, text) pairs jointly — the reranker of two-stage retrieval.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{SentenceTransformersConfig, read_optional};
use crate::device::LoadOptions;
use crate::embeddings::Embeddings;
use crate::error::{EncoderError, Result};
use crate::hub::ModelFiles;
use crate::models::Task;
use crate::tokenizer::Tokenizer;
use crate::transformer::{Inputs, Transformer, to_vec};

/// The function applied to a cross-encoder's logits.
///
/// ```
/// use sieve_encoders::ScoreActivation;
///
/// let sigmoid = ScoreActivation::from_python("torch.nn.modules.activation.Sigmoid")?;
/// assert_eq!(sigmoid, ScoreActivation::Sigmoid);
/// assert!(ScoreActivation::from_python("torch.nn.ReLU").is_err());
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreActivation {
    /// Raw logits.
    Identity,
    /// `1 / (1 + e^-x)`, the default for single-label models.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// Softmax over the labels of each pair.
    Softmax,
}

impl ScoreActivation {
    /// Parses a Python class path such as `torch.nn.modules.activation.Sigmoid`.
    pub fn from_python(name: &str) -> Result<Self> {
        Ok(match name.rsplit('.').next().unwrap_or(name) {
            "Identity" => Self::Identity,
            "Sigmoid" => Self::Sigmoid,
            "Tanh" => Self::Tanh,
            "Softmax" => Self::Softmax,
            other => {
                return Err(EncoderError::InvalidArgument(format!(
                    "unsupported activation_fn `{other}` (supported: Identity, Sigmoid, Tanh, Softmax)"
                )));
            }
        })
    }

    fn apply(self, row: &mut [f32]) {
        match self {
            Self::Identity => {}
            Self::Sigmoid => row.iter_mut().for_each(|x| *x = 1.0 / (1.0 + (-*x).exp())),
            Self::Tanh => row.iter_mut().for_each(|x| *x = x.tanh()),
            Self::Softmax => {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = row.iter().map(|x| (x - max).exp()).sum();
                row.iter_mut().for_each(|x| *x = (*x - max).exp() / sum);
            }
        }
    }
}

/// Options of [`CrossEncoder::predict_with`].
///
/// ```no_run
/// use sieve_encoders::{CrossEncoder, PredictOptions, ScoreActivation};
///
/// let model = CrossEncoder::from_pretrained("sieve/stsb-minilm-l6-ce")?;
/// let options = PredictOptions { activation: Some(ScoreActivation::Identity), batch_size: 64, ..Default::default() };
/// let logits = model.predict_with(&[("A man is eating pasta.", "A man is eating food.")], &options)?;
/// assert_eq!(logits.shape(), [1, model.num_labels()]); // one row of raw logits per pair
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Pairs per forward pass (default 32).
    pub batch_size: usize,
    /// Override the model's activation; `Some(Identity)` returns raw logits.
    pub activation: Option<ScoreActivation>,
    /// Draw a progress bar on stderr.
    pub show_progress_bar: bool,
}

impl Default for PredictOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            activation: None,
            show_progress_bar: false,
        }
    }
}

/// Options of [`CrossEncoder::rank`].
///
/// ```no_run
/// use sieve_encoders::{CrossEncoder, RankOptions};
///
/// let model = CrossEncoder::from_pretrained("sieve/stsb-minilm-l6-ce")?;
/// let documents = ["A man is eating food.", "A monkey plays drums.", "A man eats spaghetti."];
/// let options = RankOptions { top_k: Some(2), return_documents: true, ..Default::default() };
/// let hits = model.rank("A man is eating pasta.", &documents, &options)?;
/// assert_eq!(hits.len(), 2);
/// assert!(hits[0].text.is_some());
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RankOptions {
    /// Keep only the best `top_k` documents (all when `None`).
    pub top_k: Option<usize>,
    /// Copy each document's text into its hit.
    pub return_documents: bool,
    /// Pairs per forward pass (default 32).
    pub batch_size: usize,
    /// Override the model's activation.
    pub activation: Option<ScoreActivation>,
    /// Draw a progress bar on stderr.
    pub show_progress_bar: bool,
}

impl Default for RankOptions {
    fn default() -> Self {
        Self {
            top_k: None,
            return_documents: false,
            batch_size: 32,
            activation: None,
            show_progress_bar: false,
        }
    }
}

/// One ranked document: its index in the input, its score, optionally its text.
///
/// ```no_run
/// use sieve_encoders::{CrossEncoder, RankOptions};
///
/// let model = CrossEncoder::from_pretrained("sieve/stsb-minilm-l6-ce")?;
/// let documents = ["A man is eating food.", "A monkey plays drums."];
/// for hit in model.rank("A man is eating pasta.", &documents, &RankOptions::default())? {
///     println!("{:.3} {}", hit.score, documents[hit.corpus_id]);
/// }
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RankHit {
    /// Position of the document in the list given to `rank`.
    pub corpus_id: usize,
    /// The cross-encoder score.
    pub score: f32,
    /// The document, when `return_documents` was set.
    pub text: Option<String>,
}

/// A cross-encoder: a `*ForSequenceClassification` model over `[CLS] a [SEP] b [SEP]`.
///
/// ```no_run
/// use sieve_encoders::{CrossEncoder, RankOptions};
/// let model = CrossEncoder::from_pretrained("sieve/stsb-minilm-l6-ce")?;
/// let scores = model.predict(&[("A man is eating pasta.", "A man is eating food.")])?;
/// let ranked = model.rank("A man is eating pasta.", &["A man is eating food.", "A monkey plays drums."], &RankOptions::default())?;
/// assert_eq!(ranked[0].corpus_id, 0);
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
pub struct CrossEncoder {
    transformer: Transformer,
    num_labels: usize,
    activation: ScoreActivation,
    id2label: BTreeMap<usize, String>,
}

pub(crate) fn num_labels(config: &Value) -> usize {
    config
        .get("num_labels")
        .and_then(Value::as_u64)
        .map(|n| n as usize)
        .or_else(|| config.get("id2label").and_then(Value::as_object).map(|m| m.len()))
        .unwrap_or(2)
}

crate::hub::pretrained_constructors!(CrossEncoder, "cross-encoder", "sieve/stsb-minilm-l6-ce");

impl CrossEncoder {
    /// Loads from resolved model files with explicit options.
    pub fn from_files(files: &ModelFiles, options: &LoadOptions) -> Result<Self> {
        let st: SentenceTransformersConfig =
            read_optional(files, "config_sentence_transformers.json")?.unwrap_or_default();
        let transformer = Transformer::load(files, options, |config| Task::SequenceClassification {
            num_labels: num_labels(config),
        })?;
        let config = &transformer.config;
        let num_labels = num_labels(config);
        // 6.x writes activation_fn beside the prompts; 2.x/3.x put it in config.json.
        let legacy = config
            .get("sbert_ce_default_activation_function")
            .and_then(Value::as_str);
        let activation = match st.activation_fn.as_deref().or(legacy) {
            Some(name) => ScoreActivation::from_python(name)?,
            None if num_labels == 1 => ScoreActivation::Sigmoid,
            None => ScoreActivation::Identity,
        };
        let id2label = config
            .get("id2label")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            transformer,
            num_labels,
            activation,
            id2label,
        })
    }

    /// One score per pair, with the model's activation. For models with several labels use
    /// [`predict_with`](Self::predict_with), which returns a row per pair.
    ///
    /// ```no_run
    /// use sieve_encoders::CrossEncoder;
    ///
    /// let model = CrossEncoder::from_pretrained("sieve/stsb-minilm-l6-ce")?;
    /// let query = "A man is eating pasta.";
    /// let scores = model.predict(&[(query, "A man is eating food."), (query, "A monkey plays drums.")])?;
    /// assert!(scores[0] > scores[1]); // sigmoid scores in 0..1 for this model
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn predict(&self, pairs: &[(&str, &str)]) -> Result<Vec<f32>> {
        if self.num_labels != 1 {
            return Err(EncoderError::InvalidArgument(format!(
                "the model has {} labels; use predict_with for a row of scores per pair",
                self.num_labels
            )));
        }
        Ok(self
            .predict_with(pairs, &PredictOptions::default())?
            .as_slice()
            .to_vec())
    }

    /// `[pairs, num_labels]` scores with explicit options.
    pub fn predict_with(&self, pairs: &[(&str, &str)], options: &PredictOptions) -> Result<Embeddings> {
        let activation = options.activation.unwrap_or(self.activation);
        let rows = self.transformer.over_batches(
            Inputs::Pairs(pairs),
            options.batch_size,
            options.show_progress_bar,
            |batch| {
                let (ids, types, mask) = self.transformer.inputs(&batch);
                let logits = to_vec(self.transformer.model.classify(ids, types, &mask))?;
                Ok(logits
                    .chunks_exact(self.num_labels)
                    .map(|row| {
                        let mut row = row.to_vec();
                        activation.apply(&mut row);
                        row
                    })
                    .collect::<Vec<_>>())
            },
        )?;
        Ok(Embeddings::new(rows.concat(), self.num_labels).expect("num_labels values per pair"))
    }

    /// Scores `query` against every document and returns them best first.
    ///
    /// ```no_run
    /// use sieve_encoders::{CrossEncoder, RankOptions};
    ///
    /// let model = CrossEncoder::from_pretrained("sieve/scifact-minilm-l6-reranker")?;
    /// let candidates = ["Vitamin D lowers fracture risk.", "Coffee is grown in Brazil."];
    /// let ranked = model.rank("does vitamin D help bones?", &candidates, &RankOptions::default())?;
    /// assert_eq!(ranked[0].corpus_id, 0);
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn rank(&self, query: &str, documents: &[&str], options: &RankOptions) -> Result<Vec<RankHit>> {
        if self.num_labels != 1 {
            return Err(EncoderError::InvalidArgument(format!(
                "rank needs a single-label model, this one has {} labels",
                self.num_labels
            )));
        }
        let pairs: Vec<(&str, &str)> = documents.iter().map(|d| (query, *d)).collect();
        let predict = PredictOptions {
            batch_size: options.batch_size,
            activation: options.activation,
            show_progress_bar: options.show_progress_bar,
        };
        let scores = self.predict_with(&pairs, &predict)?;
        let mut hits: Vec<RankHit> = scores
            .as_slice()
            .iter()
            .enumerate()
            .map(|(i, &score)| RankHit {
                corpus_id: i,
                score,
                text: options.return_documents.then(|| documents[i].to_string()),
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.corpus_id.cmp(&b.corpus_id)));
        if let Some(k) = options.top_k {
            hits.truncate(k);
        }
        Ok(hits)
    }

    /// Number of output labels.
    pub fn num_labels(&self) -> usize {
        self.num_labels
    }

    /// The label names from `config.json`, by index.
    pub fn id2label(&self) -> &BTreeMap<usize, String> {
        &self.id2label
    }

    /// The activation applied by default.
    pub fn activation(&self) -> ScoreActivation {
        self.activation
    }

    /// Pairs are truncated (longest first) to this many tokens.
    pub fn max_length(&self) -> usize {
        self.transformer.tokenizer.max_length()
    }

    /// The arithmetic the model runs in (the [`LoadOptions::dtype`] it was loaded with).
    ///
    /// ```no_run
    /// use sieve_encoders::{Dtype, LoadOptions, CrossEncoder};
    /// let options = LoadOptions { dtype: Dtype::Int8, ..LoadOptions::default() };
    /// let model = CrossEncoder::from_pretrained_with("sieve/stsb-minilm-l6-ce", &options)?;
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
