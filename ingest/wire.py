"""The read protocol between the watcher (ingest.serve) and its readers (ingest.served_reader):
the serve file that says where to ask, the request frames and the query parameters over JSON.

A request is a header line of at most `HEADER_MAX` bytes, `{"token", "op", "size"}`, then
`size` bytes (at most `BODY_MAX`) of JSON `{"sql", "params"}`: the server checks the token before
it reads a byte of the body. An action (`ACTIONS`) sends an empty `sql` and its arguments as
`params`. The answer is one JSON line `{ok, kind?, error?, truncated?,
elapsed?}` followed, when ok, by an Arrow IPC stream.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

HEADER_MAX = 1024
BODY_MAX = 1 << 20
# Actions are not SQL: each asks the watcher to do one fixed thing itself (ingest.serve `offer`),
# with flat parameters and an empty `sql`; the only writes another process can cause.
ACTIONS = ("alert_test", "alert_check")
OPS = ("query", "user_query", "export", *ACTIONS)  # export: a user query without the row cap
# Parameters are flat: scalars, dates, and lists of those (list_contains($tables, ...)).
PARAMS_MAX = 64
LIST_MAX = 10_000


class ProtocolError(Exception):
    """A request the server will not read further; `str()` is the one sentence it answers."""


@dataclass(frozen=True)
class Header:
    token: bytes
    op: str
    size: int
    # The reader wants every line appended before it asked (the watcher reads lines it keeps
    # for a batch first: `[watch] batch_wait`); false: what is stored will do (the dashboard).
    fresh: bool = True


@dataclass(frozen=True)
class ServeInfo:
    pid: int
    state: str
    host: str = ""
    port: int = 0
    token: str = ""


def serve_file(db: Path) -> Path:
    return db.with_name(db.name + ".serve.json")


def write_serve_file(db: Path, info: Mapping[str, object]) -> None:
    """Atomically replace the serve file, created 0600: it holds the token."""
    path = serve_file(db)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({**info, "pid": os.getpid()}, fh)
    os.replace(tmp, path)


def read_serve_file(db: Path) -> ServeInfo | None:
    """What the serve file says, or None when there is none or it is not ours to read."""
    try:
        raw = json.loads(serve_file(db).read_bytes()[: HEADER_MAX * 4])
        return ServeInfo(int(raw["pid"]), str(raw.get("state", "")), str(raw.get("host", "")),
                         int(raw.get("port", 0)), str(raw.get("token", "")))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def alive(pid: int) -> bool:
    """Whether the process that wrote a serve file still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- frames ------------------------------------------------------------------------------------


def encode_request(token: str, op: str, sql: str, params: object, fresh: bool = True) -> bytes:
    body = json.dumps({"sql": sql, "params": encode_params(params)}).encode()
    if len(body) > BODY_MAX:
        raise ProtocolError(f"the query is larger than {BODY_MAX >> 10} KiB")
    fields: dict[str, object] = {"token": token, "op": op, "size": len(body)}
    if not fresh:
        fields["fresh"] = False
    header = json.dumps(fields).encode()
    return header + b"\n" + body


def parse_header(line: bytes) -> Header:
    if not line.endswith(b"\n"):
        raise ProtocolError(f"the request header must be one line of at most {HEADER_MAX} bytes")
    try:
        raw = json.loads(line)
    except (ValueError, RecursionError):
        raise ProtocolError("the request header is not JSON") from None
    if not isinstance(raw, dict):
        raise ProtocolError("the request header must be a JSON object")
    token, op, size = raw.get("token"), raw.get("op"), raw.get("size")
    if not isinstance(token, str):
        raise ProtocolError("bad token")
    if op not in OPS:
        raise ProtocolError(f"unknown operation; use one of {', '.join(OPS)}")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= BODY_MAX:
        raise ProtocolError(f"the request size must be 1 to {BODY_MAX} bytes")
    fresh = raw.get("fresh", True)
    if not isinstance(fresh, bool):
        raise ProtocolError("fresh must be true or false")
    return Header(token.encode("utf-8", "surrogatepass"), str(op), size, fresh)


def parse_body(body: bytes) -> tuple[str, Any]:
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):
        raise ProtocolError("the request body is not JSON") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("sql"), str):
        raise ProtocolError('the request body must be {"sql": text, "params": ...}')
    return raw["sql"], decode_params(raw.get("params"))


def reply_line(header: Mapping[str, object]) -> bytes:
    return json.dumps(header).encode() + b"\n"


# -- parameters over JSON ----------------------------------------------------------------------


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def encode_params(params: object) -> object:
    if params is None:
        return None
    if isinstance(params, Mapping):
        return {str(k): _encode(v) for k, v in params.items()}
    if isinstance(params, Sequence) and not isinstance(params, str | bytes):
        return [_encode(v) for v in params]
    raise ProtocolError("query parameters must be a list or a mapping")


def _scalar(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((kind, text),) = value.items()
        if isinstance(text, str) and kind in ("$dt", "$date"):
            try:
                return datetime.fromisoformat(text) if kind == "$dt" else date.fromisoformat(text)
            except ValueError:
                raise ProtocolError(f"parameter {kind} {text[:40]!r} is not a date") from None
    raise ProtocolError("a query parameter must be a scalar, a $dt/$date or a list of those")


def _value(value: object) -> object:
    if isinstance(value, list):
        if len(value) > LIST_MAX:
            raise ProtocolError(f"a list parameter holds at most {LIST_MAX} values")
        return [_scalar(v) for v in value]
    return _scalar(value)


def decode_params(raw: object) -> Any:
    if raw is None:
        return None
    if isinstance(raw, dict | list) and len(raw) > PARAMS_MAX:
        raise ProtocolError(f"a query takes at most {PARAMS_MAX} parameters")
    if isinstance(raw, dict):
        return {str(k): _value(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_value(v) for v in raw]
    raise ProtocolError("query parameters must be a list or an object")
