"""sieve: sentence-transformers' models without PyTorch, and an embedded hybrid search database.

The three model classes take the arguments of their sentence-transformers namesakes and give
the same numbers (NumPy arrays where sentence-transformers returns torch tensors)::

    from sieve import SentenceTransformer

    model = SentenceTransformer("all-MiniLM-L6-v2")
    embeddings = model.encode(["The weather is lovely today.", "It's so sunny outside!"])
    print(model.similarity(embeddings, embeddings))

:class:`Collection` is the database: documents with metadata, encoded on the way in, searched
by dense, sparse and BM25 retrieval fused, then reranked by a cross-encoder.
"""

from . import util
from ._sieve import (
    Collection,
    CrossEncoder,
    SentenceTransformer,
    SieveError,
    SparseEmbeddings,
    SparseEncoder,
    __version__,
)

__all__ = [
    "Collection",
    "CrossEncoder",
    "SentenceTransformer",
    "SieveError",
    "SparseEmbeddings",
    "SparseEncoder",
    "util",
    "__version__",
]
