//! Persistence shared by every index: one place for how index files are written and read.
//!
//! - **Envelope** (`envelope`): the checked file format every index file is written in (magic
//!   naming the file kind, format version, payload length, CRC-32), refused with
//!   [`IndexError::Corrupt`](crate::IndexError::Corrupt) before any byte of a damaged file is
//!   trusted.
//! - **Atomic replacement** (`atomic`): a file is written to a temporary sibling, synced and
//!   renamed over the old one, and the directory synced, so a crash leaves the old or the new
//!   file, never a mix.
//! - **Little-endian payloads** (`bytes`): [`Writer`] and [`Reader`], the one encoding of the
//!   numbers inside a payload; the reader checks every length against what is left.

mod atomic;
mod bytes;
mod envelope;

pub(crate) use atomic::{ensure_dir, sync_dir, sync_file};
pub(crate) use bytes::{Reader, Writer};
pub(crate) use envelope::{read_checked, write_checked};
