//! The masked-LM head of a SPLADE model on the host, fused with SPLADE's max pooling.
//!
//! The vocabulary projection (`[hidden, vocab]`, 30,522 columns for BERT) is most of a small
//! SPLADE model's work. It is packed in column slices; each rayon task takes one slice, runs
//! every real token of the batch through it a block of rows at a time, and folds the logits into
//! each text's running maximum, so the `[tokens, vocab]` logits never exist whole and padding is
//! never projected.

use std::ops::Range;

use rayon::prelude::*;

use super::encoder::{CpuLayerNorm, activate};
use super::linear::CpuLinear;
use crate::device::Dtype;
use crate::models::layers::Activation;

/// Vocabulary columns per slice (per rayon task).
const COLUMNS_PER_SLICE: usize = 2048;
/// Token rows projected at a time within a slice: 128 × 2048 logits = 1 MiB.
const ROWS_PER_BLOCK: usize = 128;

pub(crate) struct CpuLmHead {
    dense: CpuLinear,
    act: Activation,
    norm: CpuLayerNorm,
    /// The decoder in column slices, each with its share of the bias.
    slices: Vec<CpuLinear>,
    vocab: usize,
}

impl CpuLmHead {
    /// `decoder` is `[hidden, vocab]` row-major, `bias` `[vocab]`.
    pub(crate) fn new(
        dense: CpuLinear,
        act: Activation,
        norm: CpuLayerNorm,
        decoder: &[f32],
        bias: &[f32],
        dtype: Dtype,
    ) -> Self {
        let vocab = bias.len();
        let hidden = decoder.len() / vocab.max(1);
        let slices = (0..vocab)
            .step_by(COLUMNS_PER_SLICE)
            .map(|start| {
                let width = COLUMNS_PER_SLICE.min(vocab - start);
                let mut weight = Vec::with_capacity(hidden * width);
                for row in decoder.chunks_exact(vocab) {
                    weight.extend_from_slice(&row[start..start + width]);
                }
                CpuLinear::new(&weight, bias[start..start + width].to_vec(), hidden, width, dtype)
            })
            .collect();
        Self {
            dense,
            act,
            norm,
            slices,
            vocab,
        }
    }

    /// `max_t (transform(x[t]) · W + b)` over the tokens of each sequence: `[seqs, vocab]`.
    pub(crate) fn max_logits(&self, x: &[f32], seqs: &[Range<usize>]) -> Vec<f32> {
        let hidden = self.dense.d_in();
        let rows = x.len() / hidden.max(1);
        let mut transformed = vec![0.0; rows * self.dense.d_out()];
        self.dense.forward(x, rows, &mut transformed);
        activate(self.act, &mut transformed);
        self.norm.forward(&mut transformed, None);
        // Which sequence each row belongs to.
        let owner: Vec<usize> = seqs
            .iter()
            .enumerate()
            .flat_map(|(s, range)| std::iter::repeat_n(s, range.len()))
            .collect();
        let per_slice: Vec<Vec<f32>> = self
            .slices
            .par_iter()
            .map(|slice| {
                let width = slice.d_out();
                let mut pooled = vec![f32::NEG_INFINITY; seqs.len() * width];
                let mut logits = vec![0.0; ROWS_PER_BLOCK * width];
                for start in (0..rows).step_by(ROWS_PER_BLOCK) {
                    let len = ROWS_PER_BLOCK.min(rows - start);
                    slice.forward(&transformed[start * hidden..], len, &mut logits);
                    for (r, row) in logits[..len * width].chunks_exact(width).enumerate() {
                        let out = &mut pooled[owner[start + r] * width..][..width];
                        out.iter_mut().zip(row).for_each(|(o, &v)| *o = o.max(v));
                    }
                }
                pooled
            })
            .collect();
        let mut out = vec![0.0; seqs.len() * self.vocab];
        let mut column = 0;
        for (slice, pooled) in self.slices.iter().zip(&per_slice) {
            let width = slice.d_out();
            for (s, row) in pooled.chunks_exact(width).enumerate() {
                out[s * self.vocab + column..][..width].copy_from_slice(row);
            }
            column += width;
        }
        out
    }
}
