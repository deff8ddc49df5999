//! RoBERTa and XLM-RoBERTa (`RobertaModel`, `RobertaForSequenceClassification`,
//! `RobertaForMaskedLM` and their `XLMRoberta*` twins, which are the same modules), as in
//! `transformers/models/roberta/modeling_roberta.py`.
//!
//! `RobertaEmbeddings` and `RobertaEncoder` hold BERT's blocks under BERT's names, so the backbone
//! is a `BertModel` fed other position ids: real tokens count from `padding_idx + 1`, padding
//! stays at `padding_idx`. The heads, which MPNet shares, differ from BERT's only in their names.

use burn::tensor::{Int, Tensor};

use super::bert::{BertClassificationHead, BertConfig, BertLmHead, BertModel, LmHeadKeys};
use super::layers::Activation;
use crate::checkpoint::Checkpoint;
use crate::error::Result;

/// `config.json` of a RoBERTa or XLM-RoBERTa model. transformers' `RobertaConfig` has exactly
/// BERT's fields, so it is read by the same struct; `pad_token_id` (default 1) is also the
/// `padding_idx` positions count from.
pub type RobertaConfig = BertConfig;

/// transformers' default `pad_token_id` for RoBERTa.
const DEFAULT_PAD_TOKEN_ID: usize = 1;

/// Positions a table of `table` rows gives a sequence when they start at `padding_idx + 1`.
pub(crate) fn usable_positions(table: usize, padding_idx: usize) -> usize {
    table.saturating_sub(padding_idx + 1)
}

/// `create_position_ids_from_input_ids`: real tokens are numbered `padding_idx + 1, + 2, …`,
/// padding tokens get `padding_idx` (whose embedding row is never trained).
pub(crate) fn position_ids(input_ids: &Tensor<2, Int>, padding_idx: usize) -> Tensor<2, Int> {
    let not_pad = input_ids.clone().not_equal_elem(padding_idx as i64).int();
    (not_pad.clone().cumsum(1) * not_pad).add_scalar(padding_idx as i64)
}

/// `RobertaModel` without the pooler: token embeddings out.
pub(crate) struct RobertaModel {
    pub(crate) bert: BertModel,
    padding_idx: usize,
}

impl RobertaModel {
    pub(crate) fn load(ckpt: &Checkpoint, config: RobertaConfig) -> Result<Self> {
        let padding_idx = config.pad_token_id.unwrap_or(DEFAULT_PAD_TOKEN_ID);
        Ok(Self {
            bert: BertModel::load(ckpt, config)?,
            padding_idx,
        })
    }

    /// Longest sequence the position table holds.
    pub(crate) fn max_positions(&self) -> usize {
        usable_positions(self.bert.config.max_position_embeddings, self.padding_idx)
    }

    /// Last hidden state `[batch, seq, hidden]`. RoBERTa tokenizers return no `token_type_ids`,
    /// so transformers embeds type 0 everywhere; so does this, whatever segment ids the
    /// tokenizer's post-processor produced.
    /// The embedding block's output `[batch, seq, hidden]`, positions and token types as in
    /// [`Self::forward`].
    pub(crate) fn embed(&self, input_ids: Tensor<2, Int>) -> Tensor<3> {
        let positions = position_ids(&input_ids, self.padding_idx);
        let token_types = input_ids.zeros_like();
        self.bert.embed(input_ids, token_types, Some(positions))
    }

    pub(crate) fn forward(&self, input_ids: Tensor<2, Int>, attention_mask: &Tensor<2>, first_only: bool) -> Tensor<3> {
        let positions = position_ids(&input_ids, self.padding_idx);
        let token_types = input_ids.zeros_like();
        self.bert
            .forward_at(input_ids, token_types, Some(positions), attention_mask, first_only)
    }
}

/// `RobertaClassificationHead` (and MPNet's): dense → tanh → `out_proj` on the `<s>` token, which
/// is BERT's pooler + classifier arithmetic stored as `classifier.dense` / `classifier.out_proj`.
pub(crate) fn classification_head(
    ckpt: &Checkpoint,
    hidden: usize,
    num_labels: usize,
) -> Result<BertClassificationHead> {
    BertClassificationHead::load_named(ckpt, "classifier.dense", "classifier.out_proj", hidden, num_labels)
}

const LM_HEAD_KEYS: LmHeadKeys = LmHeadKeys {
    dense: "lm_head.dense",
    layer_norm: "lm_head.layer_norm",
    decoder: "lm_head.decoder",
};

/// `RobertaLMHead` (and MPNet's): dense → GELU → `layer_norm` → decoder tied to the word
/// embeddings plus `lm_head.bias`. The GELU is fixed (exact), whatever `hidden_act` says.
pub(crate) fn lm_head(ckpt: &Checkpoint, vocab: usize, hidden: usize, eps: f64) -> Result<BertLmHead> {
    BertLmHead::load_named(ckpt, &LM_HEAD_KEYS, vocab, hidden, eps, Activation::Gelu)
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;

    #[test]
    fn positions_start_after_padding_idx_and_skip_padding() {
        let device = Default::default();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 7, 2, 1, 1, 0, 2, 5, 6, 2], [2, 5]), &device);
        let got: Vec<i64> = position_ids(&ids, 1).into_data().iter::<i64>().collect();
        assert_eq!(got, [2, 3, 4, 1, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn usable_positions_leave_out_the_padding_rows() {
        // roberta-base: 514 rows, pad 1 → 512 tokens.
        assert_eq!(usable_positions(514, 1), 512);
        assert_eq!(usable_positions(1, 1), 0);
    }
}
