"""Log files -> DuckDB: formats, parsing, the store, classification and the read side."""
