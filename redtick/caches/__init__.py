"""The caches: one module per thing cached."""
