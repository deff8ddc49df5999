//! Which burn backend the models run on.
//!
//! sieve uses burn 0.22's device-dispatch API (one `Tensor<D>` type, the backend chosen by a
//! runtime `Device`) rather than a `B: Backend` generic: the choice then lives in one value a
//! user can read from a flag or `SIEVE_DEVICE`, and the public types carry no type parameter.

use std::fmt;
use std::str::FromStr;

use burn::tensor::FloatDType;

use crate::error::{EncoderError, Result};

/// Where encoders run. `Cpu` (burn's `flex` backend) is always available; `Wgpu` and `Cuda`
/// need the cargo features of the same names.
///
/// ```
/// use sieve_encoders::Device;
/// let device: Device = "cpu".parse()?;
/// assert_eq!(device, Device::Cpu);
/// assert!("tpu".parse::<Device>().is_err());
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Device {
    /// burn's pure-Rust CPU backend (`flex`).
    #[default]
    Cpu,
    /// The default wgpu adapter (Vulkan, Metal, DX12, or lavapipe on a CPU).
    Wgpu,
    /// A CUDA GPU by index.
    Cuda(usize),
}

impl Device {
    /// The device named by `SIEVE_DEVICE` (`cpu`, `wgpu`, `cuda`, `cuda:N`), else the CPU.
    pub fn from_env() -> Result<Self> {
        from_env("SIEVE_DEVICE")
    }

    /// The burn device, checked to be usable: on wgpu a missing adapter is a
    /// [`EncoderError::DeviceUnavailable`] with wgpu's reason, not a panic deep in a forward pass.
    pub(crate) fn burn(self) -> Result<burn::tensor::Device> {
        match self {
            Self::Cpu => Ok(burn::tensor::Device::flex()),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => self.probe(burn::tensor::Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(not(feature = "wgpu"))]
            Self::Wgpu => Err(EncoderError::DeviceUnavailable {
                device: self.to_string(),
                reason: "sieve was built without the `wgpu` cargo feature".into(),
            }),
            #[cfg(feature = "cuda")]
            Self::Cuda(i) => self.probe(burn::tensor::Device::cuda(i)),
            #[cfg(not(feature = "cuda"))]
            Self::Cuda(_) => Err(EncoderError::DeviceUnavailable {
                device: self.to_string(),
                reason: "sieve was built without the `cuda` cargo feature".into(),
            }),
        }
    }

    /// The burn device, refusing a precision the device cannot compute in: on the CPU int8 and
    /// (with AVX-512 BF16) bf16 run on sieve's own kernels and f16 is refused; on the GPU
    /// backends f16 and bf16 need adapter support and int8 is refused.
    pub(crate) fn burn_with(self, dtype: Dtype) -> Result<burn::tensor::Device> {
        let device = self.burn()?;
        match (self, dtype) {
            (_, Dtype::F32) => {}
            (Self::Cpu, Dtype::Int8) => {}
            (Self::Cpu, Dtype::Bf16) => {
                if let Some(reason) = crate::kernels::bf16gemm::unsupported_reason() {
                    return Err(EncoderError::DeviceUnavailable {
                        device: self.to_string(),
                        reason: format!("{reason}; load in f32 or int8 on this CPU"),
                    });
                }
            }
            (Self::Cpu, Dtype::F16) => {
                // No CPU sieve runs on multiplies f16 faster than f32.
                return Err(EncoderError::InvalidArgument(
                    "f16 is for the GPU backends (Device::Wgpu, Device::Cuda); on the CPU load in f32, int8 or bf16"
                        .into(),
                ));
            }
            (_, Dtype::Int8) => {
                return Err(EncoderError::DeviceUnavailable {
                    device: self.to_string(),
                    reason: "int8 inference runs on the CPU kernels only; load in f32, f16 or bf16 on a GPU".into(),
                });
            }
            (_, Dtype::F16 | Dtype::Bf16) => {
                if !device.supports_dtype(dtype.burn()) {
                    return Err(EncoderError::DeviceUnavailable {
                        device: self.to_string(),
                        reason: format!(
                            "the adapter cannot compute in {dtype} (for f16, wgpu needs the `shader-f16` feature); load in f32"
                        ),
                    });
                }
            }
        }
        Ok(device)
    }

    /// Backends that cannot start (no adapter, no driver) panic on the first tensor; one tiny
    /// round trip here turns that into an error naming the cause.
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    fn probe(self, device: burn::tensor::Device) -> Result<burn::tensor::Device> {
        let trial = device.clone();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            burn::tensor::Tensor::<1>::zeros([1], &trial).try_into_data()
        }));
        let reason = match outcome {
            Ok(Ok(_)) => return Ok(device),
            Ok(Err(e)) => format!("{e:?}"),
            Err(payload) => {
                // The runtime starts on its own thread, so what reaches us is usually a closed
                // channel; the cause (e.g. cubecl's "no adapter found") was printed by that thread.
                let detail = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!(
                    "the backend failed to start, most likely no adapter or driver (install a Vulkan \
                     driver; on a machine without a GPU, Mesa's lavapipe); the backend's own message is \
                     on stderr above [{detail}]"
                )
            }
        };
        Err(EncoderError::DeviceUnavailable {
            device: self.to_string(),
            reason,
        })
    }
}

/// The arithmetic a model's layers run in ([`LoadOptions::dtype`]); outputs are f32 either way.
///
/// - `F32`: the reference, everywhere.
/// - `Int8` (CPU only): dynamic quantization as ONNX Runtime does it: Linear weights int8 per
///   output channel, quantized once at load; activations quantized per row at run time; integer
///   dot products (VNNI where the CPU has it). About 2x faster, cosines within ~1e-2 of f32.
/// - `Bf16`: on the CPU where it has AVX-512 BF16 (weights and activations rounded to bf16,
///   f32 accumulation); on GPUs whose adapter supports it.
/// - `F16`: GPU backends only.
///
/// [`LoadOptions::dtype`]: crate::LoadOptions::dtype
///
/// ```
/// use sieve_encoders::Dtype;
/// assert_eq!("float16".parse::<Dtype>().unwrap(), Dtype::F16);
/// assert_eq!("int8".parse::<Dtype>().unwrap(), Dtype::Int8);
/// assert_eq!(Dtype::default(), Dtype::F32);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// 32-bit floats, the checkpoints' reference arithmetic.
    #[default]
    F32,
    /// IEEE half precision: 11 significant bits, about 3 decimal digits.
    F16,
    /// bfloat16: f32's range with 8 significant bits, about 2 decimal digits.
    Bf16,
    /// Dynamically quantized int8 Linear layers (CPU only).
    Int8,
}

impl Dtype {
    /// The precision named by `SIEVE_DTYPE` (`f32`, `f16`, `bf16`, `int8`), else f32.
    pub fn from_env() -> Result<Self> {
        from_env("SIEVE_DTYPE")
    }

    pub(crate) fn burn(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::F16 => FloatDType::F16,
            Self::Bf16 => FloatDType::BF16,
            // Integer kernels take f32 in and out; burn's tensors stay f32.
            Self::Int8 => FloatDType::F32,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
            Self::Int8 => "int8",
        })
    }
}

impl FromStr for Dtype {
    type Err = EncoderError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Self::F32),
            "f16" | "float16" | "half" => Ok(Self::F16),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "int8" | "qint8" | "i8" => Ok(Self::Int8),
            other => Err(EncoderError::InvalidArgument(format!(
                "unknown dtype `{other}` (expected f32, f16, bf16 or int8)"
            ))),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Wgpu => f.write_str("wgpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for Device {
    type Err = EncoderError;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| {
                    EncoderError::InvalidArgument(format!("unknown device `{s}` (expected cpu, wgpu, cuda or cuda:N)"))
                }),
        }
    }
}

/// Parses environment variable `name`, unset or blank meaning the default; a bad value is an
/// error that names the variable.
fn from_env<T: FromStr<Err = EncoderError> + Default>(name: &str) -> Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.parse().map_err(|e| match e {
            EncoderError::InvalidArgument(msg) => EncoderError::InvalidArgument(format!("{name}: {msg}")),
            other => other,
        }),
        _ => Ok(T::default()),
    }
}

/// Options for loading any of the encoders.
///
/// ```no_run
/// use sieve_encoders::{Device, LoadOptions, ModelFiles, SentenceTransformer};
///
/// // SIEVE_DEVICE=wgpu (or cuda:0), else the CPU; f32 unless `dtype` says otherwise.
/// let options = LoadOptions { device: Device::from_env()?, ..LoadOptions::default() };
/// let files = ModelFiles::resolve("sentence-transformers/all-MiniLM-L6-v2")?;
/// let model = SentenceTransformer::from_files(&files, &options)?;
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Backend to run on (default: CPU).
    pub device: Device,
    /// Arithmetic of the layers (default f32): [`Dtype::Int8`] on the CPU for ~2x speed at a
    /// small cost in accuracy; bf16 where the CPU or GPU has it; f16 on GPUs.
    pub dtype: Dtype,
}

impl LoadOptions {
    /// The options named by the environment: `SIEVE_DEVICE` (`cpu`, `wgpu`, `cuda`, `cuda:N`;
    /// default cpu) and `SIEVE_DTYPE` (`f32`, `f16`, `bf16`, `int8`; default f32). A bad value is an
    /// error naming the variable.
    ///
    /// ```
    /// use sieve_encoders::{Device, LoadOptions};
    /// // With neither variable set this is the default: f32 on the CPU.
    /// # unsafe { std::env::remove_var("SIEVE_DEVICE"); std::env::remove_var("SIEVE_DTYPE"); }
    /// let options = LoadOptions::from_env()?;
    /// assert_eq!(options.device, Device::Cpu);
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            device: Device::from_env()?,
            dtype: Dtype::from_env()?,
        })
    }
}
