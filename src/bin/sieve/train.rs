//! `sieve train`: fine-tunes a bi-encoder, reranker or SPLADE model (`sieve::train`) on a BEIR
//! folder or a pair / triplet / scored-pair file, with hard negatives mined from a collection,
//! a checkpoint and a dev evaluation after every epoch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sieve::encoders::training::{ModelKind, TrainableModel};
use sieve::engine::eval::read_qrels;
use sieve::train::data::{beir_pairs, read_pairs, read_scored_pairs, read_triplets};
use sieve::train::evaluation::{RetrievalScores, evaluate_dense, evaluate_reranker, evaluate_sparse};
use sieve::train::losses::{CrossLoss, DenseLoss, SpladeLoss};
use sieve::train::mining::{MiningOptions, Sampling, mine_hard_negatives};
use sieve::train::trainer::{Example, Objective, Trainer, TrainingArgs};

use crate::output::Output;
use crate::search::FusionArg;
use crate::{Error, Result, open_collection};

/// Fine-tune a model with sentence-transformers' losses; the output folder loads in
/// sentence-transformers unchanged.
///
/// DATA is a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or a .jsonl / .tsv file of pairs
/// (anchor, positive), triplets (anchor, positive, negative) or scored pairs (sentence1,
/// sentence2, score). A checkpoint is written to OUT/checkpoint-N after every epoch and the
/// final model to OUT; `--resume` continues after the last checkpoint (its weights, and the
/// optimizer state saved beside them, so the run ends as an uninterrupted one would).
///
/// The model trains on the device SIEVE_DEVICE names (cpu by default; wgpu with the `wgpu`
/// feature), in f32.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sieve train dense --init sentence-transformers/all-MiniLM-L6-v2 --data scifact --dev-qrels scifact/qrels/dev.tsv \\
      --db scifact.sieve --hard-negatives 3 --epochs 1 --out minilm-scifact
  sieve train cross --init sieve/stsb-minilm-l6-ce --data scifact --dev-qrels scifact/qrels/dev.tsv \\
      --db scifact.sieve --hard-negatives 7 --loss listnet --lr 3e-5 --out reranker-scifact")]
pub struct Args {
    /// What to train: dense (bi-encoder), cross (reranker) or sparse (SPLADE).
    #[arg(value_enum)]
    kind: Kind,
    /// The model to start from (hub id or folder).
    #[arg(long, value_name = "MODEL")]
    init: String,
    /// A BEIR folder or a pair / triplet / scored-pair file.
    #[arg(long, value_name = "PATH")]
    data: PathBuf,
    /// Training judgments of a BEIR folder [default: DATA/qrels/train.tsv].
    #[arg(long, value_name = "FILE")]
    qrels: Option<PathBuf>,
    /// Held-out judgments: their queries are left out of training and evaluated after every
    /// epoch (nDCG@10, MRR@10).
    #[arg(long, value_name = "FILE")]
    dev_qrels: Option<PathBuf>,
    /// Where the model is written.
    #[arg(long, value_name = "DIR", required_unless_present = "eval_only")]
    out: Option<PathBuf>,
    /// A collection of the BEIR corpus: hard negatives are mined from its hybrid first stage,
    /// and a reranker is evaluated over its top 20.
    #[arg(long, value_name = "DIR")]
    db: Option<PathBuf>,
    /// Hard negatives per query, from the collection's hybrid top `--range-max`.
    #[arg(long, default_value_t = 0)]
    hard_negatives: usize,
    /// Candidates considered when mining.
    #[arg(long, default_value_t = 100)]
    range_max: usize,
    /// Which candidates become the hard negatives: the best-ranked (top) or a draw seeded by
    /// --seed (random), as sentence-transformers' sampling_strategy.
    #[arg(long, value_enum, default_value_t = SamplingStrategy::Top)]
    sampling_strategy: SamplingStrategy,
    /// How the collection's hybrid first stage fuses its retrievers, for mining and for
    /// evaluating a reranker over its top 20 [default: the search default, minmax].
    #[arg(long, alias = "mining-fusion", value_enum, value_name = "FUSION")]
    fusion: Option<FusionArg>,
    /// The loss: mnrl, cosent, cosine or matryoshka (dense); bce, listnet, mnrl (4 in-batch
    /// negatives, scale 10, sigmoid) or softmax (cross-entropy over the positive and the hard
    /// negatives alone, raw logits) (cross); splade. Sentence-transformers' class names are
    /// accepted too [default: mnrl, bce, splade].
    #[arg(long)]
    loss: Option<String>,
    /// Widths of the Matryoshka loss, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "384,256,128,64")]
    matryoshka_dims: Vec<usize>,
    /// Passes over the data.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Examples per batch (in-batch negatives come from the same batch).
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Batches whose gradients add up to one optimizer step.
    #[arg(long, default_value_t = 1)]
    gradient_accumulation_steps: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-5)]
    lr: f64,
    /// Fraction of the steps spent warming up.
    #[arg(long, default_value_t = 0.1)]
    warmup_ratio: f64,
    /// Weight decay (not on biases and LayerNorm weights).
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Texts are truncated to this many tokens [default: the model's max_seq_length].
    #[arg(long)]
    max_seq_length: Option<usize>,
    /// Seed of the shuffling and the dropout masks.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Leave the parameters whose checkpoint key contains PATTERN untrained (repeatable or
    /// comma-separated), e.g. `embeddings.word_embeddings`.
    #[arg(long, value_name = "PATTERN", value_delimiter = ',')]
    freeze: Vec<String>,
    /// Train without dropout (by default the model drops activations at its config.json's rates,
    /// as sentence-transformers trains).
    #[arg(long)]
    no_dropout: bool,
    /// Continue from the last checkpoint in OUT (same data and options as the first run).
    #[arg(long)]
    resume: bool,
    /// Only evaluate MODEL on --dev-qrels (the baseline of a run), train nothing.
    #[arg(long, requires = "dev_qrels")]
    eval_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SamplingStrategy {
    Top,
    Random,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Kind {
    Dense,
    Cross,
    Sparse,
}

impl Kind {
    fn model_kind(self) -> ModelKind {
        match self {
            Self::Dense => ModelKind::SentenceTransformer,
            Self::Cross => ModelKind::CrossEncoder,
            Self::Sparse => ModelKind::SparseEncoder,
        }
    }
}

fn objective(args: &Args) -> Result<Objective> {
    let name = args.loss.as_deref().map(str::to_lowercase);
    let name = name.as_deref().map(|n| n.trim_end_matches("loss"));
    let mnrl = DenseLoss::MultipleNegativesRanking { scale: 20.0 };
    Ok(match (args.kind, name) {
        (Kind::Dense, None | Some("mnrl" | "multiplenegativesranking")) => Objective::Dense(mnrl),
        (Kind::Dense, Some("cosent")) => Objective::Dense(DenseLoss::CoSent { scale: 20.0 }),
        (Kind::Dense, Some("cosine" | "cosinesimilarity")) => Objective::Dense(DenseLoss::CosineSimilarity),
        (Kind::Dense, Some("matryoshka")) => Objective::Dense(DenseLoss::Matryoshka {
            inner: Box::new(mnrl),
            weights: vec![1.0; args.matryoshka_dims.len()],
            dims: args.matryoshka_dims.clone(),
        }),
        (Kind::Cross, None | Some("bce" | "binarycrossentropy")) => Objective::Cross(CrossLoss::default()),
        (Kind::Cross, Some("listnet")) => Objective::Cross(CrossLoss::ListNet),
        (Kind::Cross, Some("mnrl" | "multiplenegativesranking")) => {
            Objective::Cross(CrossLoss::MULTIPLE_NEGATIVES_RANKING)
        }
        (Kind::Cross, Some("softmax")) => Objective::Cross(CrossLoss::SOFTMAX),
        (Kind::Sparse, None | Some("splade")) => Objective::Sparse(SpladeLoss::default()),
        (kind, Some(other)) => {
            return Err(Error::msg(format!(
                "--loss {other:?} is not a loss for `sieve train {}` (dense: mnrl, cosent, cosine, matryoshka; cross: bce, listnet, mnrl, softmax; sparse: splade)",
                format!("{kind:?}").to_lowercase()
            )));
        }
    })
}

/// Examples of a pair / triplet / scored-pair file, as the loss reads them.
fn file_examples(path: &Path, scored: bool) -> Result<Vec<Example>> {
    let err = |e: sieve::train::TrainError| Error::msg(e.to_string());
    if scored {
        return Ok(read_scored_pairs(path)
            .map_err(err)?
            .into_iter()
            .map(|p| Example::scored(&p.sentence1, &p.sentence2, p.score))
            .collect());
    }
    match read_triplets(path) {
        Ok(triplets) => Ok(triplets
            .into_iter()
            .map(|t| Example::with_negatives(&t.anchor, &t.positive, &[&t.negative]))
            .collect()),
        Err(_) => Ok(read_pairs(path)
            .map_err(err)?
            .into_iter()
            .map(|p| Example::pair(&p.anchor, &p.positive))
            .collect()),
    }
}

/// The optimizer state's file in a checkpoint folder (transformers' is `optimizer.pt`).
const OPTIMIZER_STATE: &str = "optimizer.safetensors";

/// The highest `checkpoint-N` in `out`.
fn last_checkpoint(out: &Path) -> Option<(usize, PathBuf)> {
    std::fs::read_dir(out)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.strip_prefix("checkpoint-")?.parse().ok()?;
            e.path().join("model.safetensors").is_file().then(|| (n, e.path()))
        })
        .max_by_key(|(n, _)| *n)
}

pub fn run(args: Args, out: &Output) -> Result {
    let objective = objective(&args)?;
    let err = |e: sieve::train::TrainError| Error::msg(e.to_string());
    let scored = matches!(
        &objective,
        Objective::Dense(DenseLoss::CoSent { .. } | DenseLoss::CosineSimilarity)
    );
    if args.hard_negatives > 0 && args.db.is_none() {
        return Err(Error::msg(
            "--hard-negatives needs --db, the collection to mine them from",
        ));
    }
    let collection = args.db.as_deref().map(|db| open_collection(db, out)).transpose()?;
    // Examples, and the held-out queries and corpus to evaluate on.
    let mut dev = None;
    let examples = if args.data.is_dir() {
        let qrels = args.qrels.clone().unwrap_or_else(|| args.data.join("qrels/train.tsv"));
        let pairs = beir_pairs(&args.data, &qrels, args.dev_qrels.as_deref()).map_err(err)?;
        let mined = match (&collection, args.hard_negatives) {
            (Some(collection), n) if n > 0 => {
                out.note(&format!(
                    "mining {n} hard negatives for {} queries",
                    pairs.queries.len()
                ));
                let sampling = match args.sampling_strategy {
                    SamplingStrategy::Top => Sampling::Top,
                    SamplingStrategy::Random => Sampling::Random { seed: args.seed },
                };
                let options = MiningOptions {
                    num_negatives: n,
                    range_max: args.range_max,
                    sampling,
                    fusion: args.fusion.map(FusionArg::fusion),
                    ..MiningOptions::default()
                };
                mine_hard_negatives(collection, &pairs.queries(), &options).map_err(err)?
            }
            _ => Vec::new(),
        };
        if let Some(dev_qrels) = &args.dev_qrels {
            let judged = read_qrels(dev_qrels)?;
            let queries: BTreeMap<String, String> = sieve::engine::eval::read_jsonl(&args.data.join("queries.jsonl"))?
                .into_iter()
                .filter(|(id, _)| judged.contains_key(id))
                .collect();
            dev = Some((queries, judged, pairs.corpus.clone()));
        }
        pairs.examples(&mined)
    } else {
        if args.dev_qrels.is_some() {
            return Err(Error::msg(
                "--dev-qrels needs DATA to be a BEIR folder (its queries and corpus)",
            ));
        }
        file_examples(&args.data, scored)?
    };
    if examples.is_empty() {
        return Err(Error::msg(format!("no training example in {}", args.data.display())));
    }
    let evaluate = |dir: &Path| -> Result<Option<RetrievalScores>> {
        let Some((queries, qrels, corpus)) = &dev else {
            return Ok(None);
        };
        let scores = match args.kind {
            Kind::Dense => evaluate_dense(dir, queries, corpus, qrels),
            Kind::Sparse => evaluate_sparse(dir, queries, corpus, qrels),
            Kind::Cross => match &collection {
                Some(collection) => {
                    evaluate_reranker(dir, collection, queries, qrels, 20, args.fusion.map(FusionArg::fusion))
                }
                None => return Ok(None),
            },
        };
        scores.map(Some).map_err(err)
    };
    if args.eval_only {
        let files = sieve::ModelFiles::resolve(&args.init)?;
        let folder = files.required("config.json")?;
        let folder = folder.parent().unwrap_or(Path::new("."));
        let s = evaluate(folder)?.ok_or_else(|| Error::msg("evaluating a reranker needs --db, its first stage"))?;
        outln!(
            "{}: dev nDCG@10 {:.4}, MRR@10 {:.4} ({} queries)",
            args.init,
            s.ndcg_at_10,
            s.mrr_at_10,
            s.queries
        )?;
        return Ok(());
    }
    let out_dir = args.out.clone().unwrap_or_default();
    // The model: from --init, or the last checkpoint when resuming.
    let resume = if args.resume { last_checkpoint(&out_dir) } else { None };
    // Checkpoints of an older sieve have no optimizer state: their moments start afresh.
    let optimizer_state = resume
        .as_ref()
        .map(|(_, dir)| dir.join(OPTIMIZER_STATE))
        .filter(|path| path.is_file());
    let init = match &resume {
        Some((epoch, dir)) => {
            let state = if optimizer_state.is_some() {
                "with its optimizer state"
            } else {
                "without optimizer state: AdamW's moments start afresh"
            };
            out.note(&format!(
                "resuming after epoch {epoch} from {} ({state})",
                dir.display()
            ));
            dir.to_string_lossy().into_owned()
        }
        None => args.init.clone(),
    };
    // SIEVE_DEVICE picks where the model trains, as it picks where the other commands encode.
    let options = crate::load_options()?;
    if options.dtype != sieve::encoders::Dtype::F32 {
        return Err(Error::msg(format!(
            "sieve train trains in f32; SIEVE_DTYPE={} is for encoding (unset it, or quantize the trained model when you load it)",
            options.dtype
        )));
    }
    let mut model = TrainableModel::from_pretrained_on(args.kind.model_kind(), &init, options.device)?;
    if options.device != sieve::encoders::Device::Cpu {
        out.note(&format!("training on {}", options.device));
    }
    if let Some(length) = args.max_seq_length {
        model.set_max_seq_length(length)?;
    }
    let mut training = TrainingArgs {
        epochs: args.epochs,
        start_epoch: resume.as_ref().map_or(0, |(epoch, _)| *epoch),
        optimizer_state,
        batch_size: args.batch_size,
        gradient_accumulation_steps: args.gradient_accumulation_steps,
        lr: args.lr,
        warmup_ratio: args.warmup_ratio,
        weight_decay: args.weight_decay,
        seed: args.seed,
        freeze: args.freeze.clone(),
        dropout: !args.no_dropout,
        show_progress_bar: out.bars(),
        ..TrainingArgs::default()
    };
    // Without a terminal (a log file), about twenty lines a run instead of the bar.
    if !out.bars() && !out.quiet() {
        let steps = training.steps_per_epoch(examples.len()) * args.epochs;
        training.logging_steps = Some(steps.div_ceil(20).max(1));
    }
    out.note(&format!(
        "training {} on {} examples with {} for {} epoch{}",
        args.init,
        examples.len(),
        objective.description(),
        args.epochs,
        if args.epochs == 1 { "" } else { "s" }
    ));
    let trainer = Trainer::new(objective, training);
    let report = trainer
        .fit(&mut model, &examples, |model, optimizer, epoch| {
            let dir = out_dir.join(format!("checkpoint-{epoch}"));
            model.save(&dir)?;
            optimizer.save_state(model, &dir.join(OPTIMIZER_STATE))?;
            match evaluate(&dir) {
                Ok(Some(s)) => out.note(&format!(
                    "epoch {epoch}: dev nDCG@10 {:.4}, MRR@10 {:.4} ({} queries); checkpoint {}",
                    s.ndcg_at_10,
                    s.mrr_at_10,
                    s.queries,
                    dir.display()
                )),
                Ok(None) => out.note(&format!("epoch {epoch}: checkpoint {}", dir.display())),
                Err(e) => return Err(sieve::train::TrainError::InvalidOption(e.to_string())),
            }
            Ok(())
        })
        .map_err(err)?;
    model.save(&out_dir)?;
    outln!(
        "trained {} steps in {:.1} min ({:.1} examples/s); epoch losses {:?}; model in {}",
        report.steps,
        report.seconds / 60.0,
        report.examples_per_second,
        report.epoch_losses,
        out_dir.display()
    )?;
    Ok(())
}
