"""Type stubs of sieve's native module (the classes are re-exported by ``sieve``)."""

from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Literal, TypedDict, overload

import numpy as np
import numpy.typing as npt
from typing_extensions import NotRequired

__version__: str

class SieveError(Exception):
    """Base class of sieve's own errors (a damaged or locked collection, a backend failure, ...)."""

Precision = Literal["float32", "int8", "uint8", "binary", "ubinary"]
ArrayLike = npt.ArrayLike
SparseLike = Any  # scipy.sparse matrix, SparseEmbeddings or a dense float array

class SentenceTransformer:
    """Maps sentences and paragraphs to dense vectors, as sentence-transformers' SentenceTransformer."""

    def __init__(
        self,
        model_name_or_path: str,
        *,
        device: str | None = None,
        truncate_dim: int | None = None,
        dtype: str | None = None,
    ) -> None: ...
    @overload
    def encode(
        self,
        inputs: str,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: Literal["sentence_embedding"] = "sentence_embedding",
        precision: Precision = "float32",
        convert_to_numpy: bool = True,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
    ) -> np.ndarray: ...
    @overload
    def encode(
        self,
        inputs: Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: Literal["sentence_embedding"] = "sentence_embedding",
        precision: Precision = "float32",
        convert_to_numpy: bool = True,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
    ) -> np.ndarray | list[np.ndarray]: ...
    def encode_query(
        self,
        inputs: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: Literal["sentence_embedding"] = "sentence_embedding",
        precision: Precision = "float32",
        convert_to_numpy: bool = True,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
    ) -> np.ndarray | list[np.ndarray]: ...
    def encode_document(
        self,
        inputs: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: Literal["sentence_embedding"] = "sentence_embedding",
        precision: Precision = "float32",
        convert_to_numpy: bool = True,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
    ) -> np.ndarray | list[np.ndarray]: ...
    def similarity(self, embeddings1: ArrayLike, embeddings2: ArrayLike) -> np.ndarray:
        """(n, m) float32 similarities (a NumPy array where sentence-transformers returns a tensor)."""
    def similarity_pairwise(self, embeddings1: ArrayLike, embeddings2: ArrayLike) -> np.ndarray: ...
    def get_sentence_embedding_dimension(self) -> int: ...
    @property
    def max_seq_length(self) -> int: ...
    @property
    def similarity_fn_name(self) -> Literal["cosine", "dot", "euclidean", "manhattan"]: ...
    @property
    def prompts(self) -> dict[str, str]: ...
    @property
    def truncate_dim(self) -> int | None: ...

class RankHit(TypedDict, total=False):
    corpus_id: int
    score: float
    text: str

class CrossEncoder:
    """Scores (query, text) pairs, as sentence-transformers' CrossEncoder."""

    def __init__(self, model_name_or_path: str, *, device: str | None = None, dtype: str | None = None) -> None: ...
    def predict(
        self,
        inputs: Sequence[tuple[str, str] | Sequence[str]] | tuple[str, str],
        prompt_name: None = None,
        prompt: None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: str | Callable[[np.ndarray], Any] | None = None,
        apply_softmax: bool = False,
        convert_to_numpy: bool = True,
    ) -> np.ndarray | np.float32 | list[Any]: ...
    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        return_documents: bool = False,
        prompt_name: None = None,
        prompt: None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: str | Callable[[np.ndarray], Any] | None = None,
    ) -> list[RankHit]: ...
    @property
    def num_labels(self) -> int: ...
    @property
    def max_length(self) -> int: ...

class SparseEmbeddings:
    """CSR sparse embeddings, returned by SparseEncoder.encode when SciPy is not installed."""

    @property
    def shape(self) -> tuple[int, int]: ...
    @property
    def indptr(self) -> np.ndarray: ...
    @property
    def indices(self) -> np.ndarray: ...
    @property
    def data(self) -> np.ndarray: ...
    @property
    def values(self) -> np.ndarray: ...
    @property
    def nnz(self) -> int: ...
    def toarray(self) -> np.ndarray: ...
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> SparseEmbeddings: ...

class Sparsity(TypedDict):
    active_dims: float
    sparsity_ratio: float

class SparseEncoder:
    """Maps texts to sparse vocabulary-sized vectors (SPLADE), as sentence-transformers' SparseEncoder."""

    def __init__(
        self,
        model_name_or_path: str,
        *,
        device: str | None = None,
        max_active_dims: int | None = None,
        dtype: str | None = None,
    ) -> None: ...
    def encode(
        self,
        inputs: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        max_active_dims: int | None = None,
    ) -> Any:
        """A scipy.sparse.csr_matrix (n, vocab_size) with SciPy installed, else a SparseEmbeddings."""
    def encode_query(
        self,
        inputs: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        max_active_dims: int | None = None,
    ) -> Any: ...
    def encode_document(
        self,
        inputs: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        max_active_dims: int | None = None,
    ) -> Any: ...
    def similarity(self, embeddings1: SparseLike, embeddings2: SparseLike) -> np.ndarray: ...
    @staticmethod
    def sparsity(embeddings: SparseLike) -> Sparsity: ...
    def decode(
        self, embeddings: SparseLike, top_k: int | None = None
    ) -> list[tuple[str, float]] | list[list[tuple[str, float]]]: ...
    def get_sentence_embedding_dimension(self) -> int: ...
    @property
    def max_seq_length(self) -> int: ...
    @property
    def similarity_fn_name(self) -> Literal["dot"]: ...

class Ranked(TypedDict):
    rank: int
    score: float

class Hit(TypedDict):
    id: str
    score: float
    text: str
    metadata: dict[str, Any]
    dense: Ranked | None
    sparse: Ranked | None
    bm25: Ranked | None
    first_stage: Ranked
    reranker: Ranked | None
    duplicates: NotRequired[list[str]]  # lower hits with the same text, folded into this one

class WriteReport(TypedDict):
    added: int
    replaced: int
    stale: list[str]

class StoredDocument(TypedDict):
    id: str
    text: str
    metadata: dict[str, Any]

StrPath = str | PathLike[str]

class Collection:
    """A persistent, searchable set of documents in one directory."""

    @classmethod
    def create(
        cls,
        path: StrPath,
        *,
        dense: str | None = "sentence-transformers/all-MiniLM-L6-v2",
        sparse: str | None = "rasyosef/splade-tiny",
        text: bool = True,
        reranker: str | None = "sieve/scifact-minilm-l6-reranker",
        truncate_dim: int | None = None,
        durability: Literal["flush", "buffered"] = "flush",
        batch_size: int = 32,
        device: str | None = None,
        dtype: str | None = None,
    ) -> Collection: ...
    @classmethod
    def open(cls, path: StrPath, *, device: str | None = None, dtype: str | None = None) -> Collection: ...
    def add(
        self,
        ids: str | Sequence[str],
        texts: str | Sequence[str],
        metadatas: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
        embeddings: ArrayLike | None = None,
        *,
        show_progress_bar: bool = False,
    ) -> WriteReport: ...
    def upsert(
        self,
        ids: str | Sequence[str],
        texts: str | Sequence[str],
        metadatas: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
        embeddings: ArrayLike | None = None,
        *,
        show_progress_bar: bool = False,
    ) -> WriteReport: ...
    def delete(self, ids: str | Sequence[str]) -> int: ...
    @overload
    def get(self, ids: str) -> StoredDocument | None: ...
    @overload
    def get(self, ids: Sequence[str]) -> list[StoredDocument | None]: ...
    def vectors(self, id: str) -> dict[str, Any] | None:
        """The stored {"dense": float32 array | None, "sparse": sparse matrix | None}, or None."""
    def search(
        self,
        query: str,
        mode: Literal["hybrid", "dense", "sparse", "bm25"] = "hybrid",
        top_k: int = 10,
        filter: str | dict[str, Any] | None = None,
        rerank: int | None = None,
        rerank_mode: Literal["fuse", "replace"] = "fuse",
        fusion: Literal["minmax", "rrf", "dbsf"] = "minmax",
        *,
        rerank_weight: float = 0.75,
        diversity: float | None = None,
        keep_duplicates: bool = False,
    ) -> list[Hit]: ...
    def sync_folder(
        self,
        paths: StrPath | Sequence[StrPath],
        *,
        glob: str | None = None,
        exclude: Sequence[str] = (),
        show_progress_bar: bool = False,
    ) -> dict[str, Any]:
        """Indexes folders of .txt/.md/.rst/.html files as `sieve index` does; the report as a dict."""
    def info(self) -> dict[str, Any]: ...
    def checkpoint(self) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def path(self) -> Path: ...
    def __len__(self) -> int: ...
    def __enter__(self) -> Collection: ...
    def __exit__(self, *args: object) -> bool: ...

class SearchResult(TypedDict):
    corpus_id: int
    score: float

def cos_sim(a: ArrayLike, b: ArrayLike) -> np.ndarray: ...
def dot_score(a: ArrayLike, b: ArrayLike) -> np.ndarray: ...
def semantic_search(
    query_embeddings: ArrayLike,
    corpus_embeddings: ArrayLike,
    query_chunk_size: int = 100,
    corpus_chunk_size: int = 500000,
    top_k: int = 10,
    score_function: Callable[..., Any] | str | None = None,
) -> list[list[SearchResult]]: ...
def quantize_embeddings(
    embeddings: ArrayLike,
    precision: Precision,
    ranges: ArrayLike | None = None,
    calibration_embeddings: ArrayLike | None = None,
) -> np.ndarray: ...
def paraphrase_mining_embeddings(
    embeddings: ArrayLike,
    query_chunk_size: int = 5000,
    corpus_chunk_size: int = 100000,
    max_pairs: int = 500000,
    top_k: int = 100,
    score_function: Callable[..., Any] | str | None = None,
) -> list[list[float | int]]: ...
def paraphrase_mining(
    model: SentenceTransformer,
    sentences: Sequence[str],
    show_progress_bar: bool = False,
    batch_size: int = 32,
    query_chunk_size: int = 5000,
    corpus_chunk_size: int = 100000,
    max_pairs: int = 500000,
    top_k: int = 100,
    score_function: Callable[..., Any] | str | None = None,
    truncate_dim: int | None = None,
    prompt_name: str | None = None,
    prompt: str | None = None,
) -> list[list[float | int]]: ...
def community_detection(
    embeddings: ArrayLike,
    threshold: float = 0.75,
    min_community_size: int = 10,
    batch_size: int = 1024,
    show_progress_bar: bool = False,
) -> list[list[int]]: ...
