//! The sentence-transformers files of a model folder: `modules.json`,
//! `sentence_bert_config.json`, `config_sentence_transformers.json`, the pooling configs and
//! `tokenizer_config.json`. Both the 2.x and the 6.x spellings are read.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{EncoderError, Result};
use crate::hub::ModelFiles;

/// Parses the JSON file at `path` into `T`, naming the file on failure.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| EncoderError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| EncoderError::InvalidConfig {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Parses `file` of the model if it has one.
pub(crate) fn read_optional<T: DeserializeOwned>(files: &ModelFiles, file: &str) -> Result<Option<T>> {
    files.optional(file)?.map(|p| read_json(&p)).transpose()
}

/// One entry of `modules.json`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ModuleEntry {
    /// Folder of the module's own files, relative to the model.
    #[serde(default)]
    pub path: String,
    /// Python class, e.g. `sentence_transformers.models.Pooling`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl ModuleEntry {
    /// The class name without its module path (`Pooling`).
    pub(crate) fn class(&self) -> &str {
        self.kind.rsplit('.').next().unwrap_or(&self.kind)
    }
}

/// `sentence_bert_config.json`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct SentenceBertConfig {
    pub max_seq_length: Option<usize>,
    #[serde(default)]
    pub do_lower_case: bool,
}

/// `config_sentence_transformers.json`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct SentenceTransformersConfig {
    #[serde(default)]
    pub prompts: HashMap<String, String>,
    pub default_prompt_name: Option<String>,
    pub similarity_fn_name: Option<String>,
    /// CrossEncoder: the Python class of the activation, e.g. `torch.nn.modules.activation.Sigmoid`.
    pub activation_fn: Option<String>,
}

/// The prompt name a model uses for `role` (`"query"`, `"document"`): the role itself when the
/// model defines a prompt of that name (sentence-transformers' `encode_query` / `encode_document`).
pub(crate) fn role_prompt(prompts: &HashMap<String, String>, role: &str) -> Option<String> {
    prompts.contains_key(role).then(|| role.to_string())
}

/// `tokenizer_config.json` (what tokenization needs of it).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct TokenizerConfig {
    pub model_max_length: Option<f64>,
    pub pad_token: Option<Value>,
}

impl TokenizerConfig {
    pub(crate) fn pad_token(&self) -> Option<&str> {
        match &self.pad_token {
            Some(Value::String(s)) => Some(s),
            Some(Value::Object(o)) => o.get("content").and_then(Value::as_str),
            _ => None,
        }
    }
}

/// How token embeddings become one sentence embedding (`1_Pooling/config.json`).
///
/// ```
/// use sieve_encoders::PoolingMode;
///
/// // all-MiniLM-L6-v2's `1_Pooling/config.json` sets `"pooling_mode_mean_tokens": true`:
/// let mode = PoolingMode::Mean;
/// assert_ne!(mode, PoolingMode::Cls);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolingMode {
    /// The first (`[CLS]`) token.
    Cls,
    /// Mean over real tokens.
    Mean,
    /// Element-wise maximum over real tokens.
    Max,
    /// Sum over real tokens divided by √(token count).
    MeanSqrtLen,
    /// The last real token.
    LastToken,
}

impl PoolingMode {
    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "cls" => Self::Cls,
            "mean" => Self::Mean,
            "max" => Self::Max,
            "mean_sqrt_len_tokens" => Self::MeanSqrtLen,
            "lasttoken" => Self::LastToken,
            other => {
                return Err(EncoderError::InvalidArgument(format!(
                    "unsupported pooling mode `{other}` (supported: cls, mean, max, mean_sqrt_len_tokens, lasttoken)"
                )));
            }
        })
    }
}

/// Pooling settings in either spelling.
#[derive(Debug, Clone, Deserialize)]
struct RawPoolingConfig {
    /// 6.x: `"mean"` or a list of modes.
    pooling_mode: Option<Value>,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
    #[serde(default = "yes")]
    include_prompt: bool,
}

fn yes() -> bool {
    true
}

/// The pooling module's settings, modes in sentence-transformers' concatenation order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PoolingConfig {
    pub modes: Vec<PoolingMode>,
    pub include_prompt: bool,
}

impl PoolingConfig {
    pub(crate) fn mean() -> Self {
        Self {
            modes: vec![PoolingMode::Mean],
            include_prompt: true,
        }
    }

    pub(crate) fn read(path: &Path) -> Result<Self> {
        let raw: RawPoolingConfig = read_json(path)?;
        let invalid = |reason: String| EncoderError::InvalidConfig {
            path: path.to_path_buf(),
            reason,
        };
        let mut modes = Vec::new();
        match &raw.pooling_mode {
            Some(Value::String(s)) => modes.push(PoolingMode::parse(s)?),
            Some(Value::Array(list)) => {
                for m in list {
                    let name = m
                        .as_str()
                        .ok_or_else(|| invalid(format!("pooling_mode entry {m} is not a string")))?;
                    modes.push(PoolingMode::parse(name)?);
                }
            }
            Some(other) => return Err(invalid(format!("pooling_mode {other} is not a string or list"))),
            None => {
                if raw.pooling_mode_weightedmean_tokens {
                    return Err(invalid("weightedmean pooling is not supported".into()));
                }
                for (on, mode) in [
                    (raw.pooling_mode_cls_token, PoolingMode::Cls),
                    (raw.pooling_mode_max_tokens, PoolingMode::Max),
                    (raw.pooling_mode_mean_tokens, PoolingMode::Mean),
                    (raw.pooling_mode_mean_sqrt_len_tokens, PoolingMode::MeanSqrtLen),
                    (raw.pooling_mode_lasttoken, PoolingMode::LastToken),
                ] {
                    if on {
                        modes.push(mode);
                    }
                }
            }
        }
        if modes.is_empty() {
            return Err(invalid("no pooling mode is enabled".into()));
        }
        Ok(Self {
            modes,
            include_prompt: raw.include_prompt,
        })
    }
}

/// `SpladePooling/config.json`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SpladePoolingConfig {
    #[serde(default = "max")]
    pub pooling_strategy: String,
    #[serde(default = "relu")]
    pub activation_function: String,
}

fn max() -> String {
    "max".into()
}
fn relu() -> String {
    "relu".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("sieve-config-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn pooling_reads_both_spellings() {
        let old = write(
            "old.json",
            r#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true}"#,
        );
        assert_eq!(PoolingConfig::read(&old).unwrap(), PoolingConfig::mean());
        let new = write(
            "new.json",
            r#"{"embedding_dimension": 32, "pooling_mode": "cls", "include_prompt": false}"#,
        );
        let c = PoolingConfig::read(&new).unwrap();
        assert_eq!(c.modes, vec![PoolingMode::Cls]);
        assert!(!c.include_prompt);
        let bad = write("bad.json", r#"{"pooling_mode": "weird"}"#);
        assert!(PoolingConfig::read(&bad).unwrap_err().to_string().contains("weird"));
        for p in [old, new, bad] {
            std::fs::remove_file(p).unwrap();
        }
    }

    #[test]
    fn corrupt_json_names_the_file() {
        let path = write("corrupt.json", "{ not json");
        let err = read_json::<Value>(&path).unwrap_err().to_string();
        assert!(err.contains("corrupt.json"), "{err}");
        std::fs::remove_file(path).unwrap();
    }
}
