//! Tokenization as sentence-transformers' `Transformer.tokenize` does it: strip, optionally
//! lowercase, `tokenizer(..., truncation="longest_first", max_length=max_seq_length)`, pad to
//! the longest sequence of the batch.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{EncoderError, Result};

/// A Hugging Face `tokenizer.json` with sentence-transformers' truncation settings; every
/// encoder has one (`model.tokenizer()`).
///
/// ```no_run
/// use sieve_encoders::SentenceTransformer;
///
/// let model = SentenceTransformer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")?;
/// let batch = model.tokenizer().encode(&["Hello world!", "A longer second sentence."])?;
/// assert_eq!(batch.batch, 2);
/// let tokens: Vec<_> = batch.ids(0).iter().filter_map(|&id| model.tokenizer().id_to_token(id)).collect();
/// assert_eq!(tokens, ["[CLS]", "hello", "world", "!", "[SEP]"]);
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// `inner` without truncation, made on first use by [`Tokenizer::token_offsets`].
    untruncated: std::sync::OnceLock<tokenizers::Tokenizer>,
    max_length: usize,
    pad_id: u32,
    do_lower_case: bool,
}

/// One padded batch, row-major `[batch, seq]`.
///
/// ```
/// use sieve_encoders::TokenBatch;
///
/// // `[CLS] hi [SEP]` padded to the four tokens of `[CLS] hello there [SEP]`:
/// let batch = TokenBatch {
///     input_ids: vec![101, 7632, 102, 0, 101, 7592, 2045, 102],
///     token_type_ids: vec![0; 8],
///     attention_mask: vec![1, 1, 1, 0, 1, 1, 1, 1],
///     batch: 2,
///     seq: 4,
/// };
/// assert_eq!(batch.ids(0), [101, 7632, 102]); // padding dropped
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Token ids.
    pub input_ids: Vec<u32>,
    /// Segment ids (0 for the first text, 1 for the second of a pair).
    pub token_type_ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
    /// Rows.
    pub batch: usize,
    /// Columns (the longest sequence).
    pub seq: usize,
}

impl TokenBatch {
    /// The unpadded token ids of row `i`.
    pub fn ids(&self, i: usize) -> Vec<u32> {
        let row = i * self.seq..(i + 1) * self.seq;
        self.input_ids[row.clone()]
            .iter()
            .zip(&self.attention_mask[row])
            .filter(|(_, m)| **m == 1)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The batch as model inputs on `device`.
    pub(crate) fn tensors(&self, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<2>) {
        let shape = [self.batch, self.seq];
        let ints = |v: &[u32]| {
            let data: Vec<i64> = v.iter().map(|&x| x as i64).collect();
            Tensor::<2, Int>::from_data(TensorData::new(data, shape), device)
        };
        let mask: Vec<f32> = self.attention_mask.iter().map(|&m| m as f32).collect();
        (
            ints(&self.input_ids),
            ints(&self.token_type_ids),
            Tensor::<2>::from_data(TensorData::new(mask, shape), device),
        )
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json`; sequences are truncated to `max_length` tokens.
    pub(crate) fn from_file(
        path: &Path,
        max_length: usize,
        do_lower_case: bool,
        pad_token: Option<&str>,
    ) -> Result<Self> {
        if !path.is_file() {
            return Err(EncoderError::ModelFileMissing {
                path: path.to_path_buf(),
            });
        }
        // tokenizers panics (an `expect` in its decoder deserializer) on some malformed files
        // instead of returning an error: contain that (found by fuzz/model_folder).
        let loaded = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_file(path)).unwrap_or_else(|_| {
            Err("the tokenizers crate panicked while reading it (malformed JSON in a component)".into())
        });
        let mut inner = loaded.map_err(|e| EncoderError::Tokenizer(format!("{}: {e}", path.display())))?;
        let pad_id = inner
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| pad_token.and_then(|t| inner.token_to_id(t)))
            .unwrap_or(0);
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        let tokenizer = Self {
            inner,
            untruncated: std::sync::OnceLock::new(),
            max_length,
            pad_id,
            do_lower_case,
        };
        // A file that loads can still fail on every input: find out now, naming the file.
        tokenizer
            .encode(&["a trial text"])
            .map_err(|e| EncoderError::Tokenizer(format!("{}: cannot encode a trial text: {e}", path.display())))?;
        Ok(tokenizer)
    }

    /// Longest sequence, in tokens, that a text is truncated to.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Truncates at `max_length` tokens from now on.
    #[cfg(feature = "train")]
    pub(crate) fn set_max_length(&mut self, max_length: usize) {
        let mut truncation = self.inner.get_truncation().cloned().unwrap_or_default();
        truncation.max_length = max_length;
        // Only a stride not smaller than max_length is refused, and the stride is 0.
        let _ = self.inner.with_truncation(Some(truncation));
        self.max_length = max_length;
    }

    pub(crate) fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The id of a vocabulary token, when the vocabulary has it.
    ///
    /// ```no_run
    /// use sieve_encoders::SentenceTransformer;
    /// let model = SentenceTransformer::from_pretrained("all-MiniLM-L6-v2")?;
    /// assert_eq!(model.tokenizer().token_to_id("[CLS]"), Some(101));
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The vocabulary token of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Byte ranges of the tokens of `text` as it is, without special tokens and without
    /// truncation: to count or cut a text in the model's own tokens (as chunking does).
    ///
    /// ```no_run
    /// use sieve_encoders::SentenceTransformer;
    /// let model = SentenceTransformer::from_pretrained("all-MiniLM-L6-v2")?;
    /// let text = "Hello world!";
    /// let pieces: Vec<&str> = model.tokenizer().token_offsets(text)?.iter().map(|&(s, e)| &text[s..e]).collect();
    /// assert_eq!(pieces, ["Hello", "world", "!"]);
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn token_offsets(&self, text: &str) -> Result<Vec<(usize, usize)>> {
        let untruncated = match self.untruncated.get() {
            Some(t) => t,
            None => {
                let mut t = self.inner.clone();
                t.with_truncation(None)
                    .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
                self.untruncated.get_or_init(|| t)
            }
        };
        let encoding = untruncated
            .encode(text, false)
            .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_offsets().to_vec())
    }

    fn prepare(&self, text: &str) -> String {
        let text = head(text.trim(), self.max_length.saturating_mul(BYTES_PER_TOKEN));
        if self.do_lower_case {
            text.to_lowercase()
        } else {
            text.to_string()
        }
    }

    /// Tokenizes single texts.
    pub fn encode(&self, texts: &[&str]) -> Result<TokenBatch> {
        let inputs: Vec<tokenizers::EncodeInput> = texts.iter().map(|t| self.prepare(t).into()).collect();
        self.batch(inputs)
    }

    /// Tokenizes (first, second) pairs, `[CLS] a [SEP] b [SEP]` for BERT.
    pub fn encode_pairs(&self, pairs: &[(&str, &str)]) -> Result<TokenBatch> {
        let inputs: Vec<tokenizers::EncodeInput> = pairs
            .iter()
            .map(|(a, b)| (self.prepare(a), self.prepare(b)).into())
            .collect();
        self.batch(inputs)
    }

    fn batch(&self, inputs: Vec<tokenizers::EncodeInput>) -> Result<TokenBatch> {
        // The tokenizers crate panics on some malformed tokenizer files at encode time (e.g. a
        // post-processor template naming a token it does not define; found by fuzzing): an
        // error instead, here and at load (see `from_file`).
        let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.inner.encode_batch(inputs, true)))
            .unwrap_or_else(|_| Err("the tokenizers crate panicked while encoding".into()));
        let encodings = encoded.map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        let batch = encodings.len();
        let seq = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut out = TokenBatch {
            input_ids: vec![self.pad_id; batch * seq],
            token_type_ids: vec![0; batch * seq],
            attention_mask: vec![0; batch * seq],
            batch,
            seq,
        };
        for (row, encoding) in encodings.iter().enumerate() {
            let start = row * seq;
            let n = encoding.len();
            out.input_ids[start..start + n].copy_from_slice(encoding.get_ids());
            out.token_type_ids[start..start + n].copy_from_slice(encoding.get_type_ids());
            out.attention_mask[start..start + n].copy_from_slice(encoding.get_attention_mask());
        }
        Ok(out)
    }
}

/// Text kept per token of `max_length` before tokenizing. Only the first `max_length` tokens
/// survive truncation, and no tokenizer here spends anywhere near 64 bytes on one token
/// (WordPiece turns a word over 100 characters into a single `[UNK]`, but then the text is
/// mostly such words), so cutting there changes nothing but the time and memory a huge text
/// costs: tokenizers tokenizes the whole input before it truncates.
const BYTES_PER_TOKEN: usize = 64;

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
