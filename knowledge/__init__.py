"""Framework-free core: data model, entry files, embeddings, index and the ask pipeline.

Nothing here imports Flask.
"""
