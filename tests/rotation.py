"""Log rotation as writers do it, for the tests' log writers (faults, soak)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TextIO


def rotate(folder: Path, name: str, handles: dict[str, TextIO], count: int) -> None:
    """Rotate `folder/name` for the `count`-th time into `name.count` and reopen it in
    `handles`: odd counts rename + create (logrotate's default), even ones copytruncate."""
    live = folder / name
    rotated = folder / f"{name}.{count}"
    handles[name].close()
    if count % 2:
        os.rename(live, rotated)
    else:
        shutil.copyfile(live, rotated)
        with live.open("r+") as fh:
            fh.truncate(0)
    handles[name] = live.open("a")
