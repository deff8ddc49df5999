//! The document store: the source of truth every index is rebuilt from.
//!
//! One ordered key space (see [`storage`](crate::storage)), keys by prefix:
//!
//! | key | value |
//! |---|---|
//! | `m:schema` | the [`Schema`]: version, configuration, model dimensions |
//! | `m:seq` | `u64` sequence number of the last write |
//! | `m:next_id` | `u32` next internal id |
//! | `m:log_floor` | `u64`: change-log entries up to this sequence have been trimmed |
//! | `u:<user id>` | `u32` internal id |
//! | `d:<internal id>` | the document: user id, text, metadata (JSON text) |
//! | `v:<internal id>` | dense vector, little-endian f32 |
//! | `s:<internal id>` | sparse vector |
//! | `l:<sequence>` | internal ids a write touched (the change log indexes catch up from) |
//!
//! Every write is one atomic batch, so a document is either entirely present (text, vectors,
//! id mapping, log entry) or entirely absent after a crash.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sieve_encoders::{Dtype, SparseVector};
use sieve_index::Metric;

use crate::config::CollectionConfig;
use crate::document::Document;
use crate::error::{EngineError, Result};
use crate::storage::{Storage, WriteBatch};

/// Version of the key layout and record formats. 2 added `CollectionConfig::truncate_dim`;
/// a version 1 schema still opens (see [`Store::schema`]).
pub(crate) const SCHEMA_VERSION: u32 = 2;

const SCHEMA: &[u8] = b"m:schema";
const SEQ: &[u8] = b"m:seq";
const NEXT_ID: &[u8] = b"m:next_id";
const LOG_FLOOR: &[u8] = b"m:log_floor";
const USER_ID: &[u8] = b"u:";
const DOC: &[u8] = b"d:";
const DENSE: &[u8] = b"v:";
const SPARSE: &[u8] = b"s:";
const LOG: &[u8] = b"l:";

/// What the collection was created with, stored once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Schema {
    pub version: u32,
    pub config: CollectionConfig,
    /// Dense embedding size and metric, from the dense model at creation.
    pub dense: Option<(usize, Metric)>,
    /// Sparse vocabulary size, from the sparse model at creation.
    pub sparse_dim: Option<u32>,
    /// The arithmetic the documents are encoded in, fixed at creation. Last, so a schema
    /// written before it existed still decodes (as f32; see [`Store::schema`]).
    pub dtype: Dtype,
}

/// [`Schema`] as version 1 wrote it: the configuration without `truncate_dim`, and before
/// that also without the precision (always f32 then).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize, Clone))]
struct SchemaV1 {
    version: u32,
    config: ConfigV1,
    dense: Option<(usize, Metric)>,
    sparse_dim: Option<u32>,
    dtype: Dtype,
}

/// The first version 1 layout, without the precision.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize, Clone))]
struct SchemaV1WithoutDtype {
    version: u32,
    config: ConfigV1,
    dense: Option<(usize, Metric)>,
    sparse_dim: Option<u32>,
}

/// [`CollectionConfig`] in version 1.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize, Clone))]
struct ConfigV1 {
    dense: Option<String>,
    sparse: Option<String>,
    text: bool,
    reranker: Option<String>,
    hnsw: sieve_index::HnswParams,
    text_index: sieve_index::TextIndexConfig,
    batch_size: usize,
    durability: crate::config::Durability,
}

impl From<SchemaV1> for Schema {
    fn from(old: SchemaV1) -> Schema {
        let c = old.config;
        Schema {
            version: old.version,
            config: CollectionConfig {
                dense: c.dense,
                sparse: c.sparse,
                text: c.text,
                reranker: c.reranker,
                hnsw: c.hnsw,
                text_index: c.text_index,
                batch_size: c.batch_size,
                durability: c.durability,
                ..CollectionConfig::default()
            },
            dense: old.dense,
            sparse_dim: old.sparse_dim,
            dtype: old.dtype,
        }
    }
}

/// A stored document without its vectors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DocRecord {
    pub id: String,
    pub text: String,
    /// Metadata as JSON text (bincode cannot carry `serde_json::Value` itself).
    pub metadata: String,
}

impl DocRecord {
    pub fn metadata(&self) -> Value {
        serde_json::from_str(&self.metadata).unwrap_or(Value::Null)
    }

    /// The document as users see it (without vectors).
    pub fn into_document(self) -> Document {
        let metadata = self.metadata();
        Document {
            id: self.id,
            text: self.text,
            metadata,
            dense: None,
            sparse: None,
        }
    }
}

/// One document's new state, written by [`Store::commit`].
pub(crate) struct Put {
    pub iid: u32,
    pub record: DocRecord,
    pub dense: Option<Vec<f32>>,
    pub sparse: Option<SparseVector>,
}

pub(crate) struct Store {
    storage: Box<dyn Storage>,
    path: PathBuf,
}

fn bin<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("in-memory values always encode")
}

fn key(prefix: &[u8], iid: u32) -> Vec<u8> {
    [prefix, &iid.to_be_bytes()].concat()
}

fn user_key(id: &str) -> Vec<u8> {
    [USER_ID, id.as_bytes()].concat()
}

impl Store {
    pub fn new(storage: Box<dyn Storage>, path: &Path) -> Self {
        Store {
            storage,
            path: path.to_path_buf(),
        }
    }

    fn damaged(&self, what: impl std::fmt::Display) -> EngineError {
        EngineError::not_a_collection(&self.path, format!("damaged store record: {what}"))
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, bytes: &[u8], what: &str) -> Result<T> {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map(|(v, _)| v)
            .map_err(|e| self.damaged(format!("{what}: {e}")))
    }

    pub fn schema(&self) -> Result<Option<Schema>> {
        let Some(bytes) = self.storage.get(SCHEMA)? else {
            return Ok(None);
        };
        // Read the version alone first, so a newer layout is reported as such, not as damage.
        let version: u32 = bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
            .map(|(v, _)| v)
            .map_err(|e| self.damaged(format!("schema: {e}")))?;
        match version {
            SCHEMA_VERSION => self.decode::<Schema>(&bytes, "schema").map(Some),
            1 => match self.decode::<SchemaV1>(&bytes, "schema") {
                Ok(old) => Ok(Some(old.into())),
                Err(e) => match self.decode::<SchemaV1WithoutDtype>(&bytes, "schema") {
                    Ok(old) => Ok(Some(
                        SchemaV1 {
                            version: old.version,
                            config: old.config,
                            dense: old.dense,
                            sparse_dim: old.sparse_dim,
                            dtype: Dtype::F32,
                        }
                        .into(),
                    )),
                    Err(_) => Err(e),
                },
            },
            found => Err(EngineError::SchemaVersion {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            }),
        }
    }

    pub fn write_schema(&self, schema: &Schema) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put(SCHEMA, bin(schema));
        self.storage.apply(batch)?;
        self.storage.flush()
    }

    fn read_u64(&self, key: &[u8]) -> Result<u64> {
        match self.storage.get(key)? {
            None => Ok(0),
            Some(b) => Ok(u64::from_be_bytes(
                b.as_slice().try_into().map_err(|_| self.damaged("counter"))?,
            )),
        }
    }

    /// Sequence number of the last write.
    pub fn seq(&self) -> Result<u64> {
        self.read_u64(SEQ)
    }

    pub fn log_floor(&self) -> Result<u64> {
        self.read_u64(LOG_FLOOR)
    }

    pub fn next_id(&self) -> Result<u32> {
        match self.storage.get(NEXT_ID)? {
            None => Ok(0),
            Some(b) => Ok(u32::from_be_bytes(
                b.as_slice().try_into().map_err(|_| self.damaged("next id"))?,
            )),
        }
    }

    pub fn iid(&self, user_id: &str) -> Result<Option<u32>> {
        match self.storage.get(&user_key(user_id))? {
            None => Ok(None),
            Some(b) => Ok(Some(u32::from_be_bytes(
                b.as_slice().try_into().map_err(|_| self.damaged("id map"))?,
            ))),
        }
    }

    pub fn record(&self, iid: u32) -> Result<Option<DocRecord>> {
        self.storage
            .get(&key(DOC, iid))?
            .map(|b| self.decode(&b, "document"))
            .transpose()
    }

    pub fn dense(&self, iid: u32) -> Result<Option<Vec<f32>>> {
        Ok(self.storage.get(&key(DENSE, iid))?.map(|b| f32s(&b)))
    }

    pub fn sparse(&self, iid: u32) -> Result<Option<SparseVector>> {
        self.storage
            .get(&key(SPARSE, iid))?
            .map(|b| self.decode(&b, "sparse vector"))
            .transpose()
    }

    /// Every document, in internal-id order.
    pub fn records(&self) -> impl Iterator<Item = Result<(u32, DocRecord)>> + '_ {
        self.storage.scan_prefix(DOC).map(move |item| {
            let (k, v) = item?;
            Ok((iid_of(&k), self.decode(&v, "document")?))
        })
    }

    pub fn dense_vectors(&self) -> impl Iterator<Item = Result<(u32, Vec<f32>)>> + '_ {
        self.storage
            .scan_prefix(DENSE)
            .map(|item| item.map(|(k, v)| (iid_of(&k), f32s(&v))))
    }

    pub fn sparse_vectors(&self) -> impl Iterator<Item = Result<(u32, SparseVector)>> + '_ {
        self.storage.scan_prefix(SPARSE).map(move |item| {
            let (k, v) = item?;
            Ok((iid_of(&k), self.decode(&v, "sparse vector")?))
        })
    }

    /// Internal ids touched by writes after sequence `after`, deduplicated, ascending.
    pub fn touched_since(&self, after: u64) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        for item in self.storage.scan_prefix(LOG) {
            let (k, v) = item?;
            let seq = u64::from_be_bytes(k[LOG.len()..].try_into().map_err(|_| self.damaged("log key"))?);
            if seq > after {
                ids.extend(self.decode::<Vec<u32>>(&v, "log entry")?);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Drops change-log entries up to `seq` (every index has saved past it).
    pub fn trim_log(&self, seq: u64) -> Result<()> {
        let mut batch = WriteBatch::default();
        for item in self.storage.scan_prefix(LOG) {
            let (k, _) = item?;
            let entry = u64::from_be_bytes(k[LOG.len()..].try_into().map_err(|_| self.damaged("log key"))?);
            if entry <= seq {
                batch.delete(k);
            }
        }
        batch.put(LOG_FLOOR, seq.max(self.log_floor()?).to_be_bytes().to_vec());
        self.storage.apply(batch)?;
        self.storage.flush()
    }

    /// Applies documents and deletions as one atomic batch (all or nothing; durable after the
    /// next [`flush`](Self::flush)); returns the new sequence number. `removed` pairs each
    /// deleted internal id with its user id.
    pub fn commit(&self, puts: &[Put], removed: &[(u32, String)], next_id: u32) -> Result<u64> {
        let seq = self.seq()? + 1;
        let mut batch = WriteBatch::default();
        let mut touched = Vec::with_capacity(puts.len() + removed.len());
        for (iid, user_id) in removed {
            batch.delete(user_key(user_id));
            for prefix in [DOC, DENSE, SPARSE] {
                batch.delete(key(prefix, *iid));
            }
            touched.push(*iid);
        }
        for put in puts {
            batch.put(user_key(&put.record.id), put.iid.to_be_bytes().to_vec());
            batch.put(key(DOC, put.iid), bin(&put.record));
            match &put.dense {
                Some(v) => batch.put(
                    key(DENSE, put.iid),
                    v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
                ),
                None => batch.delete(key(DENSE, put.iid)),
            }
            match &put.sparse {
                Some(v) => batch.put(key(SPARSE, put.iid), bin(v)),
                None => batch.delete(key(SPARSE, put.iid)),
            }
            touched.push(put.iid);
        }
        batch.put([LOG, &seq.to_be_bytes()[..]].concat(), bin(&touched));
        batch.put(SEQ, seq.to_be_bytes().to_vec());
        batch.put(NEXT_ID, next_id.to_be_bytes().to_vec());
        self.storage.apply(batch)?;
        Ok(seq)
    }

    pub fn flush(&self) -> Result<()> {
        self.storage.flush()
    }
}

fn iid_of(key: &[u8]) -> u32 {
    let tail = &key[key.len() - 4..];
    u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]])
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durability;
    use crate::storage::SledStorage;

    #[test]
    fn version_1_schemas_still_open_and_newer_ones_are_named() {
        let dir = std::env::temp_dir().join(format!("sieve-schema-v1-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::new(Box::new(SledStorage::open(&dir).unwrap()), &dir);
        let put = |bytes: Vec<u8>| {
            let mut batch = WriteBatch::default();
            batch.put(SCHEMA, bytes);
            store.storage.apply(batch).unwrap();
        };
        let config = ConfigV1 {
            dense: Some("some/model".into()),
            sparse: None,
            text: true,
            reranker: None,
            hnsw: sieve_index::HnswParams::default(),
            text_index: sieve_index::TextIndexConfig::default(),
            batch_size: 8,
            durability: Durability::Buffered,
        };
        let dense = Some((384, Metric::Cosine));
        let with_dtype = SchemaV1 {
            version: 1,
            config: config.clone(),
            dense,
            sparse_dim: None,
            dtype: Dtype::Int8,
        };
        let without_dtype = SchemaV1WithoutDtype {
            version: 1,
            config,
            dense,
            sparse_dim: Some(30522),
        };
        for (bytes, dtype) in [(bin(&with_dtype), Dtype::Int8), (bin(&without_dtype), Dtype::F32)] {
            put(bytes);
            let schema = store.schema().unwrap().unwrap();
            assert_eq!((schema.dtype, schema.dense), (dtype, dense));
            assert_eq!(schema.config.dense.as_deref(), Some("some/model"));
            assert_eq!(
                (schema.config.batch_size, schema.config.durability),
                (8, Durability::Buffered)
            );
            assert_eq!(schema.config.truncate_dim, None);
        }
        // The current layout round-trips; a newer version is named, not called damage.
        let mut current: Schema = with_dtype.into();
        current.version = SCHEMA_VERSION;
        current.config.truncate_dim = Some(128);
        store.write_schema(&current).unwrap();
        assert_eq!(store.schema().unwrap().unwrap().config.truncate_dim, Some(128));
        put(bin(&(SCHEMA_VERSION + 1)));
        assert!(matches!(
            store.schema(),
            Err(EngineError::SchemaVersion { found: 3, .. })
        ));
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }
}
