//! AdamW as transformers' `Trainer` sets it up: decoupled weight decay on every weight but biases
//! and LayerNorm weights, a linear warmup then linear decay of the learning rate, gradients
//! clipped to a global norm, and accumulation over micro-batches.
//!
//! ```no_run
//! use sieve_encoders::training::{ModelKind, TrainableModel};
//! use sieve_train::losses::DenseLoss;
//! use sieve_train::optim::{AdamW, AdamWConfig};
//!
//! let mut model = TrainableModel::from_pretrained(ModelKind::SentenceTransformer, "all-MiniLM-L6-v2")?;
//! let mut optimizer = AdamW::new(AdamWConfig { total_steps: 100, warmup_steps: 10, ..AdamWConfig::default() }, &model);
//! let columns = vec![model.embed(&["a query"])?, model.embed(&["its document"])?];
//! let loss = DenseLoss::default().compute(&columns, None)?;
//! optimizer.accumulate(&model, &loss.backward(), 1.0)?;
//! let report = optimizer.step(&mut model)?;
//! println!("lr {} grad norm {}", report.lr, report.grad_norm);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::{Gradients, Tensor, TensorData};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use sieve_encoders::training::{Parameter, TrainableModel, write_safetensors};

use crate::{Result, TrainError};

/// Hyperparameters, with transformers' defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Peak learning rate (5e-5).
    pub lr: f64,
    /// Exponential decay of the first and second moments (0.9, 0.999).
    pub betas: (f64, f64),
    /// Added to the denominator (1e-8).
    pub eps: f64,
    /// Decoupled weight decay, not applied to biases and LayerNorm weights (0.0).
    pub weight_decay: f64,
    /// Gradients are scaled down to this global L2 norm when above it (1.0; `None` disables).
    pub max_grad_norm: Option<f64>,
    /// Steps of linear warmup from 0 to `lr`.
    pub warmup_steps: usize,
    /// Steps of the whole run; the rate decays linearly to 0 at this step.
    pub total_steps: usize,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 5e-5,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: Some(1.0),
            warmup_steps: 0,
            total_steps: 1,
        }
    }
}

impl AdamWConfig {
    /// The learning rate of optimizer step `step` (0-based), as transformers'
    /// `get_linear_schedule_with_warmup` gives it: the first warmup step runs at rate 0.
    pub fn lr_at(&self, step: usize) -> f64 {
        let factor = if step < self.warmup_steps {
            step as f64 / self.warmup_steps.max(1) as f64
        } else {
            let left = self.total_steps.saturating_sub(step) as f64;
            (left / self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64).max(0.0)
        };
        self.lr * factor
    }
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// The learning rate it used.
    pub lr: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
}

/// Per-parameter state: the moments and the number of steps it has taken.
#[derive(Clone)]
struct Moments {
    first: Tensor<1>,
    second: Tensor<1>,
    steps: i32,
}

/// The optimizer. Gradients of micro-batches are added up with [`accumulate`](Self::accumulate),
/// then [`step`](Self::step) clips them, updates the weights and clears them.
pub struct AdamW {
    config: AdamWConfig,
    step: usize,
    /// One entry per model parameter, in [`TrainableModel::parameters`] order.
    moments: Vec<Option<Moments>>,
    gradients: Vec<Option<Tensor<1>>>,
    decay: Vec<bool>,
    /// Parameters left as they are (PyTorch's `requires_grad = False`).
    frozen: Vec<bool>,
}

impl AdamW {
    /// An optimizer for `model`'s parameters.
    pub fn new(config: AdamWConfig, model: &TrainableModel) -> Self {
        let parameters = model.parameters();
        Self {
            config,
            step: 0,
            moments: vec![None; parameters.len()],
            gradients: vec![None; parameters.len()],
            decay: parameters.iter().map(|p| !p.is_bias_or_norm()).collect(),
            frozen: vec![false; parameters.len()],
        }
    }

    /// Leaves every parameter whose checkpoint key contains one of `patterns` as it is, as
    /// setting `requires_grad = False` does in PyTorch: its gradient is neither applied nor
    /// counted in the clipping norm. Returns how many parameters it froze; a pattern that
    /// matches none is an error.
    ///
    /// ```no_run
    /// # use sieve_encoders::training::{ModelKind, TrainableModel};
    /// # use sieve_train::optim::{AdamW, AdamWConfig};
    /// let model = TrainableModel::from_pretrained(ModelKind::CrossEncoder, "sieve/stsb-minilm-l6-ce")?;
    /// let mut optimizer = AdamW::new(AdamWConfig::default(), &model);
    /// assert_eq!(optimizer.freeze(&model, &["embeddings.word_embeddings"])?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn freeze(&mut self, model: &TrainableModel, patterns: &[impl AsRef<str>]) -> Result<usize> {
        let parameters = self.parameters_of(model)?;
        for pattern in patterns {
            let pattern = pattern.as_ref();
            let mut matched = false;
            for (frozen, parameter) in self.frozen.iter_mut().zip(&parameters) {
                if parameter.name().contains(pattern) {
                    *frozen = true;
                    matched = true;
                }
            }
            if !matched {
                return Err(TrainError::InvalidOption(format!(
                    "no parameter to freeze matches `{pattern}` (parameters are named by checkpoint key, \
                     like `{}`)",
                    parameters.first().map_or("", |p| p.name())
                )));
            }
        }
        Ok(self.frozen.iter().filter(|f| **f).count())
    }

    /// The model's parameters, checked to be as many as this optimizer was made for.
    fn parameters_of(&self, model: &TrainableModel) -> Result<Vec<Parameter>> {
        let parameters = model.parameters();
        if parameters.len() != self.decay.len() {
            return Err(TrainError::InvalidOption(
                "the model's parameters changed since the optimizer was made".into(),
            ));
        }
        Ok(parameters)
    }

    /// The configuration.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Optimizer steps taken so far.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// Moves the schedule on by `steps` without updating (resuming a run).
    pub fn skip_steps(&mut self, steps: usize) {
        self.step += steps;
    }

    /// Writes the optimizer's state to `path` (a safetensors file, replaced atomically): the
    /// schedule position, and each parameter's moments (`{key}.exp_avg`, `{key}.exp_avg_sq`,
    /// flat in the model's layout) and step count. [`load_state`](Self::load_state) reads it
    /// back, so that a resumed run continues as if it had not stopped.
    ///
    /// ```no_run
    /// # use sieve_encoders::training::{ModelKind, TrainableModel};
    /// # use sieve_train::optim::{AdamW, AdamWConfig};
    /// let model = TrainableModel::from_pretrained(ModelKind::SentenceTransformer, "all-MiniLM-L6-v2")?;
    /// let optimizer = AdamW::new(AdamWConfig::default(), &model);
    /// optimizer.save_state(&model, "out/checkpoint-1/optimizer.safetensors".as_ref())?;
    /// let mut resumed = AdamW::new(AdamWConfig::default(), &model);
    /// resumed.load_state(&model, "out/checkpoint-1/optimizer.safetensors".as_ref())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save_state(&self, model: &TrainableModel, path: &Path) -> Result<()> {
        let parameters = self.parameters_of(model)?;
        let mut tensors = Vec::new();
        let mut counts = serde_json::Map::new();
        for (parameter, state) in parameters.iter().zip(&self.moments) {
            let Some(state) = state else { continue };
            for (suffix, moment) in [("exp_avg", &state.first), ("exp_avg_sq", &state.second)] {
                let values = moment
                    .clone()
                    .into_data()
                    .try_into_vec::<f32>()
                    .map_err(|e| state_error(path, format!("{e:?}")))?;
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                let name = format!("{}.{suffix}", parameter.name());
                tensors.push((name, safetensors::Dtype::F32, vec![values.len()], bytes));
            }
            counts.insert(parameter.name().to_string(), state.steps.into());
        }
        let metadata = HashMap::from([
            ("step".to_string(), self.step.to_string()),
            (
                "parameter_steps".to_string(),
                serde_json::Value::Object(counts).to_string(),
            ),
        ]);
        write_safetensors(path, &tensors, metadata).map_err(|e| state_error(path, e.to_string()))
    }

    /// Restores a state written by [`save_state`](Self::save_state) for the same model: the
    /// schedule position, the moments and the per-parameter step counts. A file for another
    /// model (a key it lacks, a size that differs) is refused and leaves `self` unchanged.
    pub fn load_state(&mut self, model: &TrainableModel, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| state_error(path, e.to_string()))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| state_error(path, e.to_string()))?;
        let file = SafeTensors::deserialize(&bytes).map_err(|e| state_error(path, e.to_string()))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let step: usize = metadata
            .get("step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| state_error(path, "no `step` in its metadata".into()))?;
        let counts: HashMap<String, i32> = metadata
            .get("parameter_steps")
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| state_error(path, "no `parameter_steps` in its metadata".into()))?;
        let parameters = self.parameters_of(model)?;
        if let Some(unknown) = counts
            .keys()
            .find(|k| !parameters.iter().any(|p| p.name() == k.as_str()))
        {
            return Err(state_error(
                path,
                format!("`{unknown}` is not a parameter of this model"),
            ));
        }
        let mut moments = vec![None; parameters.len()];
        for (slot, parameter) in moments.iter_mut().zip(&parameters) {
            let Some(&steps) = counts.get(parameter.name()) else {
                continue;
            };
            let device = parameter.flat().device();
            let read = |suffix: &str| -> Result<Tensor<1>> {
                let name = format!("{}.{suffix}", parameter.name());
                let view = file.tensor(&name).map_err(|e| state_error(path, e.to_string()))?;
                if view.dtype() != safetensors::Dtype::F32 || view.shape() != [parameter.len()] {
                    return Err(state_error(
                        path,
                        format!(
                            "`{name}` is {:?} {:?}, the parameter has {} values",
                            view.dtype(),
                            view.shape(),
                            parameter.len()
                        ),
                    ));
                }
                let values: Vec<f32> = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                Ok(Tensor::from_data(TensorData::new(values, [parameter.len()]), &device))
            };
            *slot = Some(Moments {
                first: read("exp_avg")?,
                second: read("exp_avg_sq")?,
                steps,
            });
        }
        self.moments = moments;
        self.step = step;
        Ok(())
    }

    /// Adds `scale` times the gradients in `grads` (say `1 / accumulation steps`) to the ones
    /// gathered since the last step.
    pub fn accumulate(&mut self, model: &TrainableModel, grads: &Gradients, scale: f32) -> Result<()> {
        let parameters = self.parameters_of(model)?;
        for ((slot, parameter), frozen) in self.gradients.iter_mut().zip(&parameters).zip(&self.frozen) {
            if *frozen {
                continue;
            }
            if let Some(grad) = parameter.grad(grads) {
                let grad = if scale == 1.0 { grad } else { grad * scale };
                *slot = Some(match slot.take() {
                    Some(sum) => sum + grad,
                    None => grad,
                });
            }
        }
        Ok(())
    }

    /// Clips the gathered gradients, applies one AdamW update to every parameter that has one
    /// (`torch.optim.AdamW` arithmetic), and rebuilds the model around the new weights.
    pub fn step(&mut self, model: &mut TrainableModel) -> Result<StepReport> {
        let lr = self.config.lr_at(self.step);
        let squares: f64 = self
            .gradients
            .iter()
            .flatten()
            .map(|g| f64::from(g.clone().powi_scalar(2).sum().into_scalar::<f32>()))
            .sum();
        let grad_norm = squares.sqrt();
        // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when below 1.
        let clip = match self.config.max_grad_norm {
            Some(max) => (max / (grad_norm + 1e-6)).min(1.0),
            None => 1.0,
        };
        let (beta1, beta2) = self.config.betas;
        let mut values = Vec::with_capacity(self.gradients.len());
        for (i, parameter) in model.parameters().iter().enumerate() {
            let mut value = parameter.flat();
            if let Some(grad) = self.gradients[i].take() {
                let grad = if clip < 1.0 { grad * clip as f32 } else { grad };
                let state = self.moments[i].get_or_insert_with(|| Moments {
                    first: grad.zeros_like(),
                    second: grad.zeros_like(),
                    steps: 0,
                });
                state.steps += 1;
                if self.decay[i] && self.config.weight_decay != 0.0 {
                    value = value * (1.0 - lr * self.config.weight_decay) as f32;
                }
                state.first = state.first.clone() * beta1 as f32 + grad.clone() * (1.0 - beta1) as f32;
                state.second = state.second.clone() * beta2 as f32 + grad.powi_scalar(2) * (1.0 - beta2) as f32;
                let correction1 = 1.0 - beta1.powi(state.steps);
                let correction2 = 1.0 - beta2.powi(state.steps);
                let denominator = state.second.clone().sqrt() / correction2.sqrt() as f32 + self.config.eps as f32;
                value = value - state.first.clone() / denominator * (lr / correction1) as f32;
            }
            values.push(value);
        }
        model.set_values(values)?;
        self.step += 1;
        Ok(StepReport { lr, grad_norm })
    }
}

fn state_error(path: &Path, reason: String) -> TrainError {
    TrainError::OptimizerState {
        path: path.to_path_buf(),
        reason,
    }
}
