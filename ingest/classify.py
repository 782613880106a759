"""Explain 409 requests: the cause rules of SPEC section 5, computed set-wise in DuckDB.

A request is all the lines its tiers wrote (`ingest.tiers`); it is explained from all of them and
stored once, as its client-facing line, in `conflicts`. The rules (`ingest.rules`) look only
backwards in time (at most `window` seconds), so a line at time t can change only 409s in
[t, t + window], plus the requests whose lines it joins or leaves. After each batch those 409s
are explained again from all stored lines (all files), in the batch's transaction: causes do not
depend on ingest order or batching, and a race winner or a service line that arrives late, from
another host, re-explains the request in the same transaction that stores it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from conflictradar.ingest import pending
from conflictradar.ingest.causes import Cause
from conflictradar.ingest.rules import select_sql, without_texts
from conflictradar.ingest.settings import ClassifySettings
from conflictradar.ingest.texts import Matcher, keyword_pattern
from conflictradar.ingest.tiers import ANY_SQL, Tiers, tier_sql
from conflictradar.ingest.timestamps import later

__all__ = ["Classifier", "Rules", "cause_names", "keyword_pattern"]

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
RACE_LOSER_METHODS = ("PUT", "PATCH", "DELETE")

CONFLICT_COLUMNS = (
    "ts, file, line, format, host, client_ip, user_agent, method, path, query, endpoint, status,"
    " upstream_status, bytes, duration_ms, request_id, message, cause, evidence, confidence, lines"
)


@dataclass(frozen=True)
class Rules:
    """The SQL pieces derived from the [classify] settings."""

    retry_us: int
    race_us: int
    verbs: tuple[str, ...]
    matcher: Matcher
    tiers: Tiers

    @classmethod
    def from_settings(cls, s: ClassifySettings) -> Rules:
        return cls(
            retry_us=round(s.retry_window_s * 1e6),
            race_us=round(s.race_window_s * 1e6),
            verbs=tuple(v.lower() for v in s.action_verbs),
            matcher=Matcher.build(s.keywords, s.catalogue),
            tiers=Tiers(round(s.join_window_s * 1e6), s.service_formats),
        )

    @property
    def window(self) -> timedelta:
        return timedelta(microseconds=max(self.retry_us, self.race_us))


# The path's last segment, for the action-verb rule (`/orders/7/cancel/` -> `cancel`).
LAST_SEGMENT = "lower(regexp_extract(r.path, '([^/]+)/*$', 1))"


def _msg(col: str) -> str:
    return f"nullif(nullif(trim({col}), ''), '-')"


NO_RANK = 1_000_000  # an unrecognised text ranks after every pattern


def _text_struct(line: str, match: str) -> str:
    """A text with where it was written and what it matched (`etext` in ingest.rules)."""
    return (
        f"struct_pack(msg := {line}.msg, file := {line}.file, line := {line}.line,"
        f" tier := {line}.tier, cause := {match}.cause, label := {match}.label,"
        f" keyword := {match}.keyword, rank := {match}.rank)"
    )


# What `per_request` gives a 409 with no joined line, typed as it types them (the variant of the
# query for ranges without links uses it instead of computing an empty per_request).
_NO_MEMBERS = (
    "(SELECT NULL::VARCHAR[] AS more_lines,"
    " NULL::STRUCT(file VARCHAR, line BIGINT, status SMALLINT, tier VARCHAR) AS other,"
    " NULL::STRUCT(msg VARCHAR, file VARCHAR, line BIGINT, tier VARCHAR, cause VARCHAR,"
    " label VARCHAR, keyword VARCHAR, rank INTEGER) AS text)"
)


def _classify_sql(rules: Rules, linked: bool = True, texts: bool = True) -> str:
    """The classification query. `linked=False`: the same query for a range where
    `request_links` holds no row (no line joined under another, the common case of logs without
    request ids): the anti-joins with the links and the members' aggregation, which remove
    nothing and find nothing there, are left out; DuckDB plans it ~20% faster (measured).
    `texts=False` as well: for a range without links where no line within reach has an error
    text (access logs): no text to match or quote, so no text columns and only the rules that
    can hold without one (`rules.without_texts`); planned in ~12 ms against ~19 (measured), which
    is most of what a live watcher's look costs."""
    sql = _linked_sql(rules)
    if linked:
        return sql
    sql = _replace_once(sql, {
        _ANTI_C: "",
        _ANTI_OK: "",
        sql[sql.index("members AS (") : sql.index("ok AS (")]: "",
        _PER_REQUEST_JOIN: f"    CROSS JOIN {_NO_MEMBERS} p\n",
    })  # fmt: skip
    if not texts:
        sql = _replace_once(sql, {
            sql[sql.index("WITH c AS (") : sql.index("ok AS (")]: _PLAIN_C,
            sql[sql.index("labelled AS (") :]: _PLAIN_LABELLED
            + f"SELECT {CONFLICT_COLUMNS} FROM ({select_sql(without_texts())})\n",
        })  # fmt: skip
    return sql


def _replace_once(sql: str, replacements: dict[str, str]) -> str:
    """`sql` with each key, found exactly once, replaced by its value."""
    for old, new in replacements.items():
        assert sql.count(old) == 1, old
        sql = sql.replace(old, new)
    return sql


_PLAIN_C = f"""WITH c AS (
    SELECT r.*, {LAST_SEGMENT} AS last_segment
    FROM requests r
    WHERE r.status = 409 AND r.ts BETWEEN $lo AND $hi
),
"""
_PLAIN_LABELLED = """labelled AS (
    SELECT c.*, [c.file || ':' || c.line] AS lines, rt.w AS retry_w, rc.w AS race_w
    FROM c
    LEFT JOIN retry rt ON rt.file = c.file AND rt.line = c.line AND rt.ts = c.ts
    LEFT JOIN race rc ON rc.file = c.file AND rc.line = c.line AND rc.ts = c.ts
)
"""
_ANTI_C = """    ANTI JOIN (SELECT file, line, ts FROM request_links WHERE ts BETWEEN $lo AND $hi) l
      ON l.file = r.file AND l.line = r.line AND l.ts = r.ts
"""
_ANTI_OK = """    ANTI JOIN (SELECT file, line, ts FROM request_links
               WHERE ts BETWEEN $lo - to_microseconds($window_us) AND $hi) l
      ON l.file = r.file AND l.line = r.line AND l.ts = r.ts
"""
# The members of the 409 heads only (see `members`); without it the query gives the same rows
# with several times the memory and time on a fleet.
HEADS_ONLY = (
    "    SEMI JOIN c ON c.file = l.head_file AND c.line = l.head_line AND c.ts = l.head_ts\n"
)
_PER_REQUEST_JOIN = (
    "    LEFT JOIN per_request p ON p.head_file = c.file AND p.head_line = c.line"
    " AND p.head_ts = c.ts\n"
)


def _linked_sql(rules: Rules) -> str:
    join = "to_microseconds($join_us)"
    return f"""
WITH c AS (
    -- 409s in range that are their request's client-facing line (not joined under another)
    SELECT r.*, {_msg("r.message")} AS msg, {tier_sql("r.format")} AS tier,
           {LAST_SEGMENT} AS last_segment
    FROM requests r
{_ANTI_C}    WHERE r.status = 409 AND r.ts BETWEEN $lo AND $hi
),
members AS (
    -- the other lines of those requests (a service line under its gateway's); only the 409
    -- heads' (labelled reads no other): on a fleet most heads in range are successes, and
    -- aggregating their members was half the query (measured: 24 of 47 ms in a 6,400-line look)
    SELECT l.head_file, l.head_line, l.head_ts, r.file, r.line, r.ts, r.status,
           {_msg("r.message")} AS msg, {tier_sql("r.format")} AS tier
    FROM request_links l
{HEADS_ONLY}    JOIN requests r ON r.file = l.file AND r.line = l.line AND r.ts = l.ts
    WHERE l.head_ts BETWEEN $lo AND $hi AND r.ts BETWEEN $lo - {join} AND $hi + {join}
),
-- Aggregated over the joined lines only: most 409s have none, and pay nothing here.
per_request AS (
    SELECT a.head_file, a.head_line, a.head_ts,
           list(a.file || ':' || a.line ORDER BY a.ts, a.file, a.line) AS more_lines,
           min_by(struct_pack(file := a.file, line := a.line, status := a.status, tier := a.tier),
                  (a.ts, a.file, a.line)) FILTER (WHERE a.status <> 409) AS other,
           min_by({_text_struct("a", "m")}, (coalesce(m.rank, {NO_RANK}), a.ts, a.file, a.line))
               FILTER (WHERE a.msg IS NOT NULL) AS text
    FROM members a LEFT JOIN text_matches m ON m.msg = a.msg
    GROUP BY a.head_file, a.head_line, a.head_ts
),
ok AS (
    -- successes that are their request's client-facing line: the candidates for retries/races
    SELECT r.ts, r.file, r.line, r.client_ip, r.user_agent, r.method, r.path, r.status
    FROM requests r
{_ANTI_OK}    WHERE r.status BETWEEN 200 AND 299
      AND r.ts BETWEEN $lo - to_microseconds($window_us) AND $hi
      -- on a 409's path, in its window's bucket or the one before (see the joins below): only
      -- those can be a retry's or a race's earlier request (measured on 2M realistic lines:
      -- 499k candidates -> 253k, the query 0.33 -> 0.26 s)
      AND (r.path, epoch_us(r.ts) // $window_b) IN (
          SELECT DISTINCT path, unnest([epoch_us(ts) // $window_b, epoch_us(ts) // $window_b - 1])
          FROM c)
),
-- Both joins also match on a time bucket of the window's width (a candidate lies in the 409's
-- bucket or the one before), so a hot path with thousands of writes does not make the join
-- quadratic: each 409 meets only the requests of its last two windows.
retry AS (
    SELECT c.file, c.line, c.ts,
           max_by(struct_pack(ts := o.ts, file := o.file, line := o.line, status := o.status),
                  (o.ts, o.file, o.line)) AS w
    FROM (SELECT *, unnest([epoch_us(ts) // $retry_b, epoch_us(ts) // $retry_b - 1]) AS bucket
          FROM c) c
    JOIN (SELECT *, epoch_us(ts) // $retry_b AS bucket FROM ok) o
      ON o.bucket = c.bucket AND o.path = c.path AND o.method = c.method
     AND o.client_ip = c.client_ip AND o.user_agent IS NOT DISTINCT FROM c.user_agent
     AND o.ts BETWEEN c.ts - to_microseconds($retry_us) AND c.ts
    GROUP BY c.file, c.line, c.ts
),
race AS (
    SELECT c.file, c.line, c.ts,
           max_by(struct_pack(ts := o.ts, file := o.file, line := o.line, status := o.status,
                              ip := o.client_ip, method := o.method),
                  (o.ts, o.file, o.line)) AS w
    FROM (SELECT *, unnest([epoch_us(ts) // $race_b, epoch_us(ts) // $race_b - 1]) AS bucket
          FROM c WHERE method IN {RACE_LOSER_METHODS}) c
    JOIN (SELECT *, epoch_us(ts) // $race_b AS bucket FROM ok
          WHERE method IN {WRITE_METHODS}) o
      ON o.bucket = c.bucket AND o.path = c.path
     AND NOT coalesce(o.client_ip = c.client_ip
                      AND o.user_agent IS NOT DISTINCT FROM c.user_agent, false)
     AND o.ts BETWEEN c.ts - to_microseconds($race_us) AND c.ts
    GROUP BY c.file, c.line, c.ts
),
labelled AS (
    SELECT c.*, [c.file || ':' || c.line] || coalesce(p.more_lines, []) AS lines, p.other,
           -- the request's deciding text: the best-ranked one, the service's on a tie
           CASE WHEN c.msg IS NULL
                  OR coalesce(p.text.rank, {NO_RANK}) <= coalesce(cm.rank, {NO_RANK})
                     AND p.text IS NOT NULL
                THEN p.text ELSE {_text_struct("c", "cm")} END AS etext,
           rt.w AS retry_w, rc.w AS race_w
    FROM c
    LEFT JOIN text_matches cm ON cm.msg = c.msg
{_PER_REQUEST_JOIN}    LEFT JOIN retry rt ON rt.file = c.file AND rt.line = c.line AND rt.ts = c.ts
    LEFT JOIN race rc ON rc.file = c.file AND rc.line = c.line AND rc.ts = c.ts
)
SELECT {CONFLICT_COLUMNS} FROM ({select_sql()})
"""


# The texts a range's requests can be explained by: every line's, the joined lines' too.
TEXTS_SQL = f"""
SELECT {_msg("message")} AS msg FROM requests
WHERE ts BETWEEN $lo - to_microseconds($join_us) AND $hi + to_microseconds($join_us)
  AND {_msg("message")} IS NOT NULL
"""


@dataclass(frozen=True)
class Holds:
    """What a range's 409s are explained from (`Classifier._range_holds`)."""

    lo: datetime
    hi: datetime  # the batch's last time + the window: the 409s it can change end there
    conflicts: bool  # a 409 line, or an explained 409, lies in [lo, hi]
    linked: bool  # the query can meet a link
    texts: bool  # the query can meet an error text
    relink: bool  # the batch can change which lines form a request


def _used(sql: str, params: dict[str, object]) -> dict[str, object]:
    """The parameters `sql` names (DuckDB refuses unused named parameters)."""
    names = set(re.findall(r"\$([a-z_][a-z0-9_]*)", sql))
    return {k: v for k, v in params.items() if k in names}


class Classifier:
    """Re-explains the 409 requests of a time range; run inside the batch's transaction."""

    def __init__(self, settings: ClassifySettings) -> None:
        self.rules = Rules.from_settings(settings)
        self.sql = _classify_sql(self.rules)
        self.sql_unlinked = _classify_sql(self.rules, linked=False)
        self.sql_plain = _classify_sql(self.rules, linked=False, texts=False)

    @property
    def window(self) -> timedelta:
        return self.rules.window

    @property
    def window_us(self) -> int:
        return max(self.rules.retry_us, self.rules.race_us)

    def params(self, lo: datetime, hi: datetime, sql: str | None = None) -> dict[str, object]:
        """The parameters of `sql` (default: the classification query) for [lo, hi]."""
        p: dict[str, object] = {
            "lo": lo,
            "hi": hi,
            "window_us": self.window_us,
            "retry_us": self.rules.retry_us,
            "race_us": self.rules.race_us,
            # Bucket widths: the window itself (at least 1 µs, for a window of 0).
            "window_b": max(self.window_us, 1),
            "retry_b": max(self.rules.retry_us, 1),
            "race_b": max(self.rules.race_us, 1),
            "retry_s": f"{self.rules.retry_us / 1e6:g}",
            "race_s": f"{self.rules.race_us / 1e6:g}",
            "verbs": list(self.rules.verbs),
            **self.rules.tiers.params(),
        }
        return _used(self.sql if sql is None else sql, p)

    def classify_range(self, con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> None:
        """Join the lines of [lo, hi] into requests, then replace the causes of every 409
        request from lo to hi + window, widened to the requests whose lines changed."""
        holds = self._range_holds(con, lo, hi)
        if holds.relink:
            changed = self.rules.tiers.relink(con, lo, hi, checked=True)
            if changed is not None:  # links changed: what the range holds is read again
                holds = self._range_holds(con, min(lo, changed[0]), max(hi, changed[1]))
        if not holds.conflicts:
            return  # no 409 to explain and none explained here: nothing can change
        lo, hi = holds.lo, holds.hi
        bounds: dict[str, object] = {"lo": lo, "hi": hi}
        if holds.texts:  # else no text the query can meet: nothing to match
            self.rules.matcher.remember(con, TEXTS_SQL, _used(TEXTS_SQL, self.params(lo, hi)))
        con.execute("DELETE FROM conflicts WHERE ts BETWEEN $lo AND $hi", bounds)
        sql = self.sql if holds.linked else self.sql_unlinked if holds.texts else self.sql_plain
        con.execute(f"INSERT INTO conflicts ({CONFLICT_COLUMNS}) " + sql, self.params(lo, hi, sql))
        # Re-aggregate the whole minutes touched, from every conflict stored in them.
        con.execute(
            "DELETE FROM conflict_minutes WHERE minute >= date_trunc('minute', $lo::TIMESTAMPTZ)"
            " AND minute <= date_trunc('minute', $hi::TIMESTAMPTZ)",
            bounds,
        )
        con.execute(
            "INSERT INTO conflict_minutes SELECT date_trunc('minute', ts), file, host, endpoint,"
            " method, cause, count(*) FROM conflicts"
            " WHERE ts >= date_trunc('minute', $lo::TIMESTAMPTZ)"
            " AND ts < date_trunc('minute', $hi::TIMESTAMPTZ) + INTERVAL 1 MINUTE GROUP BY ALL",
            bounds,
        )

    def _range_holds(self, con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> Holds:
        """What the 409s of a batch of times [lo, hi] are explained from, in one query (a look
        of the live watcher runs it on every append): the range to explain, [lo, hi + window];
        whether it holds a 409 line or an explained 409; whether the query for it can meet a
        link and an error text; and whether the batch can change which lines form a request
        (`Tiers.relink` must run first, and this be asked again).

        Without a 409, explaining the range again deletes nothing, inserts nothing and
        re-counts minutes unchanged: a batch of successes after the latest 409s' windows skips
        the classification query. Without a link among the lines the query reads (from lo -
        window) or heads in range, the query without links gives the same rows. Without a text
        among the lines it can join (TEXTS_SQL), there is no text to match first."""
        end = later(hi, self.window)
        row = con.execute(
            "SELECT EXISTS (SELECT 1 FROM requests WHERE status = 409 AND ts BETWEEN $lo AND $hi)"
            " OR EXISTS (SELECT 1 FROM conflicts WHERE ts BETWEEN $lo AND $hi),"
            " EXISTS (SELECT 1 FROM request_links"
            " WHERE ts BETWEEN $lo - to_microseconds($window_us) AND $hi"
            " OR head_ts BETWEEN $lo AND $hi),"
            f" EXISTS ({TEXTS_SQL}), ({ANY_SQL})",
            {"lo": lo, "hi": end, "window_us": self.window_us,
             "join_us": self.rules.tiers.join_us} | self.rules.tiers.reach(lo, hi),
        ).fetchone()  # fmt: skip
        if row is None:
            return Holds(lo, end, True, True, True, True)
        return Holds(lo, end, *(bool(v) for v in row))

    def mark_pending(self, con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> None:
        """Record, in the batch's transaction, that [lo, hi] still needs classifying."""
        con.execute("INSERT INTO classify_pending VALUES (?, ?)", [lo, hi])

    def classify_pending(self, con: duckdb.DuckDBPyConnection) -> int:
        """Classify every recorded range (merged where they overlap or lie within reach) and
        clear them; a range that fails for a reason tied to its rows is quarantined
        (ingest.pending). Returns how many merged ranges there were."""
        reach = self.window + 2 * self.rules.tiers.window
        return pending.classify_pending(con, self.classify_range, self.window, reach)

    def classify_all(self, con: duckdb.DuckDBPyConnection) -> None:
        row = con.execute("SELECT min(ts), max(ts) FROM requests").fetchone()
        con.execute("DELETE FROM conflicts")
        con.execute("DELETE FROM conflict_minutes")
        if row and row[0] is not None:
            self.classify_range(con, row[0], row[1])


def cause_names() -> list[str]:
    return [c.value for c in Cause]
