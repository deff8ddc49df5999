//! The checked file envelope every index file is written in.
//!
//! Layout (little endian): 8-byte magic naming the file kind, `u32` format version,
//! `u64` payload length, the payload, then a CRC-32 of everything before it. A file that is
//! truncated, padded, of another kind or bit-flipped is refused with
//! [`IndexError::Corrupt`](crate::IndexError::Corrupt) before any of its bytes are trusted.

use std::fs;
use std::path::Path;

use super::atomic::write_atomic;
use crate::error::{IndexError, Result};

const HEADER_LEN: usize = 8 + 4 + 8;
const TRAILER_LEN: usize = 4;

/// Writes `payload` in the checked envelope to `path`, atomically.
pub(crate) fn write_checked(path: &Path, magic: &[u8; 8], version: u32, payload: &[u8]) -> Result<()> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(payload);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    write_atomic(path, &bytes)
}

/// Reads a file written by [`write_checked`], verifying kind, version, length and checksum.
pub(crate) fn read_checked(path: &Path, magic: &[u8; 8], version: u32) -> Result<Vec<u8>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IndexError::NotFound {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(IndexError::io(path, e)),
    };
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(IndexError::corrupt(
            path,
            format!("{} bytes is shorter than any index file", bytes.len()),
        ));
    }
    if &bytes[..8] != magic {
        return Err(IndexError::corrupt(
            path,
            format!(
                "expected a {} file",
                String::from_utf8_lossy(magic).trim_end_matches('\0')
            ),
        ));
    }
    let found = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if found != version {
        return Err(IndexError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: version,
        });
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let expected_total = (HEADER_LEN as u64)
        .checked_add(len)
        .and_then(|n| n.checked_add(TRAILER_LEN as u64));
    if expected_total != Some(bytes.len() as u64) {
        return Err(IndexError::corrupt(
            path,
            format!(
                "header announces {len} payload bytes but the file holds {}",
                bytes.len()
            ),
        ));
    }
    let body_end = bytes.len() - TRAILER_LEN;
    let stored = u32::from_le_bytes(bytes[body_end..].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[..body_end]) != stored {
        return Err(IndexError::corrupt(path, "checksum mismatch"));
    }
    Ok(bytes[HEADER_LEN..body_end].to_vec())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    const MAGIC: &[u8; 8] = b"SIEVTEST";

    fn tmp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sieve-persist-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir.join("f.bin")
    }

    #[test]
    fn round_trip_and_every_kind_of_damage() {
        let path = tmp();
        write_checked(&path, MAGIC, 3, b"hello payload").unwrap();
        assert_eq!(read_checked(&path, MAGIC, 3).unwrap(), b"hello payload");
        assert!(matches!(
            read_checked(&path, b"OTHERKND", 3),
            Err(IndexError::Corrupt { .. })
        ));
        assert!(matches!(
            read_checked(&path, MAGIC, 4),
            Err(IndexError::UnsupportedVersion { found: 3, .. })
        ));

        let good = fs::read(&path).unwrap();
        for cut in [0, 5, good.len() / 2, good.len() - 1] {
            fs::write(&path, &good[..cut]).unwrap();
            assert!(
                matches!(read_checked(&path, MAGIC, 3), Err(IndexError::Corrupt { .. })),
                "cut at {cut}"
            );
        }
        let mut flipped = good.clone();
        flipped[HEADER_LEN + 2] ^= 0x10;
        fs::write(&path, &flipped).unwrap();
        assert!(matches!(read_checked(&path, MAGIC, 3), Err(IndexError::Corrupt { .. })));

        fs::remove_file(&path).unwrap();
        assert!(matches!(
            read_checked(&path, MAGIC, 3),
            Err(IndexError::NotFound { .. })
        ));
    }
}
