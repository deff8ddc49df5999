//! Dropout while fine-tuning: PyTorch's `model.train()` zeroes a random share of some activations
//! (and scales the rest by `1 / (1 − p)`), at the rates of the model's `config.json`, in the places
//! transformers puts `nn.Dropout`. Inference never drops anything.
//!
//! A [`TrainableModel`](crate::training::TrainableModel) with dropout on runs each forward pass
//! inside [`scope`], which hands the rates and a seed to the layers on this thread; every
//! [`dropout`] call in the pass draws its own mask from that seed and its place in the pass, so
//! the same seed drops the same elements. Outside a scope (inference, the gradient-parity tests)
//! [`dropout`] returns its input.

// Only training opens a scope: without the `train` feature every `dropout` is the identity.
#![cfg_attr(not(feature = "train"), allow(dead_code))]

use std::cell::RefCell;

use burn::tensor::{Distribution, Tensor};
use serde_json::Value;

/// Where in the model a dropout sits; each family maps these to its config's rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Site {
    /// After the embeddings' LayerNorm.
    Embeddings,
    /// On the attention probabilities.
    AttentionProbs,
    /// After the attention's output projection, before the residual add (`BertSelfOutput`).
    AttentionOutput,
    /// After the feed-forward block's second projection, before the residual add (`BertOutput`).
    FeedForwardOutput,
    /// On the `[CLS]` state before a classification head's dense layer (RoBERTa's head).
    ClassifierInput,
    /// Before the classifier's last projection.
    Classifier,
}

/// The dropout probability of every [`Site`] of one model.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct DropoutRates {
    pub(crate) embeddings: f32,
    pub(crate) attention_probs: f32,
    pub(crate) attention_output: f32,
    pub(crate) feed_forward_output: f32,
    pub(crate) classifier_input: f32,
    pub(crate) classifier: f32,
}

impl DropoutRates {
    /// The rates `config.json` of a `family` ([`super::family`]) gives, with transformers'
    /// defaults (0.1) where a key is absent and, for the classifier, `classifier_dropout` falling
    /// back to `hidden_dropout_prob` as transformers does.
    pub(crate) fn from_config(family: &str, config: &Value) -> Self {
        let rate = |key: &str| config.get(key).and_then(Value::as_f64).map(|p| p as f32);
        if family == "distilbert" {
            // `Embeddings.dropout`, `MultiHeadSelfAttention.dropout`, `FFN.dropout`, and
            // `DistilBertForSequenceClassification.dropout`; nothing after the attention's `out_lin`.
            let dropout = rate("dropout").unwrap_or(0.1);
            return Self {
                embeddings: dropout,
                attention_probs: rate("attention_dropout").unwrap_or(0.1),
                attention_output: 0.0,
                feed_forward_output: dropout,
                classifier_input: 0.0,
                classifier: rate("seq_classif_dropout").unwrap_or(0.2),
            };
        }
        let hidden = rate("hidden_dropout_prob").unwrap_or(0.1);
        let classifier = rate("classifier_dropout").unwrap_or(hidden);
        Self {
            embeddings: hidden,
            attention_probs: rate("attention_probs_dropout_prob").unwrap_or(0.1),
            attention_output: hidden,
            feed_forward_output: hidden,
            // `RobertaClassificationHead` drops the `[CLS]` state before its dense layer too.
            classifier_input: if family == "roberta" { classifier } else { 0.0 },
            classifier,
        }
    }

    /// The probability at `site`.
    fn at(&self, site: Site) -> f32 {
        match site {
            Site::Embeddings => self.embeddings,
            Site::AttentionProbs => self.attention_probs,
            Site::AttentionOutput => self.attention_output,
            Site::FeedForwardOutput => self.feed_forward_output,
            Site::ClassifierInput => self.classifier_input,
            Site::Classifier => self.classifier,
        }
    }

    /// Whether any site drops anything.
    pub(crate) fn any(&self) -> bool {
        [
            self.embeddings,
            self.attention_probs,
            self.attention_output,
            self.feed_forward_output,
            self.classifier_input,
            self.classifier,
        ]
        .iter()
        .any(|&p| p > 0.0)
    }
}

/// The dropout of the forward pass running on this thread.
struct Active {
    rates: DropoutRates,
    seed: u64,
    /// Masks drawn so far in this pass.
    calls: u64,
}

thread_local! {
    static ACTIVE: RefCell<Option<Active>> = const { RefCell::new(None) };
}

/// Runs `pass` with dropout at `rates`, its masks drawn from `seed`. Scopes do not nest: an inner
/// one replaces the outer until it ends.
pub(crate) fn scope<T>(rates: DropoutRates, seed: u64, pass: impl FnOnce() -> T) -> T {
    /// Ends the scope even when `pass` panics.
    struct Restore(Option<Active>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ACTIVE.with(|a| *a.borrow_mut() = self.0.take());
        }
    }
    let previous = ACTIVE.with(|a| a.borrow_mut().replace(Active { rates, seed, calls: 0 }));
    let _restore = Restore(previous);
    pass()
}

/// The probability and the mask seed for the next dropout at `site`, or `None` where nothing is
/// dropped.
fn next(site: Site) -> Option<(f32, u64)> {
    ACTIVE.with(|a| {
        let mut active = a.borrow_mut();
        let active = active.as_mut()?;
        let p = active.rates.at(site);
        if p <= 0.0 {
            return None;
        }
        active.calls += 1;
        Some((p, mix(active.seed, active.calls)))
    })
}

/// Whether the pass on this thread drops anything at `site`.
pub(crate) fn active(site: Site) -> bool {
    ACTIVE.with(|a| a.borrow().as_ref().is_some_and(|a| a.rates.at(site) > 0.0))
}

/// Inverted dropout of `x` at `site`: each element is zeroed with the site's probability `p` and
/// the others are scaled by `1 / (1 − p)`; `x` itself outside a [`scope`].
pub(crate) fn dropout<const D: usize>(x: Tensor<D>, site: Site) -> Tensor<D> {
    let Some((p, seed)) = next(site) else {
        return x;
    };
    #[cfg(feature = "train")]
    if super::cpu::autodiff::applies(&x) {
        return super::cpu::autodiff::dropout(x, p, seed);
    }
    // Other devices: burn's own random mask (not drawn from the seed).
    let _ = seed;
    let keep = Tensor::<D>::random(x.shape(), Distribution::Bernoulli(f64::from(1.0 - p)), &x.device());
    x * keep.div_scalar(1.0 - p)
}

/// A well-spread 64-bit seed from two integers (the finaliser of SplitMix64), so that nearby
/// inputs give unrelated mask streams.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rates_follow_each_familys_config() {
        let bert = DropoutRates::from_config(
            "bert",
            &json!({"hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.2}),
        );
        assert_eq!(
            (bert.at(Site::AttentionProbs), bert.at(Site::AttentionOutput)),
            (0.2, 0.1)
        );
        assert_eq!((bert.at(Site::ClassifierInput), bert.at(Site::Classifier)), (0.0, 0.1));
        let roberta = DropoutRates::from_config("roberta", &json!({"classifier_dropout": 0.3}));
        assert_eq!(
            (roberta.at(Site::ClassifierInput), roberta.at(Site::Classifier)),
            (0.3, 0.3)
        );
        let distil = DropoutRates::from_config("distilbert", &json!({"dropout": 0.05}));
        assert_eq!(
            (distil.at(Site::AttentionOutput), distil.at(Site::FeedForwardOutput)),
            (0.0, 0.05)
        );
        let off = DropoutRates::from_config(
            "bert",
            &json!({"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}),
        );
        assert!(!off.any());
    }

    #[test]
    fn dropout_applies_only_inside_a_scope() {
        let device = burn::tensor::Device::flex();
        let x = Tensor::<2>::ones([4, 64], &device);
        let rates = DropoutRates {
            feed_forward_output: 0.5,
            ..DropoutRates::default()
        };
        assert_eq!(
            dropout(x.clone(), Site::FeedForwardOutput).into_data(),
            x.clone().into_data()
        );
        let dropped: Vec<f32> = scope(rates, 7, || dropout(x.clone(), Site::FeedForwardOutput))
            .into_data()
            .iter::<f32>()
            .collect();
        assert!(
            dropped.iter().all(|&v| v == 0.0 || v == 2.0),
            "kept values are scaled by 1/(1-p)"
        );
        let zeros = dropped.iter().filter(|&&v| v == 0.0).count();
        assert!((64..192).contains(&zeros), "{zeros} of 256 dropped at p = 0.5");
        // Sites at rate 0 and passes after the scope drop nothing.
        let untouched = scope(rates, 7, || dropout(x.clone(), Site::AttentionOutput));
        assert_eq!(untouched.into_data(), x.clone().into_data());
        assert_eq!(dropout(x.clone(), Site::FeedForwardOutput).into_data(), x.into_data());
    }
}
