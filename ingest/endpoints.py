"""Endpoint templates: concrete paths (resources) -> templates like `/orders/{id}`.

Best source first: an OpenAPI spec from the config; a template the log carries (`route`); else
segments that look like identifiers become `{id}`, and a path position whose values stay
high-cardinality under one prefix is folded too (learned per database, see `learn_folds`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from conflictradar.ingest.errors import ConfigError

ID = "{id}"

# A segment is an identifier when it has one of these shapes. Plain words (`orders`, `v1beta`,
# a long slug) stay literal: a shape marked "with a digit" counts only when the
# segment holds one (every other shape has a digit, an @ or a %40 by construction).
_HEX = "0-9a-fA-F"


def _with_digit(chars: str, n: int) -> str:
    """A regex for n or more of `chars` (a character class body that includes 0-9) among which
    at least one digit: alternatives by the position of the first digit (the regex engine has
    no lookahead)."""
    letters = chars.replace("0-9", "")
    alts = [f"[{letters}]{{{i}}}\\d[{chars}]{{{n - 1 - i},}}" for i in range(n - 1)]
    alts.append(f"[{letters}]{{{n - 1},}}\\d[{chars}]*")
    return "(?:" + "|".join(alts) + ")"


def _uuid_with_digit() -> str:
    """8-4-4-4-12 hex digits (dashes optional) among which at least one decimal digit."""
    groups = (8, 4, 4, 4, 12)
    alts = []
    for k, m in enumerate(groups):
        first = "|".join(f"[a-fA-F]{{{i}}}\\d[{_HEX}]{{{m - 1 - i}}}" for i in range(m))
        parts = [f"[a-fA-F]{{{g}}}" for g in groups[:k]]
        parts += [f"(?:{first})", *(f"[{_HEX}]{{{g}}}" for g in groups[k + 1 :])]
        alts.append("-?".join(parts))
    return "(?:" + "|".join(alts) + ")"


_ID_SHAPES = "|".join(
    [
        r"\d+",  # integers
        _uuid_with_digit(),  # UUID, with a digit
        _with_digit(_HEX, 8),  # hex, with a digit
        r"[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}",  # ULID
        r"[A-Za-z]{1,12}[_-][A-Za-z0-9]*\d[A-Za-z0-9]*",  # prefixed ids: inv_8f3a, SKU-4417
        r"[A-Za-z]{1,4}\d{3,}[A-Za-z0-9]*",  # compact prefixed ids: u12345, INV2024001
        r"[^@/]+(?:@|%40)[^@/]+\.[^@/]+",  # emails
        r"\d{4}-\d\d-\d\d(?:[T ][0-9:.]+Z?)?",  # dates
        r"\d+(?:[.,-]\d+)+",  # dotted/dashed numbers: 1.2.3, 2024-001
        _with_digit("A-Za-z0-9_~=+-", 20),  # long tokens (base64url, hashes), with a digit
        _with_digit("A-Za-z0-9+_-", 16) + "={0,2}",  # base64 with padding, with a digit
    ]
)
# One whole segment between slashes. No shape can hold a `/`, so a match is exactly one segment.
_SEGMENT_ID = f"/(?:{_ID_SHAPES})/"
_ID_RE = f"^(?:{_ID_SHAPES})$"
# Only a path (or segment) with one of these can hold an identifier (a cheap pre-filter).
_MAYBE_ID = r"[\d@]|%40"
# Blocks of at least this many rows are templated with the whole-path regex, smaller ones
# segment by segment: setting up the large regex costs ~0.5 ms of CPU a block (a watcher's block
# of 80 lines: 5.8 -> 6.3 ms), more than it saves on a few hundred paths.
WHOLE_PATH_ROWS = 2048


def heuristic_templates(paths: pl.Expr, whole_path: bool = True) -> pl.Expr:
    """`/orders/42/items/SKU-4417` -> `/orders/{id}/items/{id}` (vectorized).

    `whole_path`: the path gets a `/` at both ends and every `/segment/` of an identifier's
    shape becomes `/{id}/`. A match takes the `/` after its segment, so of two identifiers in a
    row the second is left for a second pass. The two regex passes cost about 2/3 of splitting
    the path into segments and joining them again (measured on 500k realistic paths: ~160
    against ~240 ms of CPU), which is what happens otherwise. Both give the same templates.
    Paths without a digit or an @ skip the work.
    """
    maybe = pl.when(paths.str.contains(_MAYBE_ID)).then(paths)
    if not whole_path:
        templated = maybe.str.split("/").list.eval(_segment_template(pl.element()))
        return pl.coalesce(templated.list.join("/"), paths)
    framed = pl.concat_str(pl.lit("/"), maybe, pl.lit("/"))
    done = framed.str.replace_all(_SEGMENT_ID, "/" + ID + "/").str.replace_all(
        _SEGMENT_ID, "/" + ID + "/"
    )
    return pl.coalesce(done.str.strip_prefix("/").str.strip_suffix("/"), paths)


def _segment_template(seg: pl.Expr) -> pl.Expr:
    # The shape regex runs only on segments that pass the pre-filter (the others are null).
    maybe = pl.when(seg.str.contains(_MAYBE_ID)).then(seg)
    return pl.when(maybe.str.contains(_ID_RE)).then(pl.lit(ID)).otherwise(seg)


# -- OpenAPI -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenApiRoute:
    template: str
    pattern: str  # anchored regex over the path
    literal_segments: int


def _route(template: str, base: str) -> OpenApiRoute:
    full = (base.rstrip("/") + "/" + template.lstrip("/")) if base else template
    parts = [p for p in full.split("/")]
    regex_parts = []
    literal = 0
    for part in parts:
        if re.fullmatch(r"\{[^}]+\}", part):
            regex_parts.append(r"[^/]+")
        else:
            literal += 1
            pieces = re.split(r"(\{[^}]+\})", part)
            regex_parts.append("".join("[^/]+" if p.startswith("{") else re.escape(p)
                                       for p in pieces))  # fmt: skip
    return OpenApiRoute(full, "^" + "/".join(regex_parts) + "/?$", literal)


def load_openapi(path: Path) -> list[OpenApiRoute]:
    """Path templates of an OpenAPI 3 (or Swagger 2) spec, JSON or YAML, most literal first."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read OpenAPI spec {path}: {exc.strerror}") from exc
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except Exception as exc:  # json/yaml raise several types; one sentence for all
        raise ConfigError(f"OpenAPI spec {path} is not valid JSON/YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict) or not doc["paths"]:
        raise ConfigError(f"OpenAPI spec {path} has no `paths` object")
    bases: set[str] = {""}
    for server in doc.get("servers") or []:
        url = str(server.get("url", "")) if isinstance(server, dict) else ""
        base = re.sub(r"^[a-z]+://[^/]*", "", url).rstrip("/")
        if base and "{" not in base:
            bases.add(base)
    if isinstance(doc.get("basePath"), str):
        bases.add(doc["basePath"].rstrip("/"))
    routes = [_route(str(t), b) for t in doc["paths"] for b in sorted(bases)]
    routes.sort(key=lambda r: (-r.literal_segments, -len(r.template)))
    return routes


def openapi_templates(paths: pl.Expr, routes: Sequence[OpenApiRoute]) -> pl.Expr:
    """The first (most literal) matching route's template, else null."""
    expr: pl.Expr = pl.lit(None, pl.String)
    for route in reversed(routes):
        expr = (
            pl.when(paths.str.contains(route.pattern)).then(pl.lit(route.template)).otherwise(expr)
        )
    return expr


# -- folding of high-cardinality positions ---------------------------------------------------


@dataclass(frozen=True)
class Fold:
    prefix: str  # templated segments before the position, e.g. `/users`
    position: int  # index in `endpoint.split("/")`

    @property
    def pattern(self) -> str:
        """Regex (RE2 and Rust alike) matching the prefix and the folded segment; group 1 is
        what follows the segment. Used on frames and in SQL over stored rows."""
        return "^" + re.escape(self.prefix) + r"/[^/]+(/|$)"


def learn_folds(endpoints: pl.Series, threshold: int, known: Iterable[Fold]) -> list[Fold]:
    """Positions where one prefix is followed by >= threshold distinct literal values.

    Position 1 (the first segment) is never folded: a scan of random root paths must not turn
    `/health` into `/{id}`.
    """
    if endpoints.len() < threshold:  # fewer values than the threshold: nothing to learn
        return []
    known_set = set(known)
    unique = endpoints.drop_nulls().unique()
    if unique.len() < threshold:
        return []
    frame = pl.DataFrame({"endpoint": unique}).with_columns(
        pl.col("endpoint").str.split("/").alias("segs")
    )
    exploded = (
        frame.with_columns(pl.int_ranges(2, pl.col("segs").list.len()).alias("pos"))
        .explode("pos")
        .drop_nulls("pos")
        .with_columns(
            pl.col("segs").list.get(pl.col("pos")).alias("value"),
            pl.col("segs").list.head(pl.col("pos")).list.join("/").alias("prefix"),
        )
    )
    counts = (
        exploded.filter(pl.col("value") != ID)
        .group_by("prefix", "pos")
        .agg(pl.col("value").n_unique().alias("n"))
        .filter(pl.col("n") >= threshold)
    )
    found = [Fold(str(p), int(k)) for p, k in counts.select("prefix", "pos").iter_rows()]
    return [f for f in found if f not in known_set]


def apply_folds(endpoints: pl.Expr, folds: Sequence[Fold]) -> pl.Expr:
    out = endpoints
    for fold in folds:
        depth = fold.prefix.count("/") + 1
        if depth != fold.position:
            continue
        out = out.str.replace(fold.pattern, fold.prefix.replace("$", "$$") + "/" + ID + "$1")
    return out


def template(
    paths: pl.Expr,
    routes_in_log: pl.Expr,
    openapi: Sequence[OpenApiRoute],
    folds: Sequence[Fold],
    whole_path: bool = True,
) -> pl.Expr:
    """The endpoint of each request: OpenAPI > the log's own route > identifier heuristics
    (`whole_path`: see `heuristic_templates`)."""
    heuristic = apply_folds(heuristic_templates(paths, whole_path), folds)
    parts = [openapi_templates(paths, openapi)] if openapi else []
    parts += [routes_in_log, heuristic]
    return pl.coalesce(parts)
