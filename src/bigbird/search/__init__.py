"""Document embeddings and search over long documents (the default model is warm-started on first use)."""
