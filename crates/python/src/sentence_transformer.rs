//! `sieve.SentenceTransformer`: sentence-transformers' bi-encoder class over
//! [`sieve_encoders::SentenceTransformer`].

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use sieve_encoders::quantization::QuantizedData;
use sieve_encoders::{EncodeOptions, Precision, SentenceTransformer as Model};

use crate::arrays::{self, Texts};
use crate::{device, errors, roles};

/// Maps sentences and paragraphs to dense vectors, as sentence-transformers'
/// ``SentenceTransformer`` does, with the same numbers and without PyTorch.
///
/// ``model_name_or_path`` is a Hugging Face hub id (``"all-MiniLM-L6-v2"`` resolves to
/// ``"sentence-transformers/all-MiniLM-L6-v2"``), found in the local hub cache, or a local
/// folder. ``device`` is ``"cpu"`` (default), ``"wgpu"`` or ``"cuda"`` where the build has
/// them; ``dtype`` is ``"float32"`` (default), ``"int8"`` (faster on CPUs, slightly less
/// exact), ``"bfloat16"`` or ``"float16"``.
///
/// >>> from sieve import SentenceTransformer
/// >>> model = SentenceTransformer("all-MiniLM-L6-v2")
/// >>> embeddings = model.encode(["The weather is lovely today.", "It's so sunny outside!"])
/// >>> embeddings.shape
/// (2, 384)
/// >>> model.similarity(embeddings, embeddings).shape
/// (2, 2)
#[pyclass(module = "sieve", frozen)]
pub struct SentenceTransformer {
    /// Boxed: the model struct needs a wider alignment than the 16 bytes Python allocates
    /// objects with (a debug build aborts on the misaligned write); so do the other model classes.
    model: Box<Model>,
    name: String,
}

#[pymethods]
impl SentenceTransformer {
    #[new]
    #[pyo3(signature = (model_name_or_path, *, device=None, truncate_dim=None, dtype=None))]
    fn new(
        py: Python<'_>,
        model_name_or_path: &str,
        device: Option<&str>,
        truncate_dim: Option<usize>,
        dtype: Option<&str>,
    ) -> PyResult<Self> {
        let options = device::load_options(device, dtype)?;
        let model = py
            .detach(|| Model::from_pretrained_with(model_name_or_path, &options)?.with_truncate_dim(truncate_dim))
            .map_err(errors::encoder)?;
        Ok(Self {
            model: Box::new(model),
            name: model_name_or_path.to_string(),
        })
    }

    /// Encodes ``inputs`` (a ``str`` or a list of ``str``) to a float32 ``numpy.ndarray`` of
    /// shape ``(n, dim)``, or ``(dim,)`` for a single ``str``.
    ///
    /// ``precision`` ``"int8"``, ``"uint8"``, ``"binary"`` or ``"ubinary"`` quantizes the
    /// embeddings as ``sentence_transformers.quantization.quantize_embeddings`` does (binary
    /// packs 8 dimensions per byte). ``convert_to_numpy=False`` gives a list of 1-D arrays.
    /// The GIL is released while the model runs.
    #[pyo3(signature = (
        inputs, prompt_name=None, prompt=None, batch_size=32, show_progress_bar=None,
        output_value="sentence_embedding", precision="float32", convert_to_numpy=true,
        normalize_embeddings=false, truncate_dim=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        prompt_name: Option<String>,
        prompt: Option<String>,
        batch_size: usize,
        show_progress_bar: Option<bool>,
        output_value: Option<&str>,
        precision: &str,
        convert_to_numpy: bool,
        normalize_embeddings: bool,
        truncate_dim: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = EncodeOptions {
            batch_size,
            normalize_embeddings,
            prompt_name,
            prompt,
            show_progress_bar: show_progress_bar.unwrap_or(false),
            precision: precision.parse::<Precision>().map_err(errors::encoder)?,
            truncate_dim,
        };
        if output_value != Some("sentence_embedding") {
            return Err(errors::value(format!(
                "output_value={output_value:?} is not supported: sieve returns sentence embeddings only"
            )));
        }
        let inputs = Texts::extract(inputs, "inputs")?;
        let texts = inputs.as_strs();
        if options.precision != Precision::Float32 {
            let quantized = py
                .detach(|| self.model.encode_quantized(&texts, &options))
                .map_err(errors::encoder)?;
            let [rows, cols] = [quantized.len(), quantized.row_len()];
            return Ok(match quantized.into_data() {
                QuantizedData::Float32(v) => arrays::values_to_numpy(py, v, rows, cols, inputs.single),
                QuantizedData::Int8(v) => arrays::values_to_numpy(py, v, rows, cols, inputs.single),
                QuantizedData::Uint8(v) => arrays::values_to_numpy(py, v, rows, cols, inputs.single),
            });
        }
        let embeddings = py
            .detach(|| self.model.encode_with(&texts, &options))
            .map_err(errors::encoder)?;
        if convert_to_numpy || inputs.single {
            Ok(arrays::to_numpy(py, embeddings, inputs.single))
        } else {
            arrays::rows_to_list(py, &embeddings)
        }
    }

    /// ``encode`` with the model's ``"query"`` prompt when it has one and no ``prompt_name``
    /// or ``prompt`` is given (as in sentence-transformers); ``encode``'s arguments and result.
    #[pyo3(signature = (inputs, *args, **kwargs), text_signature = "($self, inputs, prompt_name=None, prompt=None, batch_size=32, show_progress_bar=None, \
        output_value=\"sentence_embedding\", precision=\"float32\", convert_to_numpy=True, \
        normalize_embeddings=False, truncate_dim=None)")]
    fn encode_query<'py>(
        slf: &Bound<'py, Self>,
        inputs: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let prompt = slf.get().model.options_for("query").prompt_name;
        roles::encode_as(slf.as_any(), prompt, inputs, args, kwargs)
    }

    /// ``encode`` with the model's ``"document"`` prompt when it has one and no
    /// ``prompt_name`` or ``prompt`` is given; ``encode``'s arguments and result.
    #[pyo3(signature = (inputs, *args, **kwargs), text_signature = "($self, inputs, prompt_name=None, prompt=None, batch_size=32, show_progress_bar=None, \
        output_value=\"sentence_embedding\", precision=\"float32\", convert_to_numpy=True, \
        normalize_embeddings=False, truncate_dim=None)")]
    fn encode_document<'py>(
        slf: &Bound<'py, Self>,
        inputs: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let prompt = slf.get().model.options_for("document").prompt_name;
        roles::encode_as(slf.as_any(), prompt, inputs, args, kwargs)
    }

    /// The ``(n, m)`` similarity matrix of two sets of embeddings (NumPy arrays, 1-D for one
    /// embedding) with the model's similarity function. Returns a float32 ``numpy.ndarray``
    /// where sentence-transformers returns a torch tensor.
    fn similarity<'py>(
        &self,
        py: Python<'py>,
        embeddings1: &Bound<'py, PyAny>,
        embeddings2: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let a = arrays::matrix(embeddings1, "embeddings1")?;
        let b = arrays::matrix(embeddings2, "embeddings2")?;
        let m = self.model.similarity(&a, &b).map_err(errors::encoder)?;
        Ok(arrays::matrix_to_numpy(py, m, b.len()))
    }

    /// The similarity of each row of ``embeddings1`` with the same row of ``embeddings2``, as a
    /// 1-D float32 ``numpy.ndarray`` (a torch tensor in sentence-transformers).
    fn similarity_pairwise<'py>(
        &self,
        py: Python<'py>,
        embeddings1: &Bound<'py, PyAny>,
        embeddings2: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let a = arrays::matrix(embeddings1, "embeddings1")?;
        let b = arrays::matrix(embeddings2, "embeddings2")?;
        let scores = self.model.similarity_pairwise(&a, &b).map_err(errors::encoder)?;
        let n = scores.len();
        Ok(arrays::values_to_numpy(py, scores, n, 1, true))
    }

    /// The width of the embeddings (after ``truncate_dim``).
    fn get_sentence_embedding_dimension(&self) -> usize {
        self.model.embedding_dim()
    }

    /// Texts are truncated to this many tokens.
    #[getter]
    fn max_seq_length(&self) -> usize {
        self.model.max_seq_length()
    }

    /// ``"cosine"``, ``"dot"``, ``"euclidean"`` or ``"manhattan"``, from the model's config.
    #[getter]
    fn similarity_fn_name(&self) -> &'static str {
        self.model.similarity_fn().name()
    }

    /// The model's prompts by name (e.g. ``{"query": "query: "}``).
    #[getter]
    fn prompts(&self) -> HashMap<String, String> {
        self.model.prompts().clone()
    }

    /// The width encodes truncate to, or ``None``.
    #[getter]
    fn truncate_dim(&self) -> Option<usize> {
        self.model.truncate_dim()
    }

    fn __repr__(&self) -> String {
        format!(
            "SentenceTransformer({:?}, dim={}, max_seq_length={}, similarity_fn_name={:?}, dtype={:?})",
            self.name,
            self.model.embedding_dim(),
            self.model.max_seq_length(),
            self.model.similarity_fn().name(),
            self.model.dtype().to_string()
        )
    }
}

/// Benchmark hook (`benches/binding_overhead.py`): seconds the Rust encode of `inputs` takes on
/// `model` alone, without the binding's conversions, to set against `model.encode(inputs)`.
#[pyfunction]
#[pyo3(signature = (model, inputs, batch_size=32))]
pub fn _encode_seconds(
    py: Python<'_>,
    model: &SentenceTransformer,
    inputs: Vec<String>,
    batch_size: usize,
) -> PyResult<f64> {
    let texts: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let options = EncodeOptions {
        batch_size,
        ..EncodeOptions::default()
    };
    py.detach(|| {
        let start = std::time::Instant::now();
        let embeddings = model.model.encode_with(&texts, &options)?;
        std::hint::black_box(embeddings);
        Ok(start.elapsed().as_secs_f64())
    })
    .map_err(errors::encoder)
}
