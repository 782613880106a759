"""The Streamlit dashboard: store -> (ingest.reads) -> pages; never imports `alerts`."""
