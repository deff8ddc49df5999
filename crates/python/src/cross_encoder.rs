//! `sieve.CrossEncoder`: sentence-transformers' reranker class over
//! [`sieve_encoders::CrossEncoder`].

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use sieve_encoders::{CrossEncoder as Model, Embeddings, PredictOptions, ScoreActivation};

use crate::arrays;
use crate::{device, errors};

/// Scores (query, text) pairs with a cross-encoder, as sentence-transformers' ``CrossEncoder``
/// does, with the same numbers and without PyTorch.
///
/// >>> from sieve import CrossEncoder
/// >>> model = CrossEncoder("sieve/stsb-minilm-l6-ce")
/// >>> model.predict([("A man is eating pasta.", "A man is eating food.")]).shape
/// (1,)
/// >>> model.rank("A man is eating pasta.", ["A man is eating food.", "A monkey plays drums."])[0]["corpus_id"]
/// 0
#[pyclass(module = "sieve", frozen)]
pub struct CrossEncoder {
    model: Box<Model>,
    name: String,
}

/// `activation_fn`: a built-in activation, or a Python callable applied to the raw logits.
enum Activation<'py> {
    Builtin(Option<ScoreActivation>),
    Callable(Bound<'py, PyAny>),
}

impl<'py> Activation<'py> {
    /// `None` (the model's own), a name (`"sigmoid"`, `"identity"`, `"tanh"`, `"softmax"`), a
    /// torch activation module (recognised by its class, no torch needed) or any callable.
    fn extract(value: Option<&Bound<'py, PyAny>>) -> PyResult<Self> {
        let Some(value) = value.filter(|v| !v.is_none()) else {
            return Ok(Self::Builtin(None));
        };
        if let Ok(name) = value.extract::<String>() {
            let name = capitalized(&name);
            return ScoreActivation::from_python(&name)
                .map(|a| Self::Builtin(Some(a)))
                .map_err(errors::encoder);
        }
        let class = value.get_type();
        let module: String = class.getattr("__module__")?.extract()?;
        if module.starts_with("torch.") {
            let qualname: String = class.getattr("__qualname__")?.extract()?;
            if let Ok(builtin) = ScoreActivation::from_python(&format!("{module}.{qualname}")) {
                return Ok(Self::Builtin(Some(builtin)));
            }
        }
        if !value.is_callable() {
            return Err(errors::value(format!(
                "activation_fn must be None, a name (sigmoid, identity, tanh, softmax) or a callable, not {}",
                arrays::type_name(value)
            )));
        }
        Ok(Self::Callable(value.clone()))
    }

    fn builtin(&self) -> Option<ScoreActivation> {
        match self {
            Self::Builtin(a) => *a,
            Self::Callable(_) => Some(ScoreActivation::Identity),
        }
    }
}

fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[pymethods]
impl CrossEncoder {
    #[new]
    #[pyo3(signature = (model_name_or_path, *, device=None, dtype=None))]
    fn new(py: Python<'_>, model_name_or_path: &str, device: Option<&str>, dtype: Option<&str>) -> PyResult<Self> {
        let options = device::load_options(device, dtype)?;
        let model = py
            .detach(|| Model::from_pretrained_with(model_name_or_path, &options))
            .map_err(errors::encoder)?;
        Ok(Self {
            model: Box::new(model),
            name: model_name_or_path.to_string(),
        })
    }

    /// Scores ``inputs``, a list of ``(query, text)`` pairs (or one pair), to a float32
    /// ``numpy.ndarray``: shape ``(n,)`` for single-label models, ``(n, num_labels)`` otherwise
    /// (a scalar or 1-D for one pair).
    ///
    /// ``activation_fn`` overrides the model's activation: a name (``"sigmoid"``,
    /// ``"identity"`` for raw logits, ``"tanh"``, ``"softmax"``), a torch activation module, or
    /// any callable applied to the logits array. ``apply_softmax`` then normalises each row
    /// of a multi-label model. ``convert_to_numpy=False`` gives a list. The cross-encoders
    /// sieve loads carry no prompts: ``prompt_name`` / ``prompt`` raise ``ValueError``.
    #[pyo3(signature = (
        inputs, prompt_name=None, prompt=None, batch_size=32, show_progress_bar=None,
        activation_fn=None, apply_softmax=false, convert_to_numpy=true
    ))]
    #[allow(clippy::too_many_arguments)]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        prompt_name: Option<&str>,
        prompt: Option<&str>,
        batch_size: usize,
        show_progress_bar: Option<bool>,
        activation_fn: Option<&Bound<'py, PyAny>>,
        apply_softmax: bool,
        convert_to_numpy: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        no_prompts(prompt_name, prompt)?;
        let (pairs, single) = arrays::pairs(inputs)?;
        let activation = Activation::extract(activation_fn)?;
        let scores = self.scores(py, &pairs, &activation, batch_size, show_progress_bar.unwrap_or(false))?;
        let labels = self.model.num_labels();
        let scores = if apply_softmax && labels > 1 {
            softmax_rows(py, scores)?
        } else {
            scores
        };
        let out = if labels == 1 {
            let flat = scores.call_method0("ravel")?;
            if single { flat.get_item(0)? } else { flat }
        } else if single {
            scores.call_method1("reshape", (labels,))?
        } else {
            scores
        };
        if convert_to_numpy {
            Ok(out)
        } else {
            out.call_method0("tolist")
        }
    }

    /// Scores ``query`` against each of ``documents`` and returns them best first, as a list of
    /// ``{"corpus_id": int, "score": float}`` dicts (with ``"text"`` when
    /// ``return_documents=True``), the ``top_k`` best when given.
    #[pyo3(signature = (
        query, documents, top_k=None, return_documents=false, prompt_name=None, prompt=None,
        batch_size=32, show_progress_bar=None, activation_fn=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn rank<'py>(
        &self,
        py: Python<'py>,
        query: String,
        documents: &Bound<'py, PyAny>,
        top_k: Option<usize>,
        return_documents: bool,
        prompt_name: Option<&str>,
        prompt: Option<&str>,
        batch_size: usize,
        show_progress_bar: Option<bool>,
        activation_fn: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        no_prompts(prompt_name, prompt)?;
        if self.model.num_labels() != 1 {
            return Err(errors::value(format!(
                "rank needs a single-label model, this one has {} labels",
                self.model.num_labels()
            )));
        }
        let documents = arrays::Texts::extract(documents, "documents")?.texts;
        let pairs: Vec<(String, String)> = documents.iter().map(|d| (query.clone(), d.clone())).collect();
        let activation = Activation::extract(activation_fn)?;
        let scores =
            numpy_values(&self.scores(py, &pairs, &activation, batch_size, show_progress_bar.unwrap_or(false))?)?;
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        order.truncate(top_k.unwrap_or(order.len()));
        let hits = PyList::empty(py);
        for i in order {
            let hit = PyDict::new(py);
            hit.set_item("corpus_id", i)?;
            hit.set_item("score", scores[i])?;
            if return_documents {
                hit.set_item("text", &documents[i])?;
            }
            hits.append(hit)?;
        }
        Ok(hits)
    }

    /// Number of output labels (1 for rerankers and STS models).
    #[getter]
    fn num_labels(&self) -> usize {
        self.model.num_labels()
    }

    /// Pairs are truncated to this many tokens.
    #[getter]
    fn max_length(&self) -> usize {
        self.model.max_length()
    }

    fn __repr__(&self) -> String {
        format!(
            "CrossEncoder({:?}, num_labels={}, max_length={}, dtype={:?})",
            self.name,
            self.model.num_labels(),
            self.model.max_length(),
            self.model.dtype().to_string()
        )
    }
}

impl CrossEncoder {
    /// `(n, num_labels)` scores as a float32 array, after the activation.
    fn scores<'py>(
        &self,
        py: Python<'py>,
        pairs: &[(String, String)],
        activation: &Activation<'py>,
        batch_size: usize,
        show_progress_bar: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = PredictOptions {
            batch_size,
            activation: activation.builtin(),
            show_progress_bar,
        };
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let scores: Embeddings = py
            .detach(|| self.model.predict_with(&pairs, &options))
            .map_err(errors::encoder)?;
        let [rows, cols] = scores.shape();
        let array = arrays::values_to_numpy(py, scores.as_slice().to_vec(), rows, cols, false);
        match activation {
            Activation::Builtin(_) => Ok(array),
            Activation::Callable(f) => {
                let np = py.import("numpy")?;
                np.call_method1("asarray", (f.call1((array,))?, "float32"))?
                    .call_method1("reshape", (rows, cols))
            }
        }
    }
}

fn no_prompts(prompt_name: Option<&str>, prompt: Option<&str>) -> PyResult<()> {
    if prompt_name.is_some() || prompt.is_some() {
        return Err(errors::value("prompts are not supported by sieve's CrossEncoder"));
    }
    Ok(())
}

fn softmax_rows<'py>(py: Python<'py>, scores: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let along_rows = PyDict::new(py);
    along_rows.set_item("axis", 1)?;
    along_rows.set_item("keepdims", true)?;
    let max = scores.call_method("max", (), Some(&along_rows))?;
    let exp = py.import("numpy")?.call_method1("exp", (scores.sub(max)?,))?;
    exp.div(exp.call_method("sum", (), Some(&along_rows))?)
}

fn numpy_values(array: &Bound<'_, PyAny>) -> PyResult<Vec<f32>> {
    array.call_method0("ravel")?.call_method0("tolist")?.extract()
}
