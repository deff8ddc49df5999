//! `device=` and `dtype=` arguments as [`LoadOptions`].

use pyo3::prelude::*;
use sieve_encoders::{Device, Dtype, LoadOptions};

use crate::errors;

/// `device` (`"cpu"`, `"wgpu"`, `"cuda"`, `"cuda:N"`; `None`: `SIEVE_DEVICE` or the CPU) and `dtype`
/// (`"float32"`, `"float16"`, `"bfloat16"`, `"int8"`; `None`: `SIEVE_DTYPE` or float32).
pub fn load_options(device: Option<&str>, dtype: Option<&str>) -> PyResult<LoadOptions> {
    let mut options = LoadOptions::from_env().map_err(errors::encoder)?;
    if let Some(device) = device {
        options.device = device.parse::<Device>().map_err(errors::encoder)?;
    }
    if let Some(dtype) = dtype {
        options.dtype = dtype.parse::<Dtype>().map_err(errors::encoder)?;
    }
    Ok(options)
}
