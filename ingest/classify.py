"""Explain 409s: the cause rules of SPEC section 5, computed set-wise in DuckDB.

Rules look only backwards in time (at most `window` seconds), so a request at time t can change
only 409s in [t, t + window]. After each batch, every 409 in [batch's earliest ts, its latest ts +
window] is classified again from all stored requests (all files). That makes the causes independent
of ingest order and batching: a race's winner that arrives late from another node re-labels the
loser in the same transaction that stores it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from ingest.causes import Cause
from ingest.settings import ClassifySettings

# Keywords that must start a word (SPEC: `lock`; `locked` too, or "blocked" would match it).
WORD_START = ("lock", "locked")

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
RACE_LOSER_METHODS = ("PUT", "PATCH", "DELETE")


def keyword_pattern(words: tuple[str, ...]) -> str:
    """One RE2 alternation capturing the matched keyword; word-start keywords get `\\b`."""
    parts = []
    for word in sorted(words, key=len, reverse=True):
        escaped = re.escape(word.lower())
        parts.append(rf"\b{escaped}" if word.lower() in WORD_START else escaped)
    return "(" + "|".join(parts) + ")" if parts else "($^)"


@dataclass(frozen=True)
class Rules:
    """The SQL pieces derived from the [classify] settings."""

    retry_us: int
    race_us: int
    verbs: tuple[str, ...]
    patterns: tuple[tuple[str, str], ...]  # (cause, regex) in rule order

    @classmethod
    def from_settings(cls, s: ClassifySettings) -> Rules:
        return cls(
            retry_us=round(s.retry_window_s * 1e6),
            race_us=round(s.race_window_s * 1e6),
            verbs=tuple(v.lower() for v in s.action_verbs),
            patterns=tuple((cause, keyword_pattern(words)) for cause, words in s.keywords),
        )

    @property
    def window(self) -> timedelta:
        return timedelta(microseconds=max(self.retry_us, self.race_us))


_FMT_TS = (
    "(CASE WHEN microsecond({t}) % 1000000 = 0 THEN strftime({t}, '%H:%M:%S')"
    " ELSE strftime({t}, '%H:%M:%S.%g') END || 'Z')"
)


def _ts(col: str) -> str:
    return _FMT_TS.format(t=col)


def _secs(delta_us: str) -> str:
    return f"CAST(round(({delta_us}) / 1e6, 3) AS VARCHAR)"


def _classify_sql(rules: Rules) -> str:
    message_whens = []
    for i, (cause, _pattern) in enumerate(rules.patterns):
        message_whens.append(
            f"WHEN c.msg IS NOT NULL AND regexp_matches(lower(c.msg), $kw{i}) THEN '{cause}'"
        )
    message_evidence = []
    for i, (cause, _pattern) in enumerate(rules.patterns):
        message_evidence.append(
            f"WHEN '{cause}' THEN printf('the error message says \"%s\" (matched \"%s\")',"
            f" left(msg, 200), regexp_extract(lower(msg), $kw{i}, 1))"
        )
    win = "w"
    return f"""
WITH c AS (
    SELECT *, nullif(nullif(trim(message), ''), '-') AS msg,
           lower(regexp_extract(path, '([^/]+)/*$', 1)) AS last_segment
    FROM requests WHERE status = 409 AND ts BETWEEN $lo AND $hi
),
ok AS (
    SELECT ts, file, line, client_ip, user_agent, method, path, status FROM requests
    WHERE status BETWEEN 200 AND 299
      AND ts BETWEEN $lo - to_microseconds($window_us) AND $hi
      AND path IN (SELECT path FROM c)
),
-- Both joins also match on a time bucket of the window's width (a candidate lies in the 409's
-- bucket or the one before), so a hot path with thousands of writes does not make the join
-- quadratic: each 409 meets only the requests of its last two windows.
retry AS (
    SELECT c.file, c.line, c.ts,
           max_by(struct_pack(ts := o.ts, file := o.file, line := o.line, status := o.status),
                  (o.ts, o.file, o.line)) AS {win}
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
                  (o.ts, o.file, o.line)) AS {win}
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
    SELECT c.*, rt.w AS retry_w, rc.w AS race_w,
        CASE
            WHEN c.upstream_status IS NOT NULL AND c.upstream_status <> 409 THEN 'gateway_conflict'
            WHEN rt.w IS NOT NULL THEN 'retry_after_success'
            WHEN rc.w IS NOT NULL THEN 'concurrent_update'
            {" ".join(message_whens)}
            WHEN c.method = 'POST' AND list_contains($verbs, c.last_segment) THEN 'state_conflict'
            WHEN c.method = 'POST' THEN 'duplicate_create'
            WHEN c.method IN ('PUT', 'PATCH') THEN 'version_mismatch'
            WHEN c.method = 'DELETE' THEN 'state_conflict'
            ELSE 'unknown'
        END AS cause,
        CASE
            WHEN c.upstream_status IS NOT NULL AND c.upstream_status <> 409 THEN 1
            WHEN rt.w IS NOT NULL THEN 2
            WHEN rc.w IS NOT NULL THEN 3
            WHEN c.msg IS NOT NULL AND ({
        " OR ".join(f"regexp_matches(lower(c.msg), $kw{i})" for i in range(len(rules.patterns)))
        or "false"
    }) THEN 4
            WHEN c.method = 'POST' AND list_contains($verbs, c.last_segment) THEN 5
            ELSE 6
        END AS rule
    FROM c
    LEFT JOIN retry rt ON rt.file = c.file AND rt.line = c.line AND rt.ts = c.ts
    LEFT JOIN race rc ON rc.file = c.file AND rc.line = c.line AND rc.ts = c.ts
)
SELECT ts, file, line, format, host, client_ip, user_agent, method, path, query, endpoint,
       status, upstream_status, bytes, duration_ms, request_id, message, cause,
       CASE rule
        WHEN 1 THEN printf('the gateway answered 409 but the upstream returned %d: the conflict'
                           || ' came from the gateway, not the service', upstream_status)
        WHEN 2 THEN printf('retry of a request that already succeeded: the same client %s got %d'
                           || ' for %s %s at %s, %s s earlier (%s:%d)',
                           client_ip, retry_w.status, method, path, {_ts("retry_w.ts")},
                           {_secs("epoch_us(ts) - epoch_us(retry_w.ts)")},
                           regexp_extract(retry_w.file, '[^/]+$'), retry_w.line)
        WHEN 3 THEN printf('lost a race: %s %s %s got %d at %s, %s s earlier (%s:%d)',
                           coalesce(race_w.ip, 'another client'), race_w.method, path,
                           race_w.status, {_ts("race_w.ts")},
                           {_secs("epoch_us(ts) - epoch_us(race_w.ts)")},
                           regexp_extract(race_w.file, '[^/]+$'), race_w.line)
        WHEN 4 THEN CASE cause {" ".join(message_evidence)} END
        WHEN 5 THEN printf('POST to the action `%s`, no error text and no earlier request in the'
                           || ' windows: the resource''s state did not allow the action',
                           last_segment)
        ELSE CASE cause
            WHEN 'duplicate_create' THEN 'POST with no error text and no earlier success from'
                 || ' this client in ' || $retry_s || ' s: a create that collided with an'
                 || ' existing resource'
            WHEN 'version_mismatch' THEN printf('%s with no other client''s write to %s in the'
                 || ' last %s s and no error text: a stale write', method, path, $race_s)
            WHEN 'state_conflict' THEN 'DELETE with no race and no error text: the resource''s'
                 || ' state does not allow deletion'
            ELSE printf('no rule matched: %s with no upstream status, no error text and no'
                        || ' competing request in the windows', coalesce(method, 'a request'))
        END
       END AS evidence
FROM labelled
"""


class Classifier:
    """Re-explains the 409s of a time range; run inside the batch's transaction."""

    def __init__(self, settings: ClassifySettings) -> None:
        self.rules = Rules.from_settings(settings)
        self.sql = _classify_sql(self.rules)

    @property
    def window(self) -> timedelta:
        return self.rules.window

    def params(self, lo: datetime, hi: datetime) -> dict[str, object]:
        p: dict[str, object] = {
            "lo": lo,
            "hi": hi,
            "window_us": max(self.rules.retry_us, self.rules.race_us),
            "retry_us": self.rules.retry_us,
            "race_us": self.rules.race_us,
            # Bucket widths: the window itself (at least 1 µs, for a window of 0).
            "retry_b": max(self.rules.retry_us, 1),
            "race_b": max(self.rules.race_us, 1),
            "retry_s": f"{self.rules.retry_us / 1e6:g}",
            "race_s": f"{self.rules.race_us / 1e6:g}",
            "verbs": list(self.rules.verbs),
        }
        for i, (_cause, pattern) in enumerate(self.rules.patterns):
            p[f"kw{i}"] = pattern
        return p

    def classify_range(self, con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> None:
        """Replace the causes of every 409 with lo <= ts <= hi + window."""
        hi = hi + self.window
        con.execute("DELETE FROM conflicts WHERE ts BETWEEN $lo AND $hi", {"lo": lo, "hi": hi})
        con.execute("INSERT INTO conflicts " + self.sql, self.params(lo, hi))
        # Re-aggregate the whole minutes touched, from every conflict stored in them.
        bounds = {"lo": lo, "hi": hi}
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

    def mark_pending(self, con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> None:
        """Record, in the batch's transaction, that [lo, hi] still needs classifying."""
        con.execute("INSERT INTO classify_pending VALUES (?, ?)", [lo, hi])

    def classify_pending(self, con: duckdb.DuckDBPyConnection) -> int:
        """Classify every recorded range (merged where they overlap) and clear them, in one
        transaction of `con`; returns how many ranges were cleared."""
        con.execute("BEGIN TRANSACTION")
        try:
            rows = con.execute("SELECT lo, hi FROM classify_pending ORDER BY lo").fetchall()
            merged: list[list[datetime]] = []
            for lo, hi in rows:
                if merged and lo <= merged[-1][1] + self.window:
                    merged[-1][1] = max(merged[-1][1], hi)
                else:
                    merged.append([lo, hi])
            for lo, hi in merged:
                self.classify_range(con, lo, hi)
            con.execute("DELETE FROM classify_pending")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return len(rows)

    def classify_all(self, con: duckdb.DuckDBPyConnection) -> None:
        row = con.execute("SELECT min(ts), max(ts) FROM requests WHERE status = 409").fetchone()
        con.execute("DELETE FROM conflicts")
        con.execute("DELETE FROM conflict_minutes")
        if row and row[0] is not None:
            self.classify_range(con, row[0], row[1])


def cause_names() -> list[str]:
    return [c.value for c in Cause]
