//! Length-sorted batching: texts are encoded longest first so each batch pads little, and the
//! results are put back in the caller's order — what `SentenceTransformer.encode` does.

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::Result;

/// Runs `f` over batches of at most `batch_size` indices, longest `lengths` first, and returns
/// its per-item outputs in the original order.
pub(crate) fn sorted_batches<T>(
    lengths: &[usize],
    batch_size: usize,
    show_progress_bar: bool,
    mut f: impl FnMut(&[usize]) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let batch_size = batch_size.max(1);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let progress = if show_progress_bar {
        let bar = ProgressBar::new(order.len().div_ceil(batch_size) as u64);
        if let Ok(style) = ProgressStyle::with_template("Batches {bar:30} {pos}/{len} [{elapsed}<{eta}, {per_sec}]") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut slots: Vec<Option<T>> = (0..lengths.len()).map(|_| None).collect();
    for chunk in order.chunks(batch_size) {
        for (i, out) in chunk.iter().zip(f(chunk)?) {
            slots[*i] = Some(out);
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(slots
        .into_iter()
        .map(|s| s.expect("every index is in exactly one batch"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_come_back_in_input_order() {
        let lengths = [3, 10, 1, 7, 5];
        let mut seen = Vec::new();
        let out = sorted_batches(&lengths, 2, false, |idx| {
            seen.push(idx.to_vec());
            Ok(idx.iter().map(|&i| lengths[i] * 100).collect())
        })
        .unwrap();
        assert_eq!(out, vec![300, 1000, 100, 700, 500]);
        assert_eq!(seen, vec![vec![1, 3], vec![4, 0], vec![2]]);
    }
}
