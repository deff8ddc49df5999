//! Little-endian payload encoding: [`Writer`] appends numbers, [`Reader`] takes them back and
//! refuses to read past the end.

use std::path::Path;

use crate::error::{IndexError, Result};

/// Appends little-endian numbers to a payload.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Writer {
            bytes: Vec::with_capacity(bytes),
        }
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    pub(crate) fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn u32s(&mut self, values: &[u32]) {
        values.iter().for_each(|&v| self.u32(v));
    }

    pub(crate) fn f32s(&mut self, values: &[f32]) {
        values
            .iter()
            .for_each(|v| self.bytes.extend_from_slice(&v.to_le_bytes()));
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Takes little-endian numbers from the front of a payload. Asking for more bytes than are
/// left is [`IndexError::Corrupt`] naming `path`, checked before anything is allocated, so a
/// length read from a damaged file never sizes an allocation larger than the file.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    path: &'a Path,
}

impl<'a> Reader<'a> {
    /// Reads `bytes`, the payload of the file at `path` (named in errors).
    pub(crate) fn new(bytes: &'a [u8], path: &'a Path) -> Self {
        Reader { bytes, path }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.bytes.len() {
            return Err(IndexError::corrupt(
                self.path,
                format!("truncated: {n} bytes wanted, {} left", self.bytes.len()),
            ));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// `n` consecutive `u32`s.
    pub(crate) fn u32s(&mut self, n: usize) -> Result<Vec<u32>> {
        self.words(n, u32::from_le_bytes)
    }

    /// `n` consecutive `f32`s.
    pub(crate) fn f32s(&mut self, n: usize) -> Result<Vec<f32>> {
        self.words(n, f32::from_le_bytes)
    }

    fn words<T>(&mut self, n: usize, decode: fn([u8; 4]) -> T) -> Result<Vec<T>> {
        let bytes = self.take(n.saturating_mul(4))?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| decode(c.try_into().expect("4 bytes")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut w = Writer::default();
        w.u8(7);
        w.u32(0xdead_beef);
        w.u64(u64::MAX - 1);
        w.u32s(&[1, 2]);
        w.f32s(&[0.5, -1.0]);
        let bytes = w.into_bytes();
        assert_eq!(bytes.len(), 1 + 4 + 8 + 8 + 8);

        let path = Path::new("mem");
        let mut r = Reader::new(&bytes, path);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u32().unwrap(), 0xdead_beef);
        assert_eq!(r.u64().unwrap(), u64::MAX - 1);
        assert_eq!(r.u32s(2).unwrap(), [1, 2]);
        assert_eq!(r.remaining(), 8);
        assert!(matches!(r.f32s(3), Err(IndexError::Corrupt { .. })));
        assert!(matches!(r.u32s(usize::MAX), Err(IndexError::Corrupt { .. })));
        assert_eq!(r.f32s(2).unwrap(), [0.5, -1.0]);
        assert_eq!(r.remaining(), 0);
        let err = r.u8().unwrap_err();
        assert!(err.to_string().contains("truncated: 1 bytes wanted, 0 left"), "{err}");
    }
}
