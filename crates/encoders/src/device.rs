//! Which burn backend the models run on.
//!
//! sieve uses burn 0.22's device-dispatch API (one `Tensor<D>` type, the backend chosen by a
//! runtime `Device`) rather than a `B: Backend` generic: the choice then lives in one value a
//! user can read from a flag or `SIEVE_DEVICE`, and the public types carry no type parameter.

use std::fmt;
use std::str::FromStr;

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
        match std::env::var("SIEVE_DEVICE") {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(Self::Cpu),
        }
    }

    pub(crate) fn burn(self) -> Result<burn::tensor::Device> {
        match self {
            Self::Cpu => Ok(burn::tensor::Device::flex()),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => Ok(burn::tensor::Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(not(feature = "wgpu"))]
            Self::Wgpu => Err(EncoderError::DeviceUnavailable {
                device: self.to_string(),
                reason: "sieve was built without the `wgpu` cargo feature".into(),
            }),
            #[cfg(feature = "cuda")]
            Self::Cuda(i) => Ok(burn::tensor::Device::cuda(i)),
            #[cfg(not(feature = "cuda"))]
            Self::Cuda(_) => Err(EncoderError::DeviceUnavailable {
                device: self.to_string(),
                reason: "sieve was built without the `cuda` cargo feature".into(),
            }),
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
