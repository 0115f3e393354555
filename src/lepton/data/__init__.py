"""Data: formats, ingest, schema, profile, PII scan, splits, transforms and bundled samples."""
