//! Length-sorted batching: texts are encoded longest first so each batch pads little, and the
//! results are put back in the caller's order — what `SentenceTransformer.encode` does. The
//! next batch is prepared (tokenized) on a second thread while the model runs the current one.

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::Result;

/// Runs `run` over batches of at most `batch_size` indices, longest `lengths` first, and
/// returns its per-item outputs in the original order. `prepare` (tokenization) runs one batch
/// ahead on its own thread, so it overlaps the model instead of waiting for it.
pub(crate) fn sorted_batches<P: Send, T>(
    lengths: &[usize],
    batch_size: usize,
    show_progress_bar: bool,
    prepare: impl Fn(&[usize]) -> Result<P> + Sync,
    mut run: impl FnMut(P) -> Result<Vec<T>>,
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
    let mut store = |chunk: &[usize], prepared: P| -> Result<()> {
        for (i, out) in chunk.iter().zip(run(prepared)?) {
            slots[*i] = Some(out);
        }
        progress.inc(1);
        Ok(())
    };
    if order.len() <= batch_size {
        if !order.is_empty() {
            store(&order, prepare(&order)?)?;
        }
    } else {
        std::thread::scope(|scope| -> Result<()> {
            // One batch in the channel and one being prepared: tokenization stays just ahead.
            let (sender, receiver) = std::sync::mpsc::sync_channel(1);
            let (order, prepare) = (&order, &prepare);
            scope.spawn(move || {
                for chunk in order.chunks(batch_size) {
                    if sender.send(prepare(chunk).map(|p| (chunk, p))).is_err() {
                        break; // the consumer stopped on an error
                    }
                }
            });
            for prepared in receiver {
                let (chunk, prepared) = prepared?;
                store(chunk, prepared)?;
            }
            Ok(())
        })?;
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
        let out = sorted_batches(
            &lengths,
            2,
            false,
            |idx| Ok(idx.to_vec()),
            |idx| {
                seen.push(idx.clone());
                Ok(idx.iter().map(|&i| lengths[i] * 100).collect())
            },
        )
        .unwrap();
        assert_eq!(out, vec![300, 1000, 100, 700, 500]);
        assert_eq!(seen, vec![vec![1, 3], vec![4, 0], vec![2]]);
    }

    #[test]
    fn an_error_in_either_stage_is_returned() {
        let lengths = [1, 2, 3, 4, 5];
        let failing_prepare = sorted_batches(
            &lengths,
            2,
            false,
            |idx| match idx.contains(&0) {
                true => Err(crate::EncoderError::Tokenizer("bad text".into())),
                false => Ok(idx.to_vec()),
            },
            Ok,
        );
        assert!(matches!(failing_prepare, Err(crate::EncoderError::Tokenizer(_))));
        let failing_run = sorted_batches(
            &lengths,
            2,
            false,
            |idx| Ok(idx.to_vec()),
            |_: Vec<usize>| -> Result<Vec<usize>> { Err(crate::EncoderError::Backend("model".into())) },
        );
        assert!(matches!(failing_run, Err(crate::EncoderError::Backend(_))));
    }
}
