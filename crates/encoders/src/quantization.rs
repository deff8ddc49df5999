//! Embedding quantization as sentence-transformers defines it (`quantize_embeddings`): float32
//! embeddings to `int8` / `uint8` buckets or to packed sign bits (`binary` / `ubinary`), and the
//! comparisons that work on them — Hamming distance and integer dot products.
//!
//! The arithmetic is sentence-transformers' to the bit, so vectors quantized here and in
//! Python are interchangeable:
//!
//! - `int8` / `uint8`: each dimension's `[min, max]` range ([`Int8Ranges`], from calibration
//!   embeddings or else from the embeddings themselves) is cut into 255 steps, the value becomes
//!   `clip(floor((x - min) / step), 0, 255)` in f32, minus 128 for `int8`. A constant dimension
//!   has step 1.
//! - `binary` / `ubinary`: one bit per dimension, set where `x > 0`, packed eight to a byte with
//!   the first dimension in the highest bit (`np.packbits`) and the last byte zero-padded;
//!   `binary` stores each byte minus 128 as `i8`.
//!
//! Quantize documents and queries with the same ranges: compute them once from a calibration
//! sample (e.g. the corpus) and reuse them.
//!
//! ```
//! use sieve_encoders::Embeddings;
//! use sieve_encoders::quantization::{Int8Ranges, Precision, hamming_distance, int8_dot, quantize_embeddings};
//!
//! let docs = Embeddings::from_rows(&[vec![0.5, -0.2, 0.1], vec![-0.3, 0.4, 0.0]]).unwrap();
//! let query = Embeddings::from_rows(&[vec![0.4, -0.1, 0.2]]).unwrap();
//!
//! let bits = quantize_embeddings(&docs, Precision::Ubinary, None)?;
//! let q = quantize_embeddings(&query, Precision::Ubinary, None)?;
//! assert_eq!(bits.row_bytes(0), Some(&[0b1010_0000u8][..]));
//! assert_eq!(hamming_distance(q.row_bytes(0).unwrap(), bits.row_bytes(1).unwrap())?, 3);
//!
//! let ranges = Int8Ranges::from_embeddings(&docs)?;
//! let docs8 = ranges.quantize(&docs, Precision::Int8)?;
//! let query8 = ranges.quantize(&query, Precision::Int8)?;
//! let score = int8_dot(query8.row_i8(0).unwrap(), docs8.row_i8(0).unwrap())?;
//! # let _ = score;
//! # Ok::<(), sieve_encoders::EncoderError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::embeddings::Embeddings;
use crate::error::{EncoderError, Result};

/// The output type of an embedding, named as sentence-transformers' `precision` argument.
///
/// ```
/// use sieve_encoders::quantization::Precision;
/// let p: Precision = "ubinary".parse()?;
/// assert_eq!(p, Precision::Ubinary);
/// assert_eq!(p.bytes_per_vector(384), 48);
/// assert_eq!(Precision::Int8.to_string(), "int8");
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Unquantized 32-bit floats.
    #[default]
    Float32,
    /// One signed byte per dimension: the bucket in `[-128, 127]`.
    Int8,
    /// One unsigned byte per dimension: the bucket in `[0, 255]`.
    Uint8,
    /// Sign bits packed eight to a byte, each byte stored minus 128 as `i8`.
    Binary,
    /// Sign bits packed eight to a byte.
    Ubinary,
}

impl Precision {
    /// The name sentence-transformers uses (`"float32"`, `"int8"`, ...).
    ///
    /// ```
    /// # use sieve_encoders::quantization::Precision;
    /// assert_eq!(Precision::Binary.name(), "binary");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Self::Float32 => "float32",
            Self::Int8 => "int8",
            Self::Uint8 => "uint8",
            Self::Binary => "binary",
            Self::Ubinary => "ubinary",
        }
    }

    /// Values stored per embedding of width `dim`: `dim`, or `ceil(dim / 8)` packed bytes.
    ///
    /// ```
    /// # use sieve_encoders::quantization::Precision;
    /// assert_eq!(Precision::Binary.row_len(13), 2);
    /// assert_eq!(Precision::Int8.row_len(13), 13);
    /// ```
    pub fn row_len(self, dim: usize) -> usize {
        if self.is_binary() { dim.div_ceil(8) } else { dim }
    }

    /// Memory one embedding of width `dim` takes (4 bytes a value for float32, 1 otherwise).
    ///
    /// ```
    /// # use sieve_encoders::quantization::Precision;
    /// assert_eq!(Precision::Float32.bytes_per_vector(384), 1536);
    /// assert_eq!(Precision::Int8.bytes_per_vector(384), 384);
    /// ```
    pub fn bytes_per_vector(self, dim: usize) -> usize {
        match self {
            Self::Float32 => 4 * dim,
            _ => self.row_len(dim),
        }
    }

    /// Whether this is `binary` or `ubinary` (packed sign bits).
    ///
    /// ```
    /// # use sieve_encoders::quantization::Precision;
    /// assert!(Precision::Ubinary.is_binary() && !Precision::Uint8.is_binary());
    /// ```
    pub fn is_binary(self) -> bool {
        matches!(self, Self::Binary | Self::Ubinary)
    }

    /// Whether this is `int8` or `uint8` (buckets that need [`Int8Ranges`]).
    ///
    /// ```
    /// # use sieve_encoders::quantization::Precision;
    /// assert!(Precision::Uint8.is_scalar() && !Precision::Binary.is_scalar());
    /// ```
    pub fn is_scalar(self) -> bool {
        matches!(self, Self::Int8 | Self::Uint8)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = EncoderError;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "float32" => Self::Float32,
            "int8" => Self::Int8,
            "uint8" => Self::Uint8,
            "binary" => Self::Binary,
            "ubinary" => Self::Ubinary,
            other => {
                return Err(EncoderError::InvalidArgument(format!(
                    "unknown precision `{other}` (expected float32, int8, uint8, binary or ubinary)"
                )));
            }
        })
    }
}

/// The values of [`QuantizedEmbeddings`], row-major, in the element type of their precision.
#[derive(Debug, Clone, PartialEq)]
pub enum QuantizedData {
    /// `float32`: the embeddings as they were.
    Float32(Vec<f32>),
    /// `int8` buckets, or `binary` packed bytes minus 128.
    Int8(Vec<i8>),
    /// `uint8` buckets, or `ubinary` packed bytes.
    Uint8(Vec<u8>),
}

/// `n` quantized embeddings: what `quantize_embeddings` (or `encode(precision=...)`) returns.
///
/// ```
/// use sieve_encoders::Embeddings;
/// use sieve_encoders::quantization::{Precision, QuantizedData, quantize_embeddings};
/// let e = Embeddings::from_rows(&[vec![1.0, -1.0, 0.5], vec![-1.0, 2.0, 0.0]]).unwrap();
/// let q = quantize_embeddings(&e, Precision::Uint8, None)?;
/// assert_eq!(q.shape(), [2, 3]);
/// // A range's maximum can land in bucket 254 (f32 rounding of `step`), in Python too.
/// assert_eq!(q.data(), &QuantizedData::Uint8(vec![254, 0, 254, 0, 255, 0]));
/// assert_eq!(q.bytes_per_row(), 3);
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedEmbeddings {
    precision: Precision,
    dim: usize,
    data: QuantizedData,
}

impl QuantizedEmbeddings {
    /// The precision the values are in.
    ///
    /// ```
    /// # use sieve_encoders::{Embeddings, quantization::{Precision, quantize_embeddings}};
    /// # let e = Embeddings::from_rows(&[vec![1.0, -1.0]]).unwrap();
    /// assert_eq!(quantize_embeddings(&e, Precision::Binary, None)?.precision(), Precision::Binary);
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Width of the float embeddings that were quantized.
    ///
    /// ```
    /// # use sieve_encoders::{Embeddings, quantization::{Precision, quantize_embeddings}};
    /// # let e = Embeddings::from_rows(&[vec![0.0; 13]]).unwrap();
    /// let q = quantize_embeddings(&e, Precision::Ubinary, None)?;
    /// assert_eq!((q.dim(), q.row_len()), (13, 2));
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Values stored per row: `dim`, or `ceil(dim / 8)` bytes for the binary precisions.
    pub fn row_len(&self) -> usize {
        self.precision.row_len(self.dim)
    }

    /// Memory per row in bytes (1,536 / 384 / 48 for a 384-wide float32 / int8 / binary row).
    pub fn bytes_per_row(&self) -> usize {
        self.precision.bytes_per_vector(self.dim)
    }

    /// `[rows, row_len]`, the shape of the NumPy array sentence-transformers returns.
    pub fn shape(&self) -> [usize; 2] {
        [self.len(), self.row_len()]
    }

    /// Number of embeddings.
    pub fn len(&self) -> usize {
        let values = match &self.data {
            QuantizedData::Float32(v) => v.len(),
            QuantizedData::Int8(v) => v.len(),
            QuantizedData::Uint8(v) => v.len(),
        };
        values.checked_div(self.row_len()).unwrap_or(0)
    }

    /// Whether there are no embeddings.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All values, row-major.
    pub fn data(&self) -> &QuantizedData {
        &self.data
    }

    /// Takes the values out.
    pub fn into_data(self) -> QuantizedData {
        self.data
    }

    /// Row `i` of an `int8` or `binary` result; `None` for another precision or `i >= len()`.
    ///
    /// ```
    /// # use sieve_encoders::{Embeddings, quantization::{Precision, quantize_embeddings}};
    /// let e = Embeddings::from_rows(&[vec![1.0; 8]]).unwrap();
    /// assert_eq!(quantize_embeddings(&e, Precision::Binary, None)?.row_i8(0), Some(&[127i8][..]));
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn row_i8(&self, i: usize) -> Option<&[i8]> {
        match &self.data {
            QuantizedData::Int8(v) => self.row(v, i),
            _ => None,
        }
    }

    /// Row `i` as stored bytes (`int8` values in two's complement); `None` for float32 or
    /// `i >= len()`. This is what [`hamming_distance`] takes: it is the same on `binary` and
    /// `ubinary` rows, whose bytes differ only in the top bit of every byte.
    ///
    /// ```
    /// # use sieve_encoders::{Embeddings, quantization::{Precision, quantize_embeddings}};
    /// let e = Embeddings::from_rows(&[vec![1.0, -1.0, 1.0]]).unwrap();
    /// assert_eq!(quantize_embeddings(&e, Precision::Ubinary, None)?.row_bytes(0), Some(&[0b1010_0000u8][..]));
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn row_bytes(&self, i: usize) -> Option<&[u8]> {
        match &self.data {
            QuantizedData::Int8(v) => self.row(bytemuck::cast_slice(v), i),
            QuantizedData::Uint8(v) => self.row(v, i),
            QuantizedData::Float32(_) => None,
        }
    }

    /// Row `i` back in float coordinates, as sentence-transformers' rescoring sees a candidate
    /// (`semantic_search_usearch` / `_faiss`): float32 as stored; `int8` / `uint8` the start of
    /// the bucket (`bucket * step + min`), which needs the `ranges` the rows were quantized
    /// with; `binary` / `ubinary` the unpacked sign bits as 0.0 or 1.0.
    ///
    /// ```
    /// # use sieve_encoders::{Embeddings, quantization::{Int8Ranges, Precision, quantize_embeddings}};
    /// let e = Embeddings::from_rows(&[vec![0.5, -0.5, 0.0], vec![-0.5, 0.5, 0.0]]).unwrap();
    /// let bits = quantize_embeddings(&e, Precision::Binary, None)?;
    /// assert_eq!(bits.dequantize_row(0, None)?, vec![1.0, 0.0, 0.0]);
    /// let ranges = Int8Ranges::from_embeddings(&e)?;
    /// let q = ranges.quantize(&e, Precision::Int8)?;
    /// let back = q.dequantize_row(0, Some(&ranges))?; // within one step (1/255) of the input
    /// assert!(back.iter().zip([0.5, -0.5, 0.0]).all(|(b, x)| (b - x).abs() <= 1.0 / 255.0));
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn dequantize_row(&self, i: usize, ranges: Option<&Int8Ranges>) -> Result<Vec<f32>> {
        if i >= self.len() {
            return Err(EncoderError::InvalidArgument(format!(
                "row {i} out of range: there are {} quantized embeddings",
                self.len()
            )));
        }
        let span = i * self.row_len()..(i + 1) * self.row_len();
        match &self.data {
            QuantizedData::Float32(v) => Ok(v[span].to_vec()),
            QuantizedData::Int8(v) if self.precision == Precision::Binary => {
                Ok(unpack_bits(v[span].iter().map(|&b| b as u8 ^ 0x80), self.dim))
            }
            QuantizedData::Uint8(v) if self.precision == Precision::Ubinary => {
                Ok(unpack_bits(v[span].iter().copied(), self.dim))
            }
            QuantizedData::Int8(v) => self.bucket_starts(v[span].iter().map(|&b| f64::from(b) + 128.0), ranges),
            QuantizedData::Uint8(v) => self.bucket_starts(v[span].iter().map(|&b| f64::from(b)), ranges),
        }
    }

    /// `_dequantize_embeddings`: `bucket * step + min`, in f64 from the f32 steps.
    fn bucket_starts(&self, buckets: impl Iterator<Item = f64>, ranges: Option<&Int8Ranges>) -> Result<Vec<f32>> {
        let ranges = ranges.ok_or_else(|| {
            EncoderError::InvalidArgument(format!(
                "{} rows dequantize with the Int8Ranges they were quantized with; none given",
                self.precision
            ))
        })?;
        ranges.check_dim(self.dim)?;
        Ok(buckets
            .zip(ranges.steps())
            .zip(&ranges.min)
            .map(|((b, step), &min)| (b * f64::from(step) + f64::from(min)) as f32)
            .collect())
    }

    fn row<'a, T>(&self, values: &'a [T], i: usize) -> Option<&'a [T]> {
        let len = self.row_len();
        (i < self.len()).then(|| &values[i * len..(i + 1) * len])
    }

    fn empty(precision: Precision, dim: usize) -> Self {
        let data = match precision {
            Precision::Float32 => QuantizedData::Float32(Vec::new()),
            Precision::Int8 | Precision::Binary => QuantizedData::Int8(Vec::new()),
            Precision::Uint8 | Precision::Ubinary => QuantizedData::Uint8(Vec::new()),
        };
        Self { precision, dim, data }
    }
}

/// `np.unpackbits(...)[:dim]`: the first `dim` bits, highest bit of each byte first, as 0.0/1.0.
fn unpack_bits(bytes: impl Iterator<Item = u8>, dim: usize) -> Vec<f32> {
    bytes
        .flat_map(|b| (0..8).rev().map(move |bit| f32::from((b >> bit) & 1)))
        .take(dim)
        .collect()
}

/// Per-dimension `[min, max]` ranges for `int8` / `uint8` buckets (sentence-transformers'
/// `ranges`, shape `(2, dim)`). Compute them once from calibration embeddings and quantize
/// both documents and queries with them, so that equal buckets mean equal values.
///
/// ```
/// use sieve_encoders::Embeddings;
/// use sieve_encoders::quantization::{Int8Ranges, Precision};
/// let corpus = Embeddings::from_rows(&[vec![-1.0, 0.0], vec![1.0, 0.5]]).unwrap();
/// let ranges = Int8Ranges::from_embeddings(&corpus)?;
/// assert_eq!((ranges.min(), ranges.max()), (&[-1.0, 0.0][..], &[1.0, 0.5][..]));
/// let query = Embeddings::from_rows(&[vec![0.0, 2.0]]).unwrap();
/// assert_eq!(ranges.quantize(&query, Precision::Uint8)?.row_bytes(0), Some(&[127u8, 255][..]));
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Ranges {
    min: Vec<f32>,
    max: Vec<f32>,
}

impl Int8Ranges {
    /// The per-dimension minimum and maximum of `calibration` (at least one embedding, all
    /// values finite).
    pub fn from_embeddings(calibration: &Embeddings) -> Result<Self> {
        if calibration.is_empty() {
            return Err(EncoderError::NotEnoughCalibration { rows: 0, needed: 1 });
        }
        let dim = calibration.dim();
        if let Some(at) = calibration.as_slice().iter().position(|x| !x.is_finite()) {
            return Err(non_finite(at % dim));
        }
        let (mut min, mut max) = (vec![f32::INFINITY; dim], vec![f32::NEG_INFINITY; dim]);
        for row in calibration.rows() {
            for (j, &x) in row.iter().enumerate() {
                min[j] = min[j].min(x);
                max[j] = max[j].max(x);
            }
        }
        Ok(Self { min, max })
    }

    /// Ranges given directly, e.g. saved from an earlier calibration: `min[j] <= max[j]`, both
    /// finite, equal lengths.
    ///
    /// ```
    /// # use sieve_encoders::quantization::Int8Ranges;
    /// assert!(Int8Ranges::new(vec![0.0, -1.0], vec![1.0, 1.0]).is_ok());
    /// assert!(Int8Ranges::new(vec![0.0], vec![1.0, 1.0]).is_err());
    /// assert!(Int8Ranges::new(vec![2.0], vec![1.0]).is_err());
    /// ```
    pub fn new(min: Vec<f32>, max: Vec<f32>) -> Result<Self> {
        if min.len() != max.len() {
            return Err(EncoderError::DimensionMismatch {
                expected: min.len(),
                got: max.len(),
            });
        }
        for (j, (&lo, &hi)) in min.iter().zip(&max).enumerate() {
            if !lo.is_finite() || !hi.is_finite() {
                return Err(non_finite(j));
            }
            if lo > hi {
                return Err(EncoderError::InvalidArgument(format!(
                    "quantization range of dimension {j} is empty: min {lo} > max {hi}"
                )));
            }
        }
        Ok(Self { min, max })
    }

    /// Per-dimension minimum (the start of bucket 0).
    pub fn min(&self) -> &[f32] {
        &self.min
    }

    /// Per-dimension maximum.
    pub fn max(&self) -> &[f32] {
        &self.max
    }

    /// Number of dimensions.
    pub fn dim(&self) -> usize {
        self.min.len()
    }

    /// Quantizes `embeddings` with these ranges (`quantize_embeddings(..., ranges=...)`). The
    /// ranges only matter for `int8` / `uint8`; other precisions ignore them, as in Python.
    ///
    /// ```
    /// # use sieve_encoders::{Embeddings, quantization::{Int8Ranges, Precision}};
    /// let ranges = Int8Ranges::new(vec![-1.0], vec![1.0])?;
    /// let e = Embeddings::from_rows(&[vec![-1.0], vec![0.0], vec![1.0]]).unwrap();
    /// let q = ranges.quantize(&e, Precision::Int8)?;
    /// // 2 / (2 / 255) is 254.99998 in f32: the maximum lands in bucket 126, as in Python.
    /// assert_eq!((q.row_i8(0), q.row_i8(1), q.row_i8(2)), (Some(&[-128i8][..]), Some(&[-1][..]), Some(&[126][..])));
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn quantize(&self, embeddings: &Embeddings, precision: Precision) -> Result<QuantizedEmbeddings> {
        if !precision.is_scalar() {
            return quantize_embeddings(embeddings, precision, None);
        }
        let dim = embeddings.dim();
        if !embeddings.is_empty() {
            self.check_dim(dim)?;
        }
        let steps = self.steps();
        // f32 throughout, as NumPy computes it on float32 arrays; NaN lands in bucket 0.
        let buckets = embeddings.rows().flat_map(|row| {
            row.iter()
                .zip(&self.min)
                .zip(&steps)
                .map(|((&x, &start), &step)| ((x - start) / step).floor().clamp(0.0, 255.0) as u8)
        });
        let data = match precision {
            Precision::Int8 => QuantizedData::Int8(buckets.map(|b| (i16::from(b) - 128) as i8).collect()),
            _ => QuantizedData::Uint8(buckets.collect()),
        };
        Ok(QuantizedEmbeddings { precision, dim, data })
    }

    /// `(max - min) / 255` in f32, 1 where that is 0.
    fn steps(&self) -> Vec<f32> {
        self.min
            .iter()
            .zip(&self.max)
            .map(|(&lo, &hi)| (hi - lo) / 255.0)
            .map(|s| if s == 0.0 { 1.0 } else { s })
            .collect()
    }

    fn check_dim(&self, dim: usize) -> Result<()> {
        if dim != self.dim() {
            return Err(EncoderError::DimensionMismatch {
                expected: self.dim(),
                got: dim,
            });
        }
        Ok(())
    }
}

fn non_finite(dim: usize) -> EncoderError {
    EncoderError::InvalidArgument(format!(
        "calibration value of dimension {dim} is NaN or infinite; int8/uint8 ranges need finite values"
    ))
}

/// sentence-transformers' `quantize_embeddings(embeddings, precision, calibration_embeddings=...)`.
///
/// For `int8` / `uint8` the ranges come from `calibration` when given, else from `embeddings`
/// themselves (which needs at least two rows, and is not recommended: queries then get other
/// buckets than documents — prefer [`Int8Ranges::quantize`] with ranges from the corpus).
/// `float32`, `binary` and `ubinary` ignore `calibration`.
///
/// ```
/// use sieve_encoders::Embeddings;
/// use sieve_encoders::quantization::{Precision, QuantizedData, quantize_embeddings};
/// let e = Embeddings::from_rows(&[vec![0.3, -0.2, 0.0, 0.9, 0.1, -0.4, 0.2, 0.5, 0.7]]).unwrap();
/// let q = quantize_embeddings(&e, Precision::Binary, None)?;
/// // bits 1 0 0 1 1 0 1 1 | 1 (padded): bytes 155, 128, minus 128.
/// assert_eq!(q.data(), &QuantizedData::Int8(vec![27, 0]));
/// assert!(quantize_embeddings(&e, Precision::Int8, None).is_err()); // one row: no ranges
/// let calibration = Embeddings::from_rows(&[vec![-1.0; 9], vec![1.0; 9]]).unwrap();
/// assert_eq!(quantize_embeddings(&e, Precision::Int8, Some(&calibration))?.shape(), [1, 9]);
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
pub fn quantize_embeddings(
    embeddings: &Embeddings,
    precision: Precision,
    calibration: Option<&Embeddings>,
) -> Result<QuantizedEmbeddings> {
    let dim = embeddings.dim();
    let data = match precision {
        Precision::Float32 => QuantizedData::Float32(embeddings.as_slice().to_vec()),
        Precision::Int8 | Precision::Uint8 => {
            if embeddings.is_empty() {
                return Ok(QuantizedEmbeddings::empty(precision, dim));
            }
            let ranges = match calibration {
                Some(calibration) => Int8Ranges::from_embeddings(calibration)?,
                None if embeddings.len() < 2 => {
                    return Err(EncoderError::NotEnoughCalibration {
                        rows: embeddings.len(),
                        needed: 2,
                    });
                }
                None => Int8Ranges::from_embeddings(embeddings)?,
            };
            return ranges.quantize(embeddings, precision);
        }
        Precision::Binary => QuantizedData::Int8(pack_signs(embeddings).map(|b| (i16::from(b) - 128) as i8).collect()),
        Precision::Ubinary => QuantizedData::Uint8(pack_signs(embeddings).collect()),
    };
    Ok(QuantizedEmbeddings { precision, dim, data })
}

/// `np.packbits(embeddings > 0, axis=-1)`: per row, bit 7 of byte 0 is dimension 0.
fn pack_signs(embeddings: &Embeddings) -> impl Iterator<Item = u8> + '_ {
    embeddings.rows().flat_map(|row| {
        row.chunks(8).map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .fold(0u8, |byte, (bit, &x)| byte | (u8::from(x > 0.0) << (7 - bit)))
        })
    })
}

/// Number of differing bits between two packed rows (`binary` or `ubinary`, see
/// [`QuantizedEmbeddings::row_bytes`]); lower is more similar. Counts 64 bits at a time.
///
/// ```
/// use sieve_encoders::quantization::hamming_distance;
/// assert_eq!(hamming_distance(&[0b1010_0000, 0xff], &[0b0010_0001, 0x0f])?, 6);
/// assert!(hamming_distance(&[0], &[0, 0]).is_err());
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
pub fn hamming_distance(a: &[u8], b: &[u8]) -> Result<u64> {
    check_len(a.len(), b.len())?;
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        u64::from_ne_bytes(w)
    };
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: u32 = wa
        .remainder()
        .iter()
        .zip(wb.remainder())
        .map(|(x, y)| (x ^ y).count_ones())
        .sum();
    let words: u64 = wa
        .zip(wb)
        .map(|(x, y)| u64::from((word(x) ^ word(y)).count_ones()))
        .sum();
    Ok(words + u64::from(tail))
}

/// Dot product of two `int8` rows (the inner product usearch's `i8` index ranks by); higher is
/// more similar. Products are summed in `i32` (which vectorises), widened to `i64` every 65,536
/// dimensions so that no width overflows.
///
/// ```
/// use sieve_encoders::quantization::int8_dot;
/// assert_eq!(int8_dot(&[1, -2, 127], &[3, 4, -128])?, 3 - 8 - 16256);
/// assert!(int8_dot(&[1], &[]).is_err());
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
pub fn int8_dot(a: &[i8], b: &[i8]) -> Result<i64> {
    check_len(a.len(), b.len())?;
    // |product| <= 2^14, so 2^16 of them stay below 2^30.
    const BLOCK: usize = 1 << 16;
    Ok(a.chunks(BLOCK)
        .zip(b.chunks(BLOCK))
        .map(|(x, y)| {
            let sum: i32 = x.iter().zip(y).map(|(&p, &q)| i32::from(p) * i32::from(q)).sum();
            i64::from(sum)
        })
        .sum())
}

fn check_len(a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(EncoderError::DimensionMismatch { expected: a, got: b });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic byte stream (xorshift), enough to cover every bit pattern.
    fn bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut s = seed.max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn hamming_matches_bit_by_bit_count() {
        for len in [0, 1, 7, 8, 9, 48, 63, 64, 65, 130] {
            let (a, b) = (bytes(len as u64 + 1, len), bytes(len as u64 + 99, len));
            let naive: u64 = (0..len * 8)
                .filter(|&i| (a[i / 8] >> (i % 8)) & 1 != (b[i / 8] >> (i % 8)) & 1)
                .count() as u64;
            assert_eq!(hamming_distance(&a, &b).unwrap(), naive, "len {len}");
            assert_eq!(hamming_distance(&a, &a).unwrap(), 0);
        }
        assert_eq!(hamming_distance(&[0xff; 48], &[0; 48]).unwrap(), 384);
    }

    #[test]
    fn int8_dot_matches_wide_arithmetic() {
        for len in [0, 1, 5, 384, 1000] {
            let a: Vec<i8> = bytes(len as u64 + 3, len).into_iter().map(|b| b as i8).collect();
            let b: Vec<i8> = bytes(len as u64 + 77, len).into_iter().map(|b| b as i8).collect();
            let naive: i64 = a.iter().zip(&b).map(|(&x, &y)| i64::from(x) * i64::from(y)).sum();
            assert_eq!(int8_dot(&a, &b).unwrap(), naive, "len {len}");
        }
        // The extreme: every product is +2^14, past i32 over 2^17 dimensions.
        let long = vec![-128i8; (1 << 17) + 3];
        assert_eq!(int8_dot(&long, &long).unwrap(), ((1i64 << 17) + 3) << 14);
    }

    #[test]
    fn mismatched_lengths_are_errors() {
        assert!(matches!(
            hamming_distance(&[1, 2], &[1]),
            Err(EncoderError::DimensionMismatch { expected: 2, got: 1 })
        ));
        assert!(matches!(
            int8_dot(&[1], &[1, 2]),
            Err(EncoderError::DimensionMismatch { .. })
        ));
    }

    #[test]
    fn binary_and_ubinary_rows_have_the_same_hamming_distances() {
        let e = Embeddings::from_rows(&[
            vec![0.1, -0.2, 0.3, 0.0, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0],
            vec![-0.5; 10],
        ])
        .unwrap();
        let b = quantize_embeddings(&e, Precision::Binary, None).unwrap();
        let u = quantize_embeddings(&e, Precision::Ubinary, None).unwrap();
        let d = |q: &QuantizedEmbeddings| hamming_distance(q.row_bytes(0).unwrap(), q.row_bytes(1).unwrap()).unwrap();
        assert_eq!(d(&b), d(&u));
        assert_eq!(d(&u), 6);
        assert_eq!(b.dequantize_row(0, None).unwrap(), u.dequantize_row(0, None).unwrap());
    }

    #[test]
    fn unpack_inverts_pack() {
        let e = Embeddings::from_rows(&[vec![1.0, -1.0, 0.0, 2.0, 3.0, -4.0, 5.0, 0.5, 0.25, -1.0, 1.0]]).unwrap();
        let q = quantize_embeddings(&e, Precision::Ubinary, None).unwrap();
        let signs: Vec<f32> = e.row(0).iter().map(|&x| f32::from(u8::from(x > 0.0))).collect();
        assert_eq!(q.dequantize_row(0, None).unwrap(), signs);
    }
}
