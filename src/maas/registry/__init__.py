"""The model registry: immutable versions, aliases and lineage in SQL; artifacts on disk by digest."""
