//! sentence-transformers' `Pooling` and `Normalize` modules.

use burn::tensor::{Tensor, TensorData};

use crate::config::{PoolingConfig, PoolingMode};
use crate::tokenizer::TokenBatch;

/// Pools `[batch, seq, hidden]` token embeddings into `[batch, hidden · modes]`, counting only
/// the positions where `mask` (a row-major `[batch, seq]` 0/1 copy of the attention mask, with
/// prompt tokens already cleared when the prompt is excluded) is 1.
pub(crate) fn pool(config: &PoolingConfig, hidden: Tensor<3>, batch: &TokenBatch, mask: &[u32]) -> Tensor<2> {
    let [b, s, h] = hidden.dims();
    let device = hidden.device();
    let mask_f: Vec<f32> = mask.iter().map(|&m| m as f32).collect();
    let mask3 = Tensor::<3>::from_data(TensorData::new(mask_f, [b, s, 1]), &device);
    let counts = mask3.clone().sum_dim(1).reshape([b, 1]);
    let pooled: Vec<Tensor<2>> = config
        .modes
        .iter()
        .map(|mode| match mode {
            PoolingMode::Cls => hidden.clone().narrow(1, 0, 1).reshape([b, h]),
            PoolingMode::Mean => {
                let sum = (hidden.clone() * mask3.clone()).sum_dim(1).reshape([b, h]);
                sum / counts.clone().clamp_min(1e-9)
            }
            PoolingMode::MeanSqrtLen => {
                let sum = (hidden.clone() * mask3.clone()).sum_dim(1).reshape([b, h]);
                sum / counts.clone().clamp_min(1e-9).sqrt()
            }
            PoolingMode::Max => {
                let padding = mask3.clone().equal_elem(0.0).expand([b, s, h]);
                hidden.clone().mask_fill(padding, -1e9).max_dim(1).reshape([b, h])
            }
            PoolingMode::LastToken => {
                // One-hot weight on each row's last real token (works for left or right padding).
                let mut onehot = vec![0.0f32; b * s];
                for row in 0..b {
                    let last = (0..s)
                        .rev()
                        .find(|&t| batch.attention_mask[row * s + t] == 1)
                        .unwrap_or(0);
                    onehot[row * s + last] = 1.0;
                }
                let w = Tensor::<3>::from_data(TensorData::new(onehot, [b, s, 1]), &device);
                (hidden.clone() * w).sum_dim(1).reshape([b, h])
            }
        })
        .collect();
    if pooled.len() == 1 {
        pooled.into_iter().next().expect("one mode")
    } else {
        Tensor::cat(pooled, 1)
    }
}

/// `Normalize`: rows scaled to unit L2 norm (`F.normalize`, ε = 1e-12).
pub(crate) fn normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = (x.clone() * x.clone()).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// [`normalize`] on one row on the host (after a `truncate_dim` cut).
pub(crate) fn normalize_row(row: &mut [f32]) {
    let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    row.iter_mut().for_each(|x| *x /= norm);
}
