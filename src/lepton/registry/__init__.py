"""Model registry: safe artifact formats, packing and loading."""
