"""Document embeddings and search over long documents (the default model is warm-started on first use)."""

from .default_model import DefaultModelMissing, default_model
from .embedding import Embedder, embed, load_embedder, passages, search

__all__ = ["DefaultModelMissing", "Embedder", "default_model", "embed", "load_embedder", "passages", "search"]
