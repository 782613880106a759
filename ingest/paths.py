"""The files a command names (commands -> pipeline): files, globs and folders, expanded."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from conflictradar.ingest.errors import InputError

# Files in a folder that are never logs (docs, code, config, our own labels).
SKIP_SUFFIXES = {".md", ".rst", ".html", ".png", ".jpg", ".py", ".toml", ".yaml", ".yml", ".csv"}


def folder_files(folder: str) -> list[Path]:
    """The files under `folder`, recursively, in sorted order; hidden files and folders and
    files that are never logs (SKIP_SUFFIXES) are left out. One-shot and watched folders alike."""
    out: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(root) / name for name in sorted(files)
                if not name.startswith(".") and Path(name).suffix.lower() not in SKIP_SUFFIXES]  # fmt: skip
    return out


def expand_paths(args: Sequence[str]) -> list[Path]:
    """Files, globs and folders (recursive) -> sorted unique files; missing paths are errors."""
    out: list[Path] = []
    for arg in args:
        if glob.has_magic(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                raise InputError(f"no file matches {arg}")
            out.extend(Path(m) for m in matches if Path(m).is_file())
        elif os.path.isdir(arg):
            out.extend(folder_files(arg))
        elif os.path.exists(arg):
            out.append(Path(arg))
        else:
            raise InputError(f"{arg} does not exist")
    seen: set[str] = set()
    unique = []
    for p in out:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            unique.append(Path(key))
    return unique
