//! `encode_query` / `encode_document` as sentence-transformers defines them: `encode` with the
//! role's prompt when the model has one and the caller chose no prompt.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// `slf.encode(inputs, *args, **kwargs)`, with `prompt_name` set to `role_prompt` when neither
/// `prompt_name` (the first positional argument after `inputs`) nor `prompt` (the second) is given.
pub fn encode_as<'py>(
    slf: &Bound<'py, PyAny>,
    role_prompt: Option<String>,
    inputs: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    let kwargs = match kwargs {
        Some(k) => k.copy()?,
        None => PyDict::new(py),
    };
    let mut args: Vec<Bound<'py, PyAny>> = args.iter().collect();
    let given = |position: usize, name: &str| -> PyResult<bool> {
        let positional = args.get(position).is_some_and(|a| !a.is_none());
        Ok(positional || kwargs.get_item(name)?.is_some_and(|a| !a.is_none()))
    };
    if let Some(role) = role_prompt
        && !given(0, "prompt_name")?
        && !given(1, "prompt")?
    {
        match args.first_mut() {
            Some(first) => *first = role.into_pyobject(py)?.into_any(),
            None => kwargs.set_item("prompt_name", role)?,
        }
    }
    args.insert(0, inputs.clone());
    slf.call_method("encode", PyTuple::new(py, args)?, Some(&kwargs))
}
