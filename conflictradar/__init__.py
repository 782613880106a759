"""conflictradar: find, explain and alert on HTTP 409 Conflict responses in access logs."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _version() -> str:
    try:
        return version("conflictradar")
    except PackageNotFoundError:  # a checkout on sys.path without an install
        return "0+unknown"


__version__ = _version()
