"""Persistence: the metadata database and the encrypted blob store."""
