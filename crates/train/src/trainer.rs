//! The training loop: shuffled batches, the loss, AdamW with warmup, accumulation and clipping,
//! a progress bar, and a hook after every epoch (for evaluation and checkpoints).
//!
//! ```no_run
//! use sieve_encoders::training::{ModelKind, TrainableModel};
//! use sieve_train::losses::DenseLoss;
//! use sieve_train::trainer::{Example, Objective, Trainer, TrainingArgs};
//!
//! let mut model = TrainableModel::from_pretrained(ModelKind::SentenceTransformer, "all-MiniLM-L6-v2")?;
//! let examples = vec![
//!     Example::pair("What is BM25?", "A ranking function over term frequencies."),
//!     Example::pair("What is HNSW?", "A graph index for approximate nearest neighbours."),
//! ];
//! let args = TrainingArgs { epochs: 1, batch_size: 2, ..TrainingArgs::default() };
//! let report = Trainer::new(Objective::Dense(DenseLoss::default()), args).fit(&mut model, &examples, |_, _, _| Ok(()))?;
//! model.save("fine-tuned".as_ref())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Instant;

use burn::tensor::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde::{Deserialize, Serialize};
use sieve_encoders::training::{ModelKind, TrainableModel};

use crate::losses::{CrossLoss, DenseLoss, SpladeLoss};
use crate::optim::{AdamW, AdamWConfig};
use crate::{Result, TrainError};

/// One training example: a query (anchor, `sentence1`) and its documents (positive first, then
/// negatives; or `sentence2`), with a label per document where the loss reads one (a gold
/// similarity for CoSENT, 0/1 relevance for the cross-encoder losses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The anchor text.
    pub query: String,
    /// Positive first, then negatives (or the one paired sentence).
    pub documents: Vec<String>,
    /// One label per document (empty when the loss reads none).
    pub labels: Vec<f32>,
}

impl Example {
    /// An (anchor, positive) pair.
    pub fn pair(query: &str, positive: &str) -> Self {
        Self {
            query: query.into(),
            documents: vec![positive.into()],
            labels: vec![1.0],
        }
    }

    /// An anchor, its positive and hard negatives (labels 1, then 0).
    pub fn with_negatives(query: &str, positive: &str, negatives: &[&str]) -> Self {
        let mut example = Self::pair(query, positive);
        example.documents.extend(negatives.iter().map(|n| n.to_string()));
        example.labels.extend(negatives.iter().map(|_| 0.0));
        example
    }

    /// Two sentences and a gold score (CoSENT, cosine similarity, binary cross-entropy).
    pub fn scored(sentence1: &str, sentence2: &str, score: f32) -> Self {
        Self {
            query: sentence1.into(),
            documents: vec![sentence2.into()],
            labels: vec![score],
        }
    }
}

/// The loss, for the model kind it trains.
#[derive(Debug, Clone, PartialEq)]
pub enum Objective {
    /// A bi-encoder loss.
    Dense(DenseLoss),
    /// A reranker loss.
    Cross(CrossLoss),
    /// SPLADE's loss.
    Sparse(SpladeLoss),
}

impl Objective {
    /// The model kind the loss trains.
    pub fn kind(&self) -> ModelKind {
        match self {
            Self::Dense(_) => ModelKind::SentenceTransformer,
            Self::Cross(_) => ModelKind::CrossEncoder,
            Self::Sparse(_) => ModelKind::SparseEncoder,
        }
    }

    /// The loss's sentence-transformers name.
    pub fn name(&self) -> String {
        match self {
            Self::Dense(l) => l.name(),
            Self::Cross(l) => l.name().into(),
            Self::Sparse(l) => l.name().into(),
        }
    }

    /// The loss for a log line: its name, or what it computes where its settings make it
    /// another loss ([`CrossLoss::description`]).
    pub fn description(&self) -> String {
        match self {
            Self::Cross(l) => l.description(),
            _ => self.name(),
        }
    }

    /// The loss of one batch; `rng` samples in-batch negatives where the loss asks for fewer
    /// than the batch has (a cross-encoder's `MultipleNegativesRankingLoss`).
    pub fn loss(&self, model: &TrainableModel, batch: &[&Example], rng: &mut impl rand::Rng) -> Result<Tensor<1>> {
        if batch.is_empty() {
            return Err(TrainError::InvalidOption("an empty batch".into()));
        }
        // Columns need equal lengths: cut every example to the fewest documents in the batch.
        let width = batch.iter().map(|e| e.documents.len()).min().unwrap_or(0);
        if width == 0 {
            return Err(TrainError::InvalidOption(format!(
                "the example for `{}` has no document",
                batch
                    .iter()
                    .find(|e| e.documents.is_empty())
                    .map_or("", |e| e.query.as_str())
            )));
        }
        let column = |j: usize| -> Vec<&str> {
            batch
                .iter()
                .map(|e| {
                    if j == 0 {
                        e.query.as_str()
                    } else {
                        e.documents[j - 1].as_str()
                    }
                })
                .collect()
        };
        match self {
            Self::Dense(loss) => {
                let columns = (0..=width)
                    .map(|j| model.embed(&column(j)))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let scores: Option<Vec<f32>> = loss.needs_scores().then(|| {
                    batch
                        .iter()
                        .map(|e| e.labels.first().copied().unwrap_or(f32::NAN))
                        .collect()
                });
                if scores.as_ref().is_some_and(|s| s.iter().any(|v| v.is_nan())) {
                    return Err(TrainError::InvalidOption(format!(
                        "{} needs a score on every example",
                        loss.name()
                    )));
                }
                loss.compute(&columns, scores.as_deref())
            }
            Self::Cross(loss @ CrossLoss::MultipleNegativesRanking { num_negatives, .. }) => {
                // Per query, as sentence-transformers orders them: the positive, documents of
                // the other queries (any column), then the hard negatives.
                let mut pairs = Vec::new();
                let mut groups = Vec::with_capacity(batch.len());
                for (i, example) in batch.iter().enumerate() {
                    let others: Vec<&str> = batch
                        .iter()
                        .enumerate()
                        .filter(|(row, _)| *row != i)
                        .flat_map(|(_, e)| e.documents.iter().take(width).map(String::as_str))
                        .collect();
                    let chosen: Vec<&str> = match num_negatives {
                        Some(k) if *k < others.len() => others.choose_multiple(rng, *k).copied().collect(),
                        _ => others,
                    };
                    let query = example.query.as_str();
                    pairs.push((query, example.documents[0].as_str()));
                    pairs.extend(chosen.iter().map(|d| (query, *d)));
                    pairs.extend(example.documents[1..width].iter().map(|d| (query, d.as_str())));
                    groups.push(width + chosen.len());
                }
                if groups.iter().any(|&g| g < 2) {
                    return Err(TrainError::InvalidOption(
                        "MultipleNegativesRankingLoss needs a negative per query: hard negatives, \
                         or in-batch negatives from a batch of two examples or more"
                            .into(),
                    ));
                }
                loss.compute(model.logits(&pairs)?, &vec![0.0; pairs.len()], &groups)
            }
            Self::Cross(loss) => {
                let mut pairs = Vec::new();
                let mut labels = Vec::new();
                for example in batch {
                    if example.labels.len() < width {
                        return Err(TrainError::InvalidOption(format!(
                            "{} needs a label per document (query `{}`)",
                            loss.name(),
                            example.query
                        )));
                    }
                    for (doc, label) in example.documents.iter().zip(&example.labels).take(width) {
                        pairs.push((example.query.as_str(), doc.as_str()));
                        labels.push(*label);
                    }
                }
                let groups = vec![width; batch.len()];
                loss.compute(model.logits(&pairs)?, &labels, &groups)
            }
            Self::Sparse(loss) => {
                let columns = (0..=width)
                    .map(|j| model.sparse(&column(j)))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                loss.compute(&columns).map(|(total, _)| total)
            }
        }
    }
}

/// Hyperparameters of a run, named as in sentence-transformers' training arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingArgs {
    /// Passes over the examples (1).
    pub epochs: usize,
    /// Epochs already done (resuming from a checkpoint): they are skipped, their shuffles drawn
    /// and their steps counted in the learning-rate schedule (0).
    pub start_epoch: usize,
    /// With `start_epoch`: the optimizer state saved after that epoch
    /// ([`AdamW::save_state`]), so that the run continues exactly as if it had not stopped.
    /// Without it AdamW's moments start afresh.
    pub optimizer_state: Option<std::path::PathBuf>,
    /// Examples per micro-batch (32): in-batch negatives come from the same micro-batch.
    pub batch_size: usize,
    /// Micro-batches whose gradients are added up before each optimizer step (1).
    pub gradient_accumulation_steps: usize,
    /// Peak learning rate (5e-5).
    pub lr: f64,
    /// Fraction of the optimizer steps spent warming up (0.1).
    pub warmup_ratio: f64,
    /// Decoupled weight decay on all but biases and LayerNorm weights (0.01).
    pub weight_decay: f64,
    /// Gradient clipping norm (1.0).
    pub max_grad_norm: Option<f64>,
    /// Seed of the shuffling and of the dropout masks (42).
    pub seed: u64,
    /// Parameters left untrained: every one whose checkpoint key contains one of these
    /// (`embeddings.word_embeddings`, say), as `requires_grad = False` in PyTorch (none).
    pub freeze: Vec<String>,
    /// Dropout in the forward passes, at the rates of the model's `config.json`, as
    /// sentence-transformers trains in `model.train()` mode (true). False makes every pass
    /// deterministic, as in the gradient-parity tests.
    pub dropout: bool,
    /// Draw a progress bar on stderr.
    pub show_progress_bar: bool,
    /// Print a line on stderr every this many optimizer steps (step, loss, examples/s), as
    /// sentence-transformers' `logging_steps` does: for logs, where no bar is drawn.
    pub logging_steps: Option<usize>,
}

impl TrainingArgs {
    /// Optimizer steps one epoch of `examples` takes.
    pub fn steps_per_epoch(&self, examples: usize) -> usize {
        examples
            .div_ceil(self.batch_size.max(1))
            .div_ceil(self.gradient_accumulation_steps.max(1))
    }
}

impl Default for TrainingArgs {
    fn default() -> Self {
        Self {
            epochs: 1,
            start_epoch: 0,
            optimizer_state: None,
            batch_size: 32,
            gradient_accumulation_steps: 1,
            lr: 5e-5,
            warmup_ratio: 0.1,
            weight_decay: 0.01,
            max_grad_norm: Some(1.0),
            seed: 42,
            freeze: Vec::new(),
            dropout: true,
            show_progress_bar: false,
            logging_steps: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Optimizer steps taken.
    pub steps: usize,
    /// Mean training loss of each epoch.
    pub epoch_losses: Vec<f32>,
    /// Examples per second over the run (forward, backward and update).
    pub examples_per_second: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Runs the training loop for one objective.
pub struct Trainer {
    objective: Objective,
    args: TrainingArgs,
}

impl Trainer {
    /// A trainer for `objective` with `args`.
    pub fn new(objective: Objective, args: TrainingArgs) -> Self {
        Self { objective, args }
    }

    /// Optimizer steps one epoch of `examples` takes.
    pub fn steps_per_epoch(&self, examples: usize) -> usize {
        self.args.steps_per_epoch(examples)
    }

    /// Trains `model` on `examples`; `after_epoch(model, optimizer, epoch)` runs after each
    /// epoch (1-based), for evaluation and checkpoints (the model with
    /// [`TrainableModel::save`], the optimizer with [`AdamW::save_state`]), and may stop the run
    /// with an error.
    pub fn fit(
        &self,
        model: &mut TrainableModel,
        examples: &[Example],
        mut after_epoch: impl FnMut(&TrainableModel, &AdamW, usize) -> Result<()>,
    ) -> Result<TrainReport> {
        let args = &self.args;
        if args.batch_size == 0 || args.gradient_accumulation_steps == 0 || args.epochs == 0 {
            return Err(TrainError::InvalidOption(
                "epochs, batch size and gradient accumulation steps must be at least 1".into(),
            ));
        }
        if !(args.lr.is_finite() && args.lr > 0.0 && (0.0..1.0).contains(&args.warmup_ratio)) {
            return Err(TrainError::InvalidOption(format!(
                "the learning rate must be positive ({}) and the warmup ratio in 0..1 ({})",
                args.lr, args.warmup_ratio
            )));
        }
        if examples.is_empty() {
            return Err(TrainError::InvalidOption("no training example".into()));
        }
        if model.kind() != self.objective.kind() {
            return Err(TrainError::InvalidOption(format!(
                "{} trains a {:?}, the model is a {:?}",
                self.objective.name(),
                self.objective.kind(),
                model.kind()
            )));
        }
        let total_steps = self.steps_per_epoch(examples.len()) * args.epochs;
        let config = AdamWConfig {
            lr: args.lr,
            weight_decay: args.weight_decay,
            max_grad_norm: args.max_grad_norm,
            warmup_steps: (total_steps as f64 * args.warmup_ratio).ceil() as usize,
            total_steps,
            ..AdamWConfig::default()
        };
        let mut optimizer = AdamW::new(config, model);
        if !args.freeze.is_empty() {
            optimizer.freeze(model, &args.freeze)?;
        }
        let resumed = match &args.optimizer_state {
            Some(path) if args.start_epoch > 0 => {
                optimizer.load_state(model, path)?;
                let expected = self.steps_per_epoch(examples.len()) * args.start_epoch;
                if optimizer.steps() != expected {
                    return Err(TrainError::InvalidOption(format!(
                        "the optimizer state {} is {} steps in, epoch {} of this run ends at step {expected}: \
                         the examples, batch size or accumulation differ from the run that wrote it",
                        path.display(),
                        optimizer.steps(),
                        args.start_epoch
                    )));
                }
                true
            }
            _ => false,
        };
        let bar = progress_bar(args.show_progress_bar, total_steps as u64, &self.objective.name());
        let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
        let started = Instant::now();
        let mut seen = 0usize;
        let mut epoch_losses = Vec::new();
        for epoch in 1..=args.epochs {
            let mut order: Vec<usize> = (0..examples.len()).collect();
            order.shuffle(&mut rng);
            if epoch <= args.start_epoch {
                let steps = self.steps_per_epoch(examples.len());
                if !resumed {
                    optimizer.skip_steps(steps);
                }
                bar.inc(steps as u64);
                continue;
            }
            let batches: Vec<Vec<&Example>> = order
                .chunks(args.batch_size)
                .map(|chunk| chunk.iter().map(|&i| &examples[i]).collect())
                .collect();
            let mut sum = 0f64;
            for (i, batch) in batches.iter().enumerate() {
                // Each micro-batch draws its masks from its place in the whole run, so a resumed
                // run drops what the uninterrupted one would have.
                let micro_batch = ((epoch - 1) * batches.len() + i) as u64;
                model.set_dropout(args.dropout.then_some(args.seed.rotate_left(32) ^ micro_batch));
                let loss = self.objective.loss(model, batch, &mut rng);
                model.set_dropout(None);
                let loss = loss?;
                let value: f32 = loss.clone().into_scalar();
                if !value.is_finite() {
                    return Err(TrainError::InvalidOption(format!(
                        "the loss became {value} at epoch {epoch}, batch {}: lower the learning rate",
                        i + 1
                    )));
                }
                sum += f64::from(value);
                seen += batch.len();
                let scale = 1.0 / args.gradient_accumulation_steps as f32;
                optimizer.accumulate(model, &loss.backward(), scale)?;
                let last = i + 1 == batches.len();
                if (i + 1) % args.gradient_accumulation_steps == 0 || last {
                    optimizer.step(model)?;
                    bar.inc(1);
                    let rate = seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    let message = format!("epoch {epoch} loss {:.4} {rate:.1} examples/s", sum / (i + 1) as f64);
                    if args
                        .logging_steps
                        .is_some_and(|n| n > 0 && optimizer.steps().is_multiple_of(n))
                    {
                        eprintln!("step {}/{total_steps}: {message}", optimizer.steps());
                    }
                    bar.set_message(message);
                }
            }
            epoch_losses.push((sum / batches.len() as f64) as f32);
            after_epoch(model, &optimizer, epoch)?;
        }
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        Ok(TrainReport {
            steps: optimizer.steps(),
            epoch_losses,
            examples_per_second: seen as f64 / seconds.max(1e-9),
            seconds,
        })
    }
}

fn progress_bar(show: bool, steps: u64, name: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps, {msg}, ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(name.to_string());
    bar
}
