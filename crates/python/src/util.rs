//! `sieve.util`: sentence-transformers' `util` helpers on NumPy arrays.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use sieve_encoders::quantization::{Int8Ranges, QuantizedData, quantize_embeddings as quantize};
use sieve_encoders::util::{
    CommunityDetectionOptions, ParaphraseMiningOptions, SemanticSearchOptions, community_detection as communities,
    paraphrase_mining_embeddings as mine, semantic_search as search,
};
use sieve_encoders::{Embeddings, Precision, SimilarityFn};

use crate::arrays;
use crate::errors;

fn matrix_of<'py>(
    py: Python<'py>,
    function: SimilarityFn,
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let a = arrays::matrix(a, "a")?;
    let b = arrays::matrix(b, "b")?;
    let m = function.matrix(&a, &b).map_err(errors::encoder)?;
    Ok(arrays::matrix_to_numpy(py, m, b.len()))
}

/// The ``(n, m)`` cosine similarities of the rows of ``a`` and ``b`` (NumPy arrays or lists;
/// 1-D counts as one row), as a float32 ``numpy.ndarray`` (a torch tensor in
/// sentence-transformers).
#[pyfunction]
pub fn cos_sim<'py>(py: Python<'py>, a: &Bound<'py, PyAny>, b: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    matrix_of(py, SimilarityFn::Cosine, a, b)
}

/// The ``(n, m)`` dot products of the rows of ``a`` and ``b``, as a float32 ``numpy.ndarray``.
#[pyfunction]
pub fn dot_score<'py>(py: Python<'py>, a: &Bound<'py, PyAny>, b: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    matrix_of(py, SimilarityFn::Dot, a, b)
}

/// The ``score_function`` argument: ``cos_sim`` / ``dot_score`` (sieve's or
/// sentence-transformers', recognised by name) or a similarity name.
fn score_function(value: &Bound<'_, PyAny>) -> PyResult<SimilarityFn> {
    let name: String = match value.extract::<String>() {
        Ok(name) => name,
        Err(_) => value.getattr("__name__").and_then(|n| n.extract()).unwrap_or_default(),
    };
    match name.as_str() {
        "cos_sim" | "cosine" => Ok(SimilarityFn::Cosine),
        "dot_score" | "dot" => Ok(SimilarityFn::Dot),
        "euclidean_sim" | "euclidean" => Ok(SimilarityFn::Euclidean),
        "manhattan_sim" | "manhattan" => Ok(SimilarityFn::Manhattan),
        _ => Err(errors::value(format!(
            "score_function must be sieve.util.cos_sim or sieve.util.dot_score (or 'cosine', 'dot', \
             'euclidean', 'manhattan'), not {}",
            value.repr()?
        ))),
    }
}

/// The ``top_k`` corpus rows closest to each query, best first: one list per query of
/// ``{"corpus_id": int, "score": float}`` dicts, as sentence-transformers'
/// ``util.semantic_search``. ``score_function`` is ``cos_sim`` (default) or ``dot_score``.
#[pyfunction]
#[pyo3(signature = (query_embeddings, corpus_embeddings, query_chunk_size=100, corpus_chunk_size=500000, top_k=10, score_function=None))]
pub fn semantic_search<'py>(
    py: Python<'py>,
    query_embeddings: &Bound<'py, PyAny>,
    corpus_embeddings: &Bound<'py, PyAny>,
    query_chunk_size: usize,
    corpus_chunk_size: usize,
    top_k: usize,
    score_function: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyList>> {
    let queries = arrays::matrix(query_embeddings, "query_embeddings")?;
    let corpus = arrays::matrix(corpus_embeddings, "corpus_embeddings")?;
    let options = SemanticSearchOptions {
        top_k,
        corpus_chunk_size,
        query_chunk_size,
        score_function: score_function
            .map(self::score_function)
            .transpose()?
            .unwrap_or_default(),
    };
    let results = py
        .detach(|| search(&queries, &corpus, &options))
        .map_err(errors::encoder)?;
    let out = PyList::empty(py);
    for hits in results {
        let row = PyList::empty(py);
        for hit in hits {
            let entry = PyDict::new(py);
            entry.set_item("corpus_id", hit.corpus_id)?;
            entry.set_item("score", hit.score)?;
            row.append(entry)?;
        }
        out.append(row)?;
    }
    Ok(out)
}

/// Quantizes float embeddings as sentence-transformers' ``quantize_embeddings``:
/// ``precision`` ``"float32"``, ``"int8"``, ``"uint8"``, ``"binary"`` or ``"ubinary"``.
/// int8 / uint8 buckets come from ``ranges`` (a ``(2, dim)`` array of minima and maxima), else
/// from ``calibration_embeddings``, else from the embeddings themselves (at least two rows).
#[pyfunction]
#[pyo3(signature = (embeddings, precision, ranges=None, calibration_embeddings=None))]
pub fn quantize_embeddings<'py>(
    py: Python<'py>,
    embeddings: &Bound<'py, PyAny>,
    precision: &str,
    ranges: Option<&Bound<'py, PyAny>>,
    calibration_embeddings: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let precision: Precision = precision.parse().map_err(errors::encoder)?;
    let embeddings: Embeddings = arrays::matrix(embeddings, "embeddings")?;
    let quantized = match (ranges, calibration_embeddings) {
        (Some(ranges), _) => {
            let ranges = arrays::matrix(ranges, "ranges")?;
            if ranges.len() != 2 {
                return Err(errors::value(format!(
                    "ranges must have 2 rows (minima, maxima), not {}",
                    ranges.len()
                )));
            }
            Int8Ranges::new(ranges.row(0).to_vec(), ranges.row(1).to_vec())
                .and_then(|r| r.quantize(&embeddings, precision))
        }
        (None, Some(calibration)) => {
            let calibration = arrays::matrix(calibration, "calibration_embeddings")?;
            quantize(&embeddings, precision, Some(&calibration))
        }
        (None, None) => quantize(&embeddings, precision, None),
    }
    .map_err(errors::encoder)?;
    let [rows, cols] = [quantized.len(), quantized.row_len()];
    Ok(match quantized.into_data() {
        QuantizedData::Float32(v) => arrays::values_to_numpy(py, v, rows, cols, false),
        QuantizedData::Int8(v) => arrays::values_to_numpy(py, v, rows, cols, false),
        QuantizedData::Uint8(v) => arrays::values_to_numpy(py, v, rows, cols, false),
    })
}

fn mining_options(
    query_chunk_size: usize,
    corpus_chunk_size: usize,
    max_pairs: usize,
    top_k: usize,
    score_function: Option<&Bound<'_, PyAny>>,
) -> PyResult<ParaphraseMiningOptions> {
    Ok(ParaphraseMiningOptions {
        query_chunk_size,
        corpus_chunk_size,
        max_pairs,
        top_k,
        score_function: score_function
            .map(self::score_function)
            .transpose()?
            .unwrap_or_default(),
    })
}

fn pairs_to_list(py: Python<'_>, pairs: Vec<(f32, usize, usize)>) -> PyResult<Bound<'_, PyList>> {
    let out = PyList::empty(py);
    for (score, i, j) in pairs {
        out.append(PyList::new(
            py,
            [
                score.into_pyobject(py)?.into_any(),
                i.into_pyobject(py)?.into_any(),
                j.into_pyobject(py)?.into_any(),
            ],
        )?)?;
    }
    Ok(out)
}

/// The most similar pairs of rows of ``embeddings``, best first, as ``[score, i, j]`` lists
/// with ``i < j`` (sentence-transformers' ``util.paraphrase_mining_embeddings``).
#[pyfunction]
#[pyo3(signature = (embeddings, query_chunk_size=5000, corpus_chunk_size=100000, max_pairs=500000, top_k=100, score_function=None))]
pub fn paraphrase_mining_embeddings<'py>(
    py: Python<'py>,
    embeddings: &Bound<'py, PyAny>,
    query_chunk_size: usize,
    corpus_chunk_size: usize,
    max_pairs: usize,
    top_k: usize,
    score_function: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyList>> {
    let embeddings = arrays::matrix(embeddings, "embeddings")?;
    let options = mining_options(query_chunk_size, corpus_chunk_size, max_pairs, top_k, score_function)?;
    let pairs = py.detach(|| mine(&embeddings, &options)).map_err(errors::encoder)?;
    pairs_to_list(py, pairs)
}

/// Encodes ``sentences`` with ``model`` and returns their most similar pairs as
/// ``[score, i, j]`` lists, best first (sentence-transformers' ``util.paraphrase_mining``).
#[pyfunction]
#[pyo3(signature = (
    model, sentences, show_progress_bar=false, batch_size=32, query_chunk_size=5000, corpus_chunk_size=100000,
    max_pairs=500000, top_k=100, score_function=None, truncate_dim=None, prompt_name=None, prompt=None
))]
#[allow(clippy::too_many_arguments)]
pub fn paraphrase_mining<'py>(
    py: Python<'py>,
    model: &Bound<'py, crate::sentence_transformer::SentenceTransformer>,
    sentences: &Bound<'py, PyAny>,
    show_progress_bar: bool,
    batch_size: usize,
    query_chunk_size: usize,
    corpus_chunk_size: usize,
    max_pairs: usize,
    top_k: usize,
    score_function: Option<&Bound<'py, PyAny>>,
    truncate_dim: Option<usize>,
    prompt_name: Option<String>,
    prompt: Option<String>,
) -> PyResult<Bound<'py, PyList>> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("batch_size", batch_size)?;
    kwargs.set_item("show_progress_bar", show_progress_bar)?;
    kwargs.set_item("truncate_dim", truncate_dim)?;
    kwargs.set_item("prompt_name", prompt_name)?;
    kwargs.set_item("prompt", prompt)?;
    let embeddings = model.call_method("encode", (sentences,), Some(&kwargs))?;
    paraphrase_mining_embeddings(
        py,
        &embeddings,
        query_chunk_size,
        corpus_chunk_size,
        max_pairs,
        top_k,
        score_function,
    )
}

/// Groups of rows whose cosine similarity to a centre row is at least ``threshold``, largest
/// first, each at least ``min_community_size`` rows with the centre first (sentence-transformers'
/// ``util.community_detection``).
#[pyfunction]
#[pyo3(signature = (embeddings, threshold=0.75, min_community_size=10, batch_size=1024, show_progress_bar=false))]
pub fn community_detection<'py>(
    py: Python<'py>,
    embeddings: &Bound<'py, PyAny>,
    threshold: f32,
    min_community_size: usize,
    batch_size: usize,
    show_progress_bar: bool,
) -> PyResult<Vec<Vec<usize>>> {
    let embeddings = arrays::matrix(embeddings, "embeddings")?;
    let options = CommunityDetectionOptions {
        threshold,
        min_community_size,
        batch_size,
        show_progress_bar,
    };
    py.detach(|| communities(&embeddings, &options))
        .map_err(errors::encoder)
}
