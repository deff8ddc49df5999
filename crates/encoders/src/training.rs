//! Models being fine-tuned: the same architectures as inference, run on burn's autodiff over the
//! CPU backend, with every weight a gradient-tracked leaf named by its checkpoint key.
//!
//! Inference is untouched by this module: [`TrainableModel`] loads its own copy of the weights,
//! runs the models' plain burn layers (never the packed host kernels), and after training
//! [`save`](TrainableModel::save)s a folder that [`SentenceTransformer`](crate::SentenceTransformer),
//! [`CrossEncoder`](crate::CrossEncoder) and [`SparseEncoder`](crate::SparseEncoder) — and
//! sentence-transformers itself — load unchanged.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use burn::tensor::{Gradients, Tensor};
use safetensors::tensor::TensorView;
use serde_json::Value;

use crate::checkpoint::{Checkpoint, Leaf, Parameters, transpose};
use crate::config::{PoolingConfig, read_json};
use crate::device::{Device, Dtype};
use crate::error::{EncoderError, Result};
use crate::hub::ModelFiles;
use crate::models::dropout::{self, DropoutRates};
use crate::models::{Model, Task, family};
use crate::pooling::{normalize, pool};
use crate::tokenizer::{TokenBatch, Tokenizer};
use crate::transformer::load_tokenizer;

/// Which of sentence-transformers' three model kinds is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A bi-encoder (`SentenceTransformer`): texts to pooled embeddings.
    SentenceTransformer,
    /// A reranker (`CrossEncoder`): text pairs to logits.
    CrossEncoder,
    /// SPLADE (`SparseEncoder`): texts to vocabulary-sized activations.
    SparseEncoder,
}

impl ModelKind {
    /// The hub organisation a bare model name is looked up under, as in sentence-transformers.
    fn organisation(self) -> &'static str {
        match self {
            Self::SentenceTransformer => "sentence-transformers",
            Self::CrossEncoder => "cross-encoder",
            Self::SparseEncoder => "sparse-encoder",
        }
    }
}

/// What the model computes after the transformer.
enum Head {
    Dense { pooling: PoolingConfig, normalize: bool },
    Cross { num_labels: usize },
    Sparse,
}

/// A model whose weights are being trained.
///
/// Forward passes ([`embed`](Self::embed), [`logits`](Self::logits), [`sparse`](Self::sparse))
/// return tensors on burn's autodiff device; call `backward()` on a loss built from them and read
/// each weight's gradient with [`Parameter::grad`]. The optimizer then hands new values back
/// through [`set_values`](Self::set_values).
///
/// ```no_run
/// use sieve_encoders::training::{ModelKind, TrainableModel};
/// let model = TrainableModel::from_pretrained(ModelKind::SentenceTransformer, "all-MiniLM-L6-v2")?;
/// let embeddings = model.embed(&["A query", "A document"])?; // [2, 384], gradient-tracked
/// let loss = embeddings.clone().narrow(0, 0, 1).sum();
/// let grads = loss.backward();
/// let first = &model.parameters()[0];
/// assert!(first.grad(&grads).is_some());
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
pub struct TrainableModel {
    kind: ModelKind,
    head: Head,
    task: Task,
    files: ModelFiles,
    config: Value,
    config_path: PathBuf,
    tokenizer: Tokenizer,
    /// Holds the file's bytes (tensors never trained are saved from them) and the leaves.
    checkpoint: Checkpoint,
    device: burn::tensor::Device,
    /// Rebuilt from the leaves after every update; building only wraps shared tensors.
    model: Model,
    /// The dropout rates of `config.json`, applied while `dropout_seed` is set.
    dropout_rates: DropoutRates,
    dropout_seed: Option<u64>,
    /// Forward passes since the seed was set: each draws its masks from its own stream.
    passes: Cell<u64>,
}

/// One trained tensor, by its checkpoint key (`encoder.layer.0.attention.self.query.weight`).
#[derive(Clone)]
pub struct Parameter {
    name: String,
    leaf: Leaf,
}

impl Parameter {
    /// The checkpoint key, as PyTorch's `named_parameters()` spells it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.flat().dims()[0]
    }

    /// Whether the tensor holds no value (never for a loaded model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `true` for biases and LayerNorm weights, which transformers' `Trainer` excludes from
    /// weight decay.
    pub fn is_bias_or_norm(&self) -> bool {
        let name = self.name.to_lowercase();
        name.contains("bias") || name.contains("layernorm") || name.contains("layer_norm") || name.contains("rmsnorm")
    }

    /// The current values, flat in the model's layout, without gradient tracking.
    pub fn flat(&self) -> Tensor<1> {
        match &self.leaf {
            Leaf::One(t) => t.clone().inner(),
            Leaf::Two(t) | Leaf::Transposed(t) => {
                let n: usize = t.dims().iter().product();
                t.clone().inner().reshape([n])
            }
        }
    }

    /// This tensor's gradient in `grads`, flat in the model's layout (as [`flat`](Self::flat)),
    /// or `None` when the loss did not depend on it (say, BERT's pooler in a bi-encoder).
    pub fn grad(&self, grads: &Gradients) -> Option<Tensor<1>> {
        match &self.leaf {
            Leaf::One(t) => t.grad(grads),
            Leaf::Two(t) | Leaf::Transposed(t) => {
                let n: usize = t.dims().iter().product();
                t.grad(grads).map(|g| g.reshape([n]))
            }
        }
    }

    /// `flat` (values in the model's layout, as [`flat`](Self::flat) or [`grad`](Self::grad)
    /// give them) in the checkpoint's layout: PyTorch `nn.Linear` weights are stored `[out, in]`.
    pub fn to_checkpoint_layout(&self, flat: Tensor<1>) -> Result<Vec<f32>> {
        let values = crate::transformer::to_vec(flat)?;
        Ok(match &self.leaf {
            Leaf::Transposed(t) => {
                let [inp, out] = t.dims();
                transpose(&values, inp, out)
            }
            _ => values,
        })
    }

    /// The shape in the checkpoint's layout.
    pub fn shape(&self) -> Vec<usize> {
        match &self.leaf {
            Leaf::One(t) => t.dims().to_vec(),
            Leaf::Two(t) => t.dims().to_vec(),
            Leaf::Transposed(t) => {
                let [inp, out] = t.dims();
                vec![out, inp]
            }
        }
    }

    /// A leaf holding `flat` in this parameter's shape.
    fn with_values(&self, flat: Tensor<1>) -> Result<Leaf> {
        if flat.dims()[0] != self.len() {
            return Err(EncoderError::InvalidArgument(format!(
                "parameter `{}` has {} values, the update {}",
                self.name,
                self.len(),
                flat.dims()[0]
            )));
        }
        let flat = flat.inner().autodiff();
        Ok(match &self.leaf {
            Leaf::One(_) => Leaf::One(flat.require_grad()),
            Leaf::Two(t) => Leaf::Two(flat.reshape(t.dims()).require_grad()),
            Leaf::Transposed(t) => Leaf::Transposed(flat.reshape(t.dims()).require_grad()),
        })
    }
}

impl TrainableModel {
    /// Loads a model by hub id or folder for training, on the CPU. A bare name is looked up under
    /// the kind's organisation (`sentence-transformers/`, `cross-encoder/`, `sparse-encoder/`).
    pub fn from_pretrained(kind: ModelKind, name_or_path: &str) -> Result<Self> {
        Self::from_pretrained_on(kind, name_or_path, Device::Cpu)
    }

    /// [`from_pretrained`](Self::from_pretrained) on `device`: the CPU, or a GPU through burn's
    /// autodiff over its backend (`Device::Wgpu` with the `wgpu` feature). The CPU trains
    /// through fused ops with their own backward passes; the GPU backends through burn's ops,
    /// with dropout masks from the backend's random generator rather than the run's seed.
    ///
    /// ```no_run
    /// use sieve_encoders::Device;
    /// use sieve_encoders::training::{ModelKind, TrainableModel};
    /// let model = TrainableModel::from_pretrained_on(ModelKind::CrossEncoder, "sieve/stsb-minilm-l6-ce", Device::Wgpu)?;
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn from_pretrained_on(kind: ModelKind, name_or_path: &str, device: Device) -> Result<Self> {
        Self::from_files_on(
            kind,
            &ModelFiles::resolve_in(name_or_path, kind.organisation())?,
            device,
        )
    }

    /// Loads from resolved model files, on the CPU.
    pub fn from_files(kind: ModelKind, files: &ModelFiles) -> Result<Self> {
        Self::from_files_on(kind, files, Device::Cpu)
    }

    /// Loads from resolved model files on `device`.
    pub fn from_files_on(kind: ModelKind, files: &ModelFiles, device: Device) -> Result<Self> {
        let config_path = files.required("config.json")?;
        let config: Value = read_json(&config_path)?;
        let (head, task) = match kind {
            ModelKind::SentenceTransformer => {
                let (pooling, normalize) = crate::sentence_transformer::dense_modules(files)?;
                (Head::Dense { pooling, normalize }, Task::FeatureExtraction)
            }
            ModelKind::CrossEncoder => {
                let num_labels = crate::cross_encoder::num_labels(&config);
                (Head::Cross { num_labels }, Task::SequenceClassification { num_labels })
            }
            ModelKind::SparseEncoder => {
                crate::sparse_encoder::sparse_modules(files)?;
                (Head::Sparse, Task::MaskedLm)
            }
        };
        let device = device.burn()?.autodiff();
        let weights = files.required("model.safetensors")?;
        let mut checkpoint = Checkpoint::open(&weights, &device, burn::tensor::FloatDType::F32)?;
        checkpoint.parameters = Some(RefCell::new(Parameters::new()));
        let model = Model::from_checkpoint(&config, &config_path, &checkpoint, task, Dtype::F32, false)?;
        let tokenizer = load_tokenizer(files, &config, &config_path, model.max_position_embeddings())?;
        let dropout_rates = DropoutRates::from_config(family(&config)?, &config);
        Ok(Self {
            kind,
            head,
            task,
            files: files.clone(),
            config,
            config_path,
            tokenizer,
            checkpoint,
            device,
            model,
            dropout_rates,
            dropout_seed: None,
            passes: Cell::new(0),
        })
    }

    /// The kind of model.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// The tokenizer (truncating at the model's `max_seq_length`).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Sets the length texts are truncated to (sentence-transformers' `max_seq_length`), at most
    /// the position table's length.
    pub fn set_max_seq_length(&mut self, length: usize) -> Result<()> {
        let positions = self.model.max_position_embeddings();
        if length == 0 || length > positions {
            return Err(EncoderError::InvalidArgument(format!(
                "max_seq_length {length} is outside 1..={positions} (the model's position table)"
            )));
        }
        self.tokenizer.set_max_length(length);
        Ok(())
    }

    /// Turns dropout on, with its masks drawn from `seed`, or off with `None` (the default, and
    /// what the gradient-parity tests compare). On, the forward passes drop activations as
    /// PyTorch's `model.train()` does: at the rates of `config.json` (`hidden_dropout_prob`,
    /// `attention_probs_dropout_prob`, `classifier_dropout`; DistilBERT's `dropout`,
    /// `attention_dropout`, `seq_classif_dropout`), where transformers places its `nn.Dropout`
    /// layers. The same seed and the same sequence of passes drop the same elements.
    ///
    /// ```no_run
    /// use sieve_encoders::training::{ModelKind, TrainableModel};
    /// let mut model = TrainableModel::from_pretrained(ModelKind::CrossEncoder, "sieve/stsb-minilm-l6-ce")?;
    /// model.set_dropout(Some(42));
    /// let noisy = model.logits(&[("a query", "a document")])?;
    /// model.set_dropout(None);
    /// let exact = model.logits(&[("a query", "a document")])?;
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn set_dropout(&mut self, seed: Option<u64>) {
        self.dropout_seed = seed;
        self.passes.set(0);
    }

    /// Whether [`set_dropout`](Self::set_dropout) would drop anything: some rate of the
    /// model's config is above 0.
    pub fn has_dropout(&self) -> bool {
        self.dropout_rates.any()
    }

    /// Runs one forward pass, inside a dropout scope while dropout is on.
    fn pass<T>(&self, forward: impl FnOnce() -> T) -> T {
        match self.dropout_seed {
            Some(seed) => {
                let pass = self.passes.get();
                self.passes.set(pass + 1);
                dropout::scope(self.dropout_rates, dropout::mix(seed, pass), forward)
            }
            None => forward(),
        }
    }

    /// The weights the forward passes have used so far, by checkpoint key. A freshly loaded
    /// model has made one (empty) build, so every weight of its task is listed.
    pub fn parameters(&self) -> Vec<Parameter> {
        self.leaves()
            .borrow()
            .iter()
            .map(|(name, leaf)| Parameter {
                name: name.clone(),
                leaf: leaf.clone(),
            })
            .collect()
    }

    /// Replaces the weights with `values` (flat, in the order and layout of
    /// [`parameters`](Self::parameters)), then rebuilds the model around them.
    pub fn set_values(&mut self, values: Vec<Tensor<1>>) -> Result<()> {
        let parameters = self.parameters();
        if values.len() != parameters.len() {
            return Err(EncoderError::InvalidArgument(format!(
                "{} updates for {} parameters",
                values.len(),
                parameters.len()
            )));
        }
        let mut updated = Parameters::new();
        for (parameter, flat) in parameters.iter().zip(values) {
            updated.insert(parameter.name.clone(), parameter.with_values(flat)?);
        }
        *self.leaves().borrow_mut() = updated;
        self.model = Model::from_checkpoint(
            &self.config,
            &self.config_path,
            &self.checkpoint,
            self.task,
            Dtype::F32,
            false,
        )?;
        Ok(())
    }

    fn leaves(&self) -> &RefCell<Parameters> {
        self.checkpoint
            .parameters
            .as_ref()
            .expect("a trainable checkpoint has parameters")
    }

    fn tensors(&self, batch: &TokenBatch) -> (Tensor<2, burn::tensor::Int>, Tensor<2, burn::tensor::Int>, Tensor<2>) {
        batch.tensors(&self.device)
    }

    /// Pooled (and, with a `Normalize` module, normalised) embeddings `[texts, dim]` of a
    /// bi-encoder, as `SentenceTransformer.forward` gives `sentence_embedding`.
    pub fn embed(&self, texts: &[&str]) -> Result<Tensor<2>> {
        let Head::Dense {
            pooling,
            normalize: norm,
        } = &self.head
        else {
            return Err(self.wrong_kind("embed", ModelKind::SentenceTransformer));
        };
        let batch = self.tokenizer.encode(texts)?;
        let (ids, types, mask) = self.tensors(&batch);
        let hidden = self.pass(|| self.model.token_embeddings(ids, types, &mask));
        let pooled = pool(pooling, hidden, &batch, &batch.attention_mask);
        Ok(if *norm { normalize(pooled) } else { pooled })
    }

    /// Logits `[pairs, num_labels]` of a cross-encoder (before its activation).
    pub fn logits(&self, pairs: &[(&str, &str)]) -> Result<Tensor<2>> {
        if !matches!(self.head, Head::Cross { .. }) {
            return Err(self.wrong_kind("logits", ModelKind::CrossEncoder));
        }
        let batch = self.tokenizer.encode_pairs(pairs)?;
        let (ids, types, mask) = self.tensors(&batch);
        Ok(self.pass(|| self.model.classify(ids, types, &mask)))
    }

    /// SPLADE activations `[texts, vocab]`: `max_t log(1 + relu(logits))` over real tokens.
    pub fn sparse(&self, texts: &[&str]) -> Result<Tensor<2>> {
        if !matches!(self.head, Head::Sparse) {
            return Err(self.wrong_kind("sparse", ModelKind::SparseEncoder));
        }
        let batch = self.tokenizer.encode(texts)?;
        let (ids, types, mask) = self.tensors(&batch);
        Ok(self.pass(|| self.model.splade(ids, types, &mask)))
    }

    /// The number of labels of a cross-encoder (1 for rerankers); `None` for the other kinds.
    pub fn num_labels(&self) -> Option<usize> {
        match self.head {
            Head::Cross { num_labels } => Some(num_labels),
            _ => None,
        }
    }

    fn wrong_kind(&self, method: &str, needs: ModelKind) -> EncoderError {
        EncoderError::InvalidArgument(format!(
            "{method}() is for a {needs:?}; this model was loaded as a {:?}",
            self.kind
        ))
    }

    /// Writes the model to `dir` as a folder sentence-transformers loads unchanged: every file
    /// of the source folder (configs, `modules.json`, pooling, tokenizer files), with
    /// `model.safetensors` holding the trained weights under the original keys (f32). Weights
    /// the training never touched are written as loaded. The weights file is replaced
    /// atomically, so an interrupted save leaves the previous one whole. A length set with
    /// [`set_max_seq_length`](Self::set_max_seq_length) is written where sentence-transformers
    /// reads it back, so the saved model truncates where it was trained to.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let source = self
            .files
            .required("config.json")?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        std::fs::create_dir_all(dir).map_err(|e| EncoderError::io(dir, e))?;
        copy_folder(&source, dir)?;
        self.record_max_seq_length(dir)?;
        self.write_weights(&dir.join("model.safetensors"))
    }

    /// Writes the tokenizer's length into the saved folder when it differs from what the
    /// folder's files give: `sentence_bert_config.json`'s `max_seq_length` where the folder sets
    /// one (bi-encoders), else `tokenizer_config.json`'s `model_max_length` (cross-encoders,
    /// whose sentence-transformers length is the tokenizer's).
    fn record_max_seq_length(&self, dir: &Path) -> Result<()> {
        let length = self.tokenizer.max_length();
        let saved = ModelFiles::local(dir)?;
        let reloaded = load_tokenizer(
            &saved,
            &self.config,
            &self.config_path,
            self.model.max_position_embeddings(),
        )?;
        if reloaded.max_length() == length {
            return Ok(());
        }
        let sbert = dir.join("sentence_bert_config.json");
        let (path, key) = match sbert.is_file() && read_json::<Value>(&sbert)?.get("max_seq_length").is_some() {
            true => (sbert, "max_seq_length"),
            false => (dir.join("tokenizer_config.json"), "model_max_length"),
        };
        let mut json = match path.is_file() {
            true => read_json(&path)?,
            false => Value::Object(Default::default()),
        };
        let Some(object) = json.as_object_mut() else {
            return Err(EncoderError::InvalidConfig {
                path,
                reason: "not a JSON object".into(),
            });
        };
        object.insert(key.into(), length.into());
        let text = serde_json::to_string_pretty(&json).map_err(|e| EncoderError::InvalidConfig {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&path, text + "\n").map_err(|e| EncoderError::io(&path, e))
    }

    fn write_weights(&self, path: &Path) -> Result<()> {
        let trained: std::collections::HashMap<String, Parameter> =
            self.parameters().into_iter().map(|p| (p.name.clone(), p)).collect();
        // Trained tensors in f32; the others (integer buffers such as `position_ids` included)
        // copied byte for byte in their stored dtype.
        let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (name, shape) in self.checkpoint.stored_keys() {
            if let Some(p) = trained.get(&name) {
                let values = p.to_checkpoint_layout(p.flat())?;
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                tensors.push((name, safetensors::Dtype::F32, shape, bytes));
            } else if let Some((dtype, shape, bytes)) = self.checkpoint.raw(&name) {
                tensors.push((name, dtype, shape, bytes.to_vec()));
            }
        }
        let metadata = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
        write_safetensors(path, &tensors, metadata)
    }
}

/// Writes `tensors` (name, dtype, shape, little-endian bytes) and `metadata` to the safetensors
/// file `path`, atomically: a `.partial` file beside it, given the permissions of the folder's
/// `config.json` (the serializer creates it owner-only), then renamed over `path`. For model
/// weights and for the optimizer state of a checkpoint.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, safetensors::Dtype, Vec<usize>, Vec<u8>)],
    metadata: std::collections::HashMap<String, String>,
) -> Result<()> {
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|e| EncoderError::InvalidWeights {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let partial = path.with_extension("safetensors.partial");
    safetensors::serialize_to_file(views, Some(metadata), &partial).map_err(|e| EncoderError::InvalidWeights {
        path: partial.clone(),
        reason: e.to_string(),
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path.with_file_name("config.json")).map_or(0o644, |m| m.permissions().mode());
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(|e| EncoderError::io(&partial, e))?;
    }
    std::fs::rename(&partial, path).map_err(|e| EncoderError::io(path, e))
}

/// Weight files of other formats, which would hold the untrained weights: left behind.
const SKIPPED: &[&str] = &[
    "model.safetensors",
    "pytorch_model.bin",
    "tf_model.h5",
    "flax_model.msgpack",
    "rust_model.ot",
    "onnx",
    "openvino",
];

/// Whether `name` in a source folder is left out of a save: hidden files, weights (see
/// [`SKIPPED`]), and what belongs to the run that trained the source rather than to the model
/// (its `checkpoint-N` folders, optimizer and trainer state).
fn left_behind(name: &str) -> bool {
    SKIPPED.contains(&name)
        || name.starts_with('.')
        || name.starts_with("checkpoint-")
        || name.starts_with("optimizer.")
        || name.starts_with("scheduler.")
        || name.starts_with("rng_state")
        || name == "trainer_state.json"
        || name == "training_args.bin"
}

/// Copies `from` into `to` recursively (following the hub cache's links), but for what
/// [`left_behind`] names.
fn copy_folder(from: &Path, to: &Path) -> Result<()> {
    let entries = std::fs::read_dir(from).map_err(|e| EncoderError::io(from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| EncoderError::io(from, e))?;
        let name = entry.file_name();
        if left_behind(&name.to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let target = to.join(&name);
        if path.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| EncoderError::io(&target, e))?;
            copy_folder(&path, &target)?;
        } else if path != target {
            std::fs::copy(&path, &target).map_err(|e| EncoderError::io(&target, e))?;
        }
    }
    Ok(())
}
