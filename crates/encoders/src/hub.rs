//! Where a model's files come from: a local folder, or the Hugging Face hub through its
//! local cache — the same resolution `sentence_transformers` performs.
//!
//! Cache location follows `huggingface_hub`: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`. With `HF_HUB_OFFLINE=1` nothing is downloaded. A file the cache
//! records as absent (`.no_exist/<revision>/<file>`, written by `huggingface_hub` and by
//! `scripts/fetch-models`) is treated as absent without touching the network.

use std::path::{Path, PathBuf};

use crate::error::{EncoderError, Result};

/// The files of one model, resolved on demand.
///
/// ```no_run
/// use sieve_encoders::{LoadOptions, ModelFiles, SentenceTransformer};
///
/// let files = ModelFiles::hub("sentence-transformers/all-MiniLM-L6-v2")?;
/// let config = files.required("config.json")?; // from the cache, downloaded if missing
/// let prompts = files.optional("config_sentence_transformers.json")?; // None if the model has none
/// println!("{} {:?}", config.display(), prompts);
/// let model = SentenceTransformer::from_files(&files, &LoadOptions::default())?;
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ModelFiles {
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Local(PathBuf),
    Hub {
        model_id: String,
        cache_dir: PathBuf,
        offline: bool,
    },
}

impl ModelFiles {
    /// A model stored in a local folder (a sentence-transformers or Hugging Face model directory).
    pub fn local(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(EncoderError::ModelFileMissing {
                path: dir.to_path_buf(),
            });
        }
        Ok(Self {
            source: Source::Local(dir.to_path_buf()),
        })
    }

    /// A model on the Hugging Face hub, e.g. `sentence-transformers/all-MiniLM-L6-v2`,
    /// looked up in the local cache first and downloaded only when missing.
    pub fn hub(model_id: &str) -> Result<Self> {
        if model_id.split('/').count() > 2 || model_id.is_empty() {
            return Err(EncoderError::InvalidArgument(format!(
                "`{model_id}` is neither a folder nor a hub id like `org/name`"
            )));
        }
        Ok(Self {
            source: Source::Hub {
                model_id: model_id.to_string(),
                cache_dir: cache_dir(),
                offline: offline(),
            },
        })
    }

    /// A local folder when `name_or_path` is one, else a hub id — the rule
    /// `SentenceTransformer("...")` applies in Python.
    /// A name written as a path (`/models/x`, `./x`, `~/x`, `a/b/c`) that is not a folder is a
    /// missing model folder ([`EncoderError::ModelFileMissing`]), not a hub id.
    pub fn resolve(name_or_path: &str) -> Result<Self> {
        let written_as_path = name_or_path.starts_with(['/', '.', '~'])
            || name_or_path.contains('\\')
            || name_or_path.split('/').count() > 2;
        if Path::new(name_or_path).is_dir() || written_as_path {
            Self::local(name_or_path)
        } else {
            Self::hub(name_or_path)
        }
    }

    /// [`resolve`](Self::resolve) with sentence-transformers' short names: a bare name (no `/`)
    /// that is not a local folder and not one of the original Transformers checkpoints
    /// ([`ORIGINAL_TRANSFORMER_MODELS`]) is looked up under `organization`. Each model kind has
    /// its own: `sentence-transformers`, `cross-encoder`, `sparse-encoder`.
    ///
    /// ```
    /// use sieve_encoders::ModelFiles;
    /// let short = ModelFiles::resolve_in("all-MiniLM-L6-v2", "sentence-transformers")?;
    /// assert_eq!(short.name(), "sentence-transformers/all-MiniLM-L6-v2");
    /// assert_eq!(ModelFiles::resolve_in("bert-base-uncased", "sentence-transformers")?.name(), "bert-base-uncased");
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn resolve_in(name_or_path: &str, organization: &str) -> Result<Self> {
        let bare = !name_or_path.contains('/') && !name_or_path.contains('\\');
        if bare
            && !Path::new(name_or_path).is_dir()
            && !ORIGINAL_TRANSFORMER_MODELS.contains(&name_or_path.to_lowercase().as_str())
        {
            Self::hub(&format!("{organization}/{name_or_path}"))
        } else {
            Self::resolve(name_or_path)
        }
    }

    /// A short name for messages: the folder or the hub id.
    pub fn name(&self) -> String {
        match &self.source {
            Source::Local(dir) => dir.display().to_string(),
            Source::Hub { model_id, .. } => model_id.clone(),
        }
    }

    /// Path of a file the model cannot do without.
    pub fn required(&self, file: &str) -> Result<PathBuf> {
        match self.optional(file)? {
            Some(path) => Ok(path),
            None => Err(match &self.source {
                Source::Local(dir) => EncoderError::ModelFileMissing { path: dir.join(file) },
                Source::Hub {
                    model_id,
                    cache_dir,
                    offline,
                } => EncoderError::Hub {
                    model_id: model_id.clone(),
                    file: file.to_string(),
                    reason: if *offline {
                        format!("not in the hub cache {} and HF_HUB_OFFLINE is set", cache_dir.display())
                    } else {
                        "the repository has no such file".to_string()
                    },
                },
            }),
        }
    }

    /// Path of a file the model may lack (`None` when it has none).
    pub fn optional(&self, file: &str) -> Result<Option<PathBuf>> {
        match &self.source {
            Source::Local(dir) => {
                let path = dir.join(file);
                Ok(path.is_file().then_some(path))
            }
            Source::Hub {
                model_id,
                cache_dir,
                offline,
            } => hub_file(model_id, cache_dir, *offline, file),
        }
    }
}

/// The checkpoints of the Transformers library's first releases, published without an
/// organization: their bare names are hub ids as they stand (sentence-transformers 6.2 keeps the
/// same list).
pub const ORIGINAL_TRANSFORMER_MODELS: &[&str] = &[
    "albert-base-v1",
    "albert-base-v2",
    "albert-large-v1",
    "albert-large-v2",
    "albert-xlarge-v1",
    "albert-xlarge-v2",
    "albert-xxlarge-v1",
    "albert-xxlarge-v2",
    "bert-base-cased-finetuned-mrpc",
    "bert-base-cased",
    "bert-base-chinese",
    "bert-base-german-cased",
    "bert-base-german-dbmdz-cased",
    "bert-base-german-dbmdz-uncased",
    "bert-base-multilingual-cased",
    "bert-base-multilingual-uncased",
    "bert-base-uncased",
    "bert-large-cased-whole-word-masking-finetuned-squad",
    "bert-large-cased-whole-word-masking",
    "bert-large-cased",
    "bert-large-uncased-whole-word-masking-finetuned-squad",
    "bert-large-uncased-whole-word-masking",
    "bert-large-uncased",
    "camembert-base",
    "ctrl",
    "distilbert-base-cased-distilled-squad",
    "distilbert-base-cased",
    "distilbert-base-german-cased",
    "distilbert-base-multilingual-cased",
    "distilbert-base-uncased-distilled-squad",
    "distilbert-base-uncased-finetuned-sst-2-english",
    "distilbert-base-uncased",
    "distilgpt2",
    "distilroberta-base",
    "gpt2-large",
    "gpt2-medium",
    "gpt2-xl",
    "gpt2",
    "openai-gpt",
    "roberta-base-openai-detector",
    "roberta-base",
    "roberta-large-mnli",
    "roberta-large-openai-detector",
    "roberta-large",
    "t5-11b",
    "t5-3b",
    "t5-base",
    "t5-large",
    "t5-small",
    "transfo-xl-wt103",
    "xlm-clm-ende-1024",
    "xlm-clm-enfr-1024",
    "xlm-mlm-100-1280",
    "xlm-mlm-17-1280",
    "xlm-mlm-en-2048",
    "xlm-mlm-ende-1024",
    "xlm-mlm-enfr-1024",
    "xlm-mlm-enro-1024",
    "xlm-mlm-tlm-xnli15-1024",
    "xlm-mlm-xnli15-1024",
    "xlm-roberta-base",
    "xlm-roberta-large-finetuned-conll02-dutch",
    "xlm-roberta-large-finetuned-conll02-spanish",
    "xlm-roberta-large-finetuned-conll03-english",
    "xlm-roberta-large-finetuned-conll03-german",
    "xlm-roberta-large",
    "xlnet-base-cased",
    "xlnet-large-cased",
];

fn hub_file(model_id: &str, cache_dir: &Path, offline: bool, file: &str) -> Result<Option<PathBuf>> {
    let cache = hf_hub::Cache::new(cache_dir.to_path_buf());
    let repo = hf_hub::Repo::model(model_id.to_string());
    if let Some(path) = cache.repo(repo.clone()).get(file) {
        return Ok(Some(path));
    }
    if offline || known_absent(cache_dir, model_id, file) {
        return Ok(None);
    }
    let hub_error = |reason: String| EncoderError::Hub {
        model_id: model_id.to_string(),
        file: file.to_string(),
        reason,
    };
    let api = hf_hub::api::sync::ApiBuilder::from_cache(cache)
        .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .build()
        .map_err(|e| hub_error(e.to_string()))?;
    match api.repo(repo).get(file) {
        Ok(path) => Ok(Some(path)),
        Err(hf_hub::api::sync::ApiError::RequestError(e)) if matches!(*e, ureq::Error::StatusCode(404)) => Ok(None),
        Err(e) => Err(hub_error(format!(
            "{e} (set HF_HUB_OFFLINE=1 to use only the cache at {})",
            cache_dir.display()
        ))),
    }
}

/// `huggingface_hub` records files a repository lacks under `.no_exist/<revision>/`.
fn known_absent(cache_dir: &Path, model_id: &str, file: &str) -> bool {
    let repo_dir = cache_dir.join(format!("models--{}", model_id.replace('/', "--")));
    let Ok(revision) = std::fs::read_to_string(repo_dir.join("refs").join("main")) else {
        return false;
    };
    repo_dir.join(".no_exist").join(revision.trim()).join(file).exists()
}

/// The hub cache directory, resolved like `huggingface_hub` does.
pub fn cache_dir() -> PathBuf {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    cache_dir_from(env("HF_HUB_CACHE"), env("HF_HOME"), env("HOME"))
}

/// `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
fn cache_dir_from(hf_hub_cache: Option<PathBuf>, hf_home: Option<PathBuf>, home: Option<PathBuf>) -> PathBuf {
    hf_hub_cache
        .or_else(|| hf_home.map(|h| h.join("hub")))
        .unwrap_or_else(|| {
            home.unwrap_or_else(|| PathBuf::from("."))
                .join(".cache")
                .join("huggingface")
                .join("hub")
        })
}

/// Whether `HF_HUB_OFFLINE` forbids downloads.
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "on" | "yes" | "true"))
        .unwrap_or(false)
}

/// The constructors every encoder shares (`from_pretrained`, `from_pretrained_with`, `load`),
/// all through [`ModelFiles::resolve_in`] with the encoder's organisation for bare names, then
/// the encoder's own `from_files`.
macro_rules! pretrained_constructors {
    ($ty:ident, $org:literal, $id:literal) => {
        impl $ty {
            #[doc = concat!(
                        "Loads a model by hub id (through the local Hugging Face cache, downloading only what is ",
                        "missing) or from a local folder, on the CPU. A bare name is looked up under `", $org,
                        "/`, as sentence-transformers does.\n\n```no_run\nuse sieve_encoders::", stringify!($ty),
                        ";\nlet model = ", stringify!($ty), "::from_pretrained(\"", $id,
                        "\")?;\n# Ok::<(), sieve_encoders::EncoderError>(())\n```"
                    )]
            pub fn from_pretrained(name_or_path: &str) -> $crate::error::Result<Self> {
                Self::from_pretrained_with(name_or_path, &$crate::device::LoadOptions::default())
            }

            #[doc = concat!(
                        "[`from_pretrained`](Self::from_pretrained) with a device and float type.\n\n```no_run\n",
                        "use sieve_encoders::{", stringify!($ty), ", Device, LoadOptions};\n",
                        "let options = LoadOptions { device: Device::Wgpu, ..LoadOptions::default() };\n",
                        "let model = ", stringify!($ty), "::from_pretrained_with(\"", $id, "\", &options)?;\n",
                        "# Ok::<(), sieve_encoders::EncoderError>(())\n```"
                    )]
            pub fn from_pretrained_with(
                name_or_path: &str,
                options: &$crate::device::LoadOptions,
            ) -> $crate::error::Result<Self> {
                Self::from_files(&$crate::hub::ModelFiles::resolve_in(name_or_path, $org)?, options)
            }

            /// Loads from a local folder, on the CPU.
            pub fn load(path: impl AsRef<std::path::Path>) -> $crate::error::Result<Self> {
                Self::from_files(
                    &$crate::hub::ModelFiles::local(path)?,
                    &$crate::device::LoadOptions::default(),
                )
            }
        }
    };
}
pub(crate) use pretrained_constructors;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_folder_reports_missing_files_by_path() {
        let dir = std::env::temp_dir().join(format!("sieve-hub-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        let files = ModelFiles::local(&dir).unwrap();
        assert!(files.optional("config.json").unwrap().is_some());
        assert!(files.optional("modules.json").unwrap().is_none());
        let err = files.required("model.safetensors").unwrap_err();
        assert!(err.to_string().contains("model.safetensors"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_exist_markers_are_honoured() {
        let cache = std::env::temp_dir().join(format!("sieve-hub-cache-{}", std::process::id()));
        let repo = cache.join("models--org--name");
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::create_dir_all(repo.join(".no_exist/abc")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc").unwrap();
        std::fs::write(repo.join(".no_exist/abc/modules.json"), "").unwrap();
        assert!(known_absent(&cache, "org/name", "modules.json"));
        assert!(!known_absent(&cache, "org/name", "config.json"));
        // Offline and absent from the cache: optional files are None, required ones an error
        // that names the id, the file and the cache.
        let found = hub_file("org/name", &cache, true, "config.json").unwrap();
        assert!(found.is_none());
        std::fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn cache_dir_precedence_follows_huggingface_hub() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(cache_dir_from(p("/c"), p("/h"), p("/home")), PathBuf::from("/c"));
        assert_eq!(cache_dir_from(None, p("/h"), p("/home")), PathBuf::from("/h/hub"));
        assert_eq!(
            cache_dir_from(None, None, p("/home")),
            PathBuf::from("/home/.cache/huggingface/hub")
        );
    }

    #[test]
    fn bad_ids_are_rejected() {
        assert!(ModelFiles::hub("a/b/c").is_err());
        assert!(ModelFiles::hub("").is_err());
    }

    #[test]
    fn names_written_as_paths_are_missing_folders_not_hub_ids() {
        for name in [
            "/no/such/model",
            "./no-such-model",
            "~/models/x",
            "models/org/name",
            "..\\x",
        ] {
            let err = ModelFiles::resolve(name).unwrap_err();
            assert!(
                matches!(&err, EncoderError::ModelFileMissing { path } if path == Path::new(name)),
                "{name}: {err}"
            );
        }
        assert_eq!(ModelFiles::resolve("org/name").unwrap().name(), "org/name");
    }
}
