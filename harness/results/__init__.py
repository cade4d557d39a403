"""Results on disk: atomic writes, the folder layout, status files and the collector."""
