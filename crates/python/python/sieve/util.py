"""sentence-transformers' ``util`` helpers on NumPy arrays: similarity matrices, semantic
search over embeddings, and embedding quantization."""

from ._sieve import cos_sim, dot_score, quantize_embeddings, semantic_search

__all__ = ["cos_sim", "dot_score", "quantize_embeddings", "semantic_search"]
