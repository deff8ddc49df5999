//! `sieve.SparseEncoder`: sentence-transformers' SPLADE class over
//! [`sieve_encoders::SparseEncoder`], and the `SparseEmbeddings` it returns without SciPy.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use sieve_encoders::{SparseEmbeddings as Embeddings, SparseEncodeOptions, SparseEncoder as Model, Sparsity};

use crate::arrays::{self, Texts};
use crate::{device, errors, roles};

/// Maps texts to sparse vocabulary-sized vectors (SPLADE), as sentence-transformers'
/// ``SparseEncoder`` does, with the same numbers and without PyTorch.
///
/// ``encode`` returns a ``scipy.sparse.csr_matrix`` of shape ``(n, vocab_size)`` when SciPy is
/// installed, else a :class:`SparseEmbeddings` with the same ``indptr`` / ``indices`` /
/// ``data`` arrays; ``similarity``, ``sparsity`` and ``decode`` take either (or a dense array).
///
/// >>> from sieve import SparseEncoder
/// >>> model = SparseEncoder("rasyosef/splade-tiny")
/// >>> embeddings = model.encode(["The weather is lovely today.", "It's so sunny outside!"])
/// >>> embeddings.shape
/// (2, 30522)
/// >>> model.decode(embeddings[0], top_k=2)  # doctest: +SKIP
/// [('today', 2.54), ('lovely', 2.12)]
#[pyclass(module = "sieve", frozen)]
pub struct SparseEncoder {
    model: Box<Model>,
    name: String,
}

#[pymethods]
impl SparseEncoder {
    #[new]
    #[pyo3(signature = (model_name_or_path, *, device=None, max_active_dims=None, dtype=None))]
    fn new(
        py: Python<'_>,
        model_name_or_path: &str,
        device: Option<&str>,
        max_active_dims: Option<usize>,
        dtype: Option<&str>,
    ) -> PyResult<Self> {
        let options = device::load_options(device, dtype)?;
        let model = py
            .detach(|| Model::from_pretrained_with(model_name_or_path, &options))
            .map_err(errors::encoder)?
            .with_max_active_dims(max_active_dims);
        Ok(Self {
            model: Box::new(model),
            name: model_name_or_path.to_string(),
        })
    }

    /// Encodes ``inputs`` (a ``str`` or a list of ``str``) to sparse vectors: a
    /// ``scipy.sparse.csr_matrix`` of shape ``(n, vocab_size)`` (``(1, vocab_size)`` for one
    /// ``str``: SciPy matrices are 2-D) or, without SciPy, a :class:`SparseEmbeddings`.
    /// ``max_active_dims`` keeps the largest weights of each vector. The GIL is released
    /// while the model runs.
    #[pyo3(signature = (
        inputs, prompt_name=None, prompt=None, batch_size=32, show_progress_bar=None, *, max_active_dims=None
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
        max_active_dims: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = SparseEncodeOptions {
            batch_size,
            max_active_dims,
            prompt_name,
            prompt,
            show_progress_bar: show_progress_bar.unwrap_or(false),
        };
        let inputs = Texts::extract(inputs, "inputs")?;
        let texts = inputs.as_strs();
        let embeddings = py
            .detach(|| self.model.encode_with(&texts, &options))
            .map_err(errors::encoder)?;
        SparseEmbeddings::new(embeddings).into_output(py)
    }

    /// ``encode`` with the model's ``"query"`` prompt when it has one and no ``prompt_name``
    /// or ``prompt`` is given; ``encode``'s arguments and result.
    #[pyo3(signature = (inputs, *args, **kwargs), text_signature = "($self, inputs, prompt_name=None, prompt=None, batch_size=32, show_progress_bar=None, *, \
        max_active_dims=None)")]
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
    #[pyo3(signature = (inputs, *args, **kwargs), text_signature = "($self, inputs, prompt_name=None, prompt=None, batch_size=32, show_progress_bar=None, *, \
        max_active_dims=None)")]
    fn encode_document<'py>(
        slf: &Bound<'py, Self>,
        inputs: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let prompt = slf.get().model.options_for("document").prompt_name;
        roles::encode_as(slf.as_any(), prompt, inputs, args, kwargs)
    }

    /// The ``(n, m)`` dot-product matrix of two sets of sparse embeddings, as a float32
    /// ``numpy.ndarray`` (a torch tensor in sentence-transformers).
    fn similarity<'py>(
        &self,
        py: Python<'py>,
        embeddings1: &Bound<'py, PyAny>,
        embeddings2: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let a = arrays::sparse(embeddings1, "embeddings1")?;
        let b = arrays::sparse(embeddings2, "embeddings2")?;
        if a.dim() != b.dim() {
            return Err(errors::value(format!(
                "embeddings1 has {} columns, embeddings2 {}",
                a.dim(),
                b.dim()
            )));
        }
        let m = self.model.similarity(&a, &b);
        Ok(arrays::matrix_to_numpy(py, m, b.len()))
    }

    /// ``{"active_dims": mean non-zero entries per row, "sparsity_ratio": share of zeros}``.
    /// A static method, as in sentence-transformers: ``SparseEncoder.sparsity(embeddings)``.
    #[staticmethod]
    fn sparsity<'py>(py: Python<'py>, embeddings: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let embeddings = arrays::sparse(embeddings, "embeddings")?;
        let stats = Sparsity::of(&embeddings);
        let out = PyDict::new(py);
        out.set_item("active_dims", stats.active_dims)?;
        out.set_item("sparsity_ratio", stats.sparsity_ratio)?;
        Ok(out)
    }

    /// The heaviest tokens of each embedding as ``(token, weight)`` pairs, heaviest first (all
    /// non-zero ones, or the ``top_k`` heaviest): a list of pairs for one embedding (1-D, or a
    /// single row such as ``embeddings[0]``), a list of such lists for several.
    #[pyo3(signature = (embeddings, top_k=None))]
    fn decode<'py>(
        &self,
        py: Python<'py>,
        embeddings: &Bound<'py, PyAny>,
        top_k: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let embeddings = arrays::sparse(embeddings, "embeddings")?;
        let decoded: Vec<Vec<(String, f32)>> = embeddings
            .rows()
            .iter()
            .map(|row| self.model.decode(row, top_k.unwrap_or(row.nnz())))
            .collect();
        if decoded.len() == 1 {
            PyList::new(py, decoded.into_iter().next().expect("one row"))
        } else {
            PyList::new(py, decoded)
        }
    }

    /// The vocabulary size: the width of the sparse vectors.
    fn get_sentence_embedding_dimension(&self) -> usize {
        self.model.dim()
    }

    /// Texts are truncated to this many tokens.
    #[getter]
    fn max_seq_length(&self) -> usize {
        self.model.max_seq_length()
    }

    /// Always ``"dot"`` for SPLADE models.
    #[getter]
    fn similarity_fn_name(&self) -> &'static str {
        "dot"
    }

    fn __repr__(&self) -> String {
        format!(
            "SparseEncoder({:?}, vocab_size={}, max_seq_length={}, dtype={:?})",
            self.name,
            self.model.dim(),
            self.model.max_seq_length(),
            self.model.dtype().to_string()
        )
    }
}

/// Sparse embeddings in compressed-row form, returned by ``SparseEncoder.encode`` when SciPy
/// is not installed: ``indptr``, ``indices`` and ``data`` (alias ``values``) as in
/// ``scipy.sparse.csr_matrix``, ``shape``, ``nnz`` and ``toarray()``; ``embeddings[i]`` is row ``i``.
#[pyclass(module = "sieve", frozen)]
pub struct SparseEmbeddings {
    pub(crate) embeddings: Embeddings,
}

impl SparseEmbeddings {
    fn new(embeddings: Embeddings) -> Self {
        Self { embeddings }
    }

    /// `embeddings` as `encode` returns them: a SciPy CSR matrix, or a `SparseEmbeddings`.
    pub(crate) fn output(py: Python<'_>, embeddings: Embeddings) -> PyResult<Bound<'_, PyAny>> {
        Self::new(embeddings).into_output(py)
    }

    /// A SciPy CSR matrix when SciPy is importable, else `self`.
    fn into_output(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        match py.import("scipy.sparse") {
            Ok(scipy) => {
                let shape = (self.embeddings.len(), self.embeddings.dim());
                let (data, indices, indptr) = (self.data(py), self.indices(py), self.indptr(py));
                scipy.call_method1("csr_matrix", ((data, indices, indptr), shape))
            }
            Err(_) => Ok(Bound::new(py, self)?.into_any()),
        }
    }

    fn csr(&self) -> (Vec<i64>, Vec<i32>, Vec<f32>) {
        let mut indptr = Vec::with_capacity(self.embeddings.len() + 1);
        let (mut indices, mut values) = (Vec::new(), Vec::new());
        indptr.push(0);
        for row in self.embeddings.rows() {
            indices.extend(row.indices.iter().map(|&i| i as i32));
            values.extend_from_slice(&row.values);
            indptr.push(indices.len() as i64);
        }
        (indptr, indices, values)
    }
}

#[pymethods]
impl SparseEmbeddings {
    /// ``(rows, vocab_size)``.
    #[getter]
    fn shape(&self) -> (usize, usize) {
        (self.embeddings.len(), self.embeddings.dim())
    }

    /// Row ``i``'s entries are ``indptr[i]:indptr[i + 1]`` of ``indices`` and ``data``.
    #[getter]
    fn indptr<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        let (indptr, _, _) = self.csr();
        let n = indptr.len();
        arrays::values_to_numpy(py, indptr, n, 1, true)
    }

    /// Column (token id) of each non-zero entry, row after row.
    #[getter]
    fn indices<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        let (_, indices, _) = self.csr();
        let n = indices.len();
        arrays::values_to_numpy(py, indices, n, 1, true)
    }

    /// Weight of each non-zero entry, row after row.
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        let (_, _, values) = self.csr();
        let n = values.len();
        arrays::values_to_numpy(py, values, n, 1, true)
    }

    /// The same as ``data``.
    #[getter]
    fn values<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.data(py)
    }

    /// Non-zero entries in all rows.
    #[getter]
    fn nnz(&self) -> usize {
        self.embeddings.rows().iter().map(|r| r.nnz()).sum()
    }

    /// The dense float32 ``(rows, vocab_size)`` array.
    fn toarray<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        let dim = self.embeddings.dim();
        let values: Vec<f32> = self.embeddings.rows().iter().flat_map(|r| r.to_dense(dim)).collect();
        arrays::values_to_numpy(py, values, self.embeddings.len(), dim, false)
    }

    fn __len__(&self) -> usize {
        self.embeddings.len()
    }

    /// Row ``i`` as a one-row ``SparseEmbeddings`` (as SciPy's ``matrix[i]``).
    fn __getitem__(&self, i: isize) -> PyResult<Self> {
        let n = self.embeddings.len() as isize;
        let index = if i < 0 { i + n } else { i };
        if !(0..n).contains(&index) {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "row {i} out of range for {n} rows"
            )));
        }
        let row = self.embeddings.row(index as usize).clone();
        Ok(Self::new(Embeddings::new(vec![row], self.embeddings.dim())))
    }

    fn __repr__(&self) -> String {
        let (rows, dim) = self.shape();
        format!("SparseEmbeddings(shape=({rows}, {dim}), nnz={})", self.nnz())
    }
}
