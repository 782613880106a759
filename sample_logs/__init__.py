"""Realistic access logs in every supported format, with labelled 409s, and their generator."""
