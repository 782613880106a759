"""The Parquet lake: a fleet's history parsed on a Dask cluster into hive-partitioned Parquet.

`layout` names every file of the lake, `manifest` records which bytes of which source are stored,
`plan` turns input files into byte ranges, `tasks` runs on the workers (parse a range, classify an
hour), `cluster` drives a run, and `reader` reads the lake through DuckDB, read-only and sandboxed.
"""
