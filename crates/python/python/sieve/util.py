"""sentence-transformers' ``util`` helpers on NumPy arrays: similarity matrices, semantic
search over embeddings, paraphrase mining, community detection and embedding quantization."""

from ._sieve import (
    community_detection,
    cos_sim,
    dot_score,
    paraphrase_mining,
    paraphrase_mining_embeddings,
    quantize_embeddings,
    semantic_search,
)

__all__ = [
    "community_detection",
    "cos_sim",
    "dot_score",
    "paraphrase_mining",
    "paraphrase_mining_embeddings",
    "quantize_embeddings",
    "semantic_search",
]
