//! NumPy and Python values in and out: texts, embedding matrices, CSR sparse matrices.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use sieve_encoders::{Embeddings, SparseEmbeddings, SparseVector};

/// Texts from a `str` (one text: `single` is set) or a sequence of `str`.
pub struct Texts {
    pub texts: Vec<String>,
    pub single: bool,
}

impl Texts {
    pub fn extract(inputs: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        if let Ok(text) = inputs.cast::<PyString>() {
            return Ok(Self {
                texts: vec![text.to_cow()?.into_owned()],
                single: true,
            });
        }
        let iter = inputs.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "{what} must be a str or a list of str, not {}",
                type_name(inputs)
            ))
        })?;
        let mut texts = Vec::new();
        for (i, item) in iter.enumerate() {
            let item = item?;
            let text = item
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err(format!("{what}[{i}] must be a str, not {}", type_name(&item))))?;
            texts.push(text.to_cow()?.into_owned());
        }
        Ok(Self { texts, single: false })
    }

    pub fn as_strs(&self) -> Vec<&str> {
        self.texts.iter().map(String::as_str).collect()
    }
}

/// `(query, text)` pairs from a sequence of 2-sequences; `single` for one bare pair.
pub fn pairs(inputs: &Bound<'_, PyAny>) -> PyResult<(Vec<(String, String)>, bool)> {
    let as_pair = |item: &Bound<'_, PyAny>| -> Option<(String, String)> {
        if item.is_instance_of::<PyString>() || item.len().ok()? != 2 {
            return None;
        }
        Some((
            item.get_item(0).ok()?.extract().ok()?,
            item.get_item(1).ok()?.extract().ok()?,
        ))
    };
    if let Some(pair) = as_pair(inputs) {
        return Ok((vec![pair], true));
    }
    let iter = inputs.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "inputs must be a list of (str, str) pairs, not {}",
            type_name(inputs)
        ))
    })?;
    let mut out = Vec::new();
    for (i, item) in iter.enumerate() {
        let item = item?;
        out.push(as_pair(&item).ok_or_else(|| {
            PyTypeError::new_err(format!(
                "inputs[{i}] must be a (str, str) pair, not {}",
                type_name(&item)
            ))
        })?);
    }
    Ok((out, false))
}

pub fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A float matrix from a NumPy array (1-D: one row), a list of rows or a list of 1-D arrays.
/// Float dtypes are cast to float32; anything else is a `TypeError` naming the dtype.
pub fn matrix(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Embeddings> {
    let (data, shape) = floats(value, what)?;
    let dim = *shape.last().expect("1-D or 2-D");
    if dim == 0 {
        return Err(PyValueError::new_err(format!("{what} has rows of width 0")));
    }
    Ok(Embeddings::new(data, dim).expect("rows × dim values"))
}

/// The values of a 1-D or 2-D float array (cast to float32, row-major) and its shape.
fn floats(value: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<f32>, Vec<usize>)> {
    let np = value.py().import("numpy")?;
    let array = np
        .call_method1("asarray", (value,))
        .map_err(|e| PyTypeError::new_err(format!("{what} must be a NumPy array or a list of numbers: {e}")))?;
    let dtype = array.getattr("dtype")?;
    if dtype.getattr("kind")?.extract::<String>()? != "f" {
        return Err(PyTypeError::new_err(format!(
            "{what} must hold floats (float32, or float16/float64 to be cast), not {}",
            dtype.str()?
        )));
    }
    let array = np.call_method1("ascontiguousarray", (array, "float32"))?;
    let array = array.cast::<numpy::PyArrayDyn<f32>>()?.readonly();
    let shape = array.shape().to_vec();
    if !(1..=2).contains(&shape.len()) {
        return Err(PyValueError::new_err(format!(
            "{what} must be 1-D or 2-D, got an array of shape {shape:?}"
        )));
    }
    Ok((array.as_slice()?.to_vec(), shape))
}

/// Embeddings as a float32 array: `(n, dim)`, or `(dim,)` for a single input.
pub fn to_numpy<'py>(py: Python<'py>, embeddings: Embeddings, single: bool) -> Bound<'py, PyAny> {
    let [rows, dim] = embeddings.shape();
    values_to_numpy(py, embeddings.as_slice().to_vec(), rows, dim, single)
}

/// A row-major `rows × cols` buffer as a NumPy array; 1-D when `single`.
pub fn values_to_numpy<'py, T: numpy::Element>(
    py: Python<'py>,
    values: Vec<T>,
    rows: usize,
    cols: usize,
    single: bool,
) -> Bound<'py, PyAny> {
    if single {
        return values.into_pyarray(py).into_any();
    }
    Array2::from_shape_vec((rows, cols), values)
        .expect("rows × cols values")
        .into_pyarray(py)
        .into_any()
}

/// A list of 1-D arrays, one per row (`convert_to_numpy=False`).
pub fn rows_to_list<'py>(py: Python<'py>, embeddings: &Embeddings) -> PyResult<Bound<'py, PyAny>> {
    let rows: Vec<Bound<'py, PyArray1<f32>>> = embeddings.rows().map(|row| PyArray1::from_slice(py, row)).collect();
    Ok(PyList::new(py, rows)?.into_any())
}

/// A similarity matrix as a `(n, m)` float32 array.
pub fn matrix_to_numpy<'py>(py: Python<'py>, rows: Vec<Vec<f32>>, cols: usize) -> Bound<'py, PyAny> {
    let n = rows.len();
    values_to_numpy(py, rows.concat(), n, cols, false)
}

/// Sparse embeddings from a SciPy sparse matrix (any format), a [`crate::sparse_encoder::SparseEmbeddings`]
/// or a dense float array (1-D: one row).
pub fn sparse(value: &Bound<'_, PyAny>, what: &str) -> PyResult<SparseEmbeddings> {
    if let Ok(ours) = value.cast::<crate::sparse_encoder::SparseEmbeddings>() {
        return Ok(ours.get().embeddings.clone());
    }
    if value.hasattr("tocsr")? && value.hasattr("shape")? {
        let mut shape: Vec<usize> = value.getattr("shape")?.extract()?;
        let mut value = value.clone();
        if shape.len() == 1 {
            value = value.call_method1("reshape", ((1, shape[0]),))?;
            shape.insert(0, 1);
        }
        let csr = value.call_method0("tocsr")?;
        let [rows, dim] = shape[..] else {
            return Err(PyValueError::new_err(format!(
                "{what} must be a 1-D or 2-D sparse matrix, got shape {shape:?}"
            )));
        };
        let indptr: Vec<i64> = csr.getattr("indptr")?.call_method0("tolist")?.extract()?;
        let indices: Vec<i64> = csr.getattr("indices")?.call_method0("tolist")?.extract()?;
        let (values, _) = floats(&csr.getattr("data")?, what)?;
        let mut out = Vec::with_capacity(rows);
        for r in 0..rows {
            let (start, end) = (indptr[r] as usize, indptr[r + 1] as usize);
            let mut entries: Vec<(u32, f32)> = (start..end)
                .filter(|&k| values[k] != 0.0)
                .map(|k| (indices[k] as u32, values[k]))
                .collect();
            entries.sort_by_key(|e| e.0);
            let (indices, values) = entries.into_iter().unzip();
            out.push(SparseVector { indices, values });
        }
        return Ok(SparseEmbeddings::new(out, dim));
    }
    let (values, shape) = floats(value, what)?;
    let dim = *shape.last().expect("1-D or 2-D");
    let rows_out = values
        .chunks(dim.max(1))
        .map(|row| {
            let (indices, values) = row
                .iter()
                .enumerate()
                .filter(|(_, v)| **v != 0.0)
                .map(|(i, v)| (i as u32, *v))
                .unzip();
            SparseVector { indices, values }
        })
        .collect();
    Ok(SparseEmbeddings::new(rows_out, dim))
}
