"""Embedding models: manifests, the on-disk store, converters and downloads."""
