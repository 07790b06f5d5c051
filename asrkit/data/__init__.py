"""Manifests, datasets, batching and collation."""
