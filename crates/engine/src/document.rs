//! [`Document`]: what users store, search and get back.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sieve_encoders::SparseVector;

/// A document: a user id, its text and free-form JSON metadata.
///
/// Vectors are normally computed by the collection's encoders on the way in; a document may
/// carry precomputed ones ([`with_dense`](Self::with_dense), [`with_sparse`](Self::with_sparse))
/// when they come from elsewhere, as long as they come from the same models.
///
/// ```
/// use sieve_engine::Document;
/// use serde_json::json;
///
/// let doc = Document::new("doc-1", "Rust is a systems language.").with_metadata(json!({"year": 2015}));
/// assert_eq!(doc.metadata["year"], 2015);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The user's id, unique within a collection.
    pub id: String,
    /// The text that is encoded and indexed.
    pub text: String,
    /// Arbitrary JSON (usually an object); filters address its top-level fields.
    pub metadata: Value,
    /// Precomputed dense embedding, used instead of encoding `text` with the dense model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dense: Option<Vec<f32>>,
    /// Precomputed sparse embedding, used instead of encoding `text` with the sparse model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse: Option<SparseVector>,
}

impl Document {
    /// A document with empty metadata (`{}`).
    pub fn new(id: impl Into<String>, text: impl Into<String>) -> Self {
        Document {
            id: id.into(),
            text: text.into(),
            metadata: Value::Object(Default::default()),
            dense: None,
            sparse: None,
        }
    }

    /// Replaces the metadata.
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// Supplies a precomputed dense embedding.
    pub fn with_dense(mut self, embedding: Vec<f32>) -> Self {
        self.dense = Some(embedding);
        self
    }

    /// Supplies a precomputed sparse embedding.
    pub fn with_sparse(mut self, embedding: SparseVector) -> Self {
        self.sparse = Some(embedding);
        self
    }
}
