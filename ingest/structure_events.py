"""The watcher's filesystem events (ingest.tail): files created, moved or deleted under the
watched places make the next look rescan at once (best effort; a rescan every `poll_interval` is
the safety net).

Growth is not an event: inotify would report every write (a writer flushing each line makes
thousands a second, each handled in Python), while an fstat per file per look finds it for next
to nothing. Only the structural events are asked of the kernel.
"""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Sequence


def watch_structure(specs: Sequence[str], wake: threading.Event) -> object | None:
    """A started watchdog observer that sets `wake` on each structural change under the
    folders of `specs` (paths, folders, globs); None without watchdog."""
    try:
        from watchdog.events import (
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileMovedEvent,
            FileSystemEventHandler,
        )
        from watchdog.observers import Observer
    except ImportError:  # pragma: no cover - watchdog is a pinned dependency
        return None
    structure = [FileCreatedEvent, FileMovedEvent, FileDeletedEvent, DirCreatedEvent,
                 DirMovedEvent, DirDeletedEvent]  # fmt: skip

    class _Wake(FileSystemEventHandler):
        def on_any_event(self, event: object) -> None:
            wake.set()

    observer = Observer()
    watched: set[str] = set()
    for spec in specs:
        base = spec
        while glob.has_magic(base):
            base = os.path.dirname(base) or "."
        folder = base if os.path.isdir(base) else os.path.dirname(os.path.abspath(base))
        recursive = os.path.isdir(spec) or "**" in spec
        if os.path.isdir(folder) and folder not in watched:
            watched.add(folder)
            observer.schedule(_Wake(), folder, recursive=recursive, event_filter=structure)
    observer.daemon = True
    observer.start()
    return observer


def stop_observer(observer: object | None) -> None:
    if observer is not None:
        observer.stop()  # type: ignore[attr-defined]
        observer.join(timeout=2)  # type: ignore[attr-defined]
