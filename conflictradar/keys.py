"""Settings definitions -> words: what every `conflictradar.toml` key means, and its value.

The loaders (`ingest.settings`, `alerts.config`) decide which keys exist and validate them; this
catalogue says what each one is for and reads its resolved value from the settings objects, so
the reference (`docs/configuration.md`) shows defaults taken from the code and `config check`
prints the effective value of every key. `conflictradar.configdoc` checks the catalogue against
the keys the loaders accept; a key added to a loader without an entry here fails the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from conflictradar.alerts.channels import Channel
from conflictradar.alerts.config import AlertConfig
from conflictradar.alerts.rules import Rule
from conflictradar.ingest.mappings import FieldMapping
from conflictradar.ingest.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class Key(Generic[T]):
    """One key: its table and name, its kind of value, what it does, and how to read it."""

    table: str  # "classify", "alerts", "alerts.channels.NAME", "alerts.rules"
    name: str
    kind: str  # duration | integer | number | string | boolean | list | table | path | size | share
    doc: str
    value: Callable[[T], Any] | None = None  # None: no default (required, or per-entry)

    @property
    def path(self) -> str:
        return f"{self.table}.{self.name}"


def mb(n: int) -> int:
    return n >> 20


SETTINGS_KEYS: tuple[Key[Settings], ...] = (
    Key("ingest", "timezone", "string",
        "IANA zone of timestamps written without an offset (HAProxy's accept date without a syslog "
        "offset, ISO times without `Z`/`+hh:mm`, IIS local-time fields). Times that carry an offset "
        "are never moved.", lambda s: s.ingest.timezone),
    Key("ingest", "block_mb", "integer",
        "Size of the blocks a file is read and parsed in, in MiB (memory per parse worker).",
        lambda s: mb(s.ingest.block_bytes)),
    Key("ingest", "max_line_mb", "integer",
        "Longest line kept, in MiB; a longer line is cut and goes to `rejects`, never lost "
        "silently.", lambda s: mb(s.ingest.max_line_bytes)),
    Key("classify", "retry_window", "duration",
        "`retry_after_success`: the same client got a 2xx for the same method and path at most "
        "this long before the 409.", lambda s: s.classify.retry_window_s),
    Key("classify", "race_window", "duration",
        "`concurrent_update`: another client's successful write to the same path at most this "
        "long before the 409.", lambda s: s.classify.race_window_s),
    Key("classify", "settle", "duration",
        "How long a 409's context may still change (late lines from another node); it is "
        "re-explained while younger than this.", lambda s: s.classify.settle_s),
    Key("classify", "action_verbs", "list",
        "Last path segments that make a POST an action (`state_conflict`), e.g. `cancel`, "
        "`approve`. Replaces the default list.", lambda s: list(s.classify.action_verbs)),
    Key("classify", "keywords", "table",
        "Error-text keywords per cause (`version_mismatch`, `duplicate_create`, "
        "`resource_locked`, `state_conflict`): `cause = [\"word\", ...]` replaces that cause's "
        "list; causes not named keep theirs.",
        lambda s: {cause: list(words) for cause, words in s.classify.keywords}),
    Key("classify", "join_window", "duration",
        "Lines of different tiers (a gateway's and a service's) with the same request id at most "
        "this far apart are one request: counted once, explained from all its lines.",
        lambda s: s.classify.join_window_s),
    Key("classify", "service_formats", "list",
        "Formats written by services (behind a gateway); every other format is a gateway tier. "
        "Lines join across tiers only.", lambda s: list(s.classify.service_formats)),
    Key("classify", "catalogue", "list",
        "Your own error texts, `[[classify.catalogue]]` tables of `system`, `pattern` (RE2, "
        "case-insensitive, tried on the raw and the normalised text), `cause` (one of the four "
        "text causes), optional `name`, `example`, `source`; tried before the bundled "
        "catalogue (ingest/catalogue.py).", lambda s: list(s.classify.catalogue)),
    Key("endpoints", "openapi", "path",
        "OpenAPI spec (YAML or JSON) whose paths become the endpoint templates; relative to the "
        "config file. Best source of templates.", lambda s: s.endpoints.openapi),
    Key("endpoints", "fold_threshold", "integer",
        "A path position with at least this many distinct values under one prefix is folded to "
        "`{id}`.", lambda s: s.endpoints.fold_threshold),
    Key("sql", "timeout", "duration",
        "A `conflictradar sql` / SQL page query is cancelled after this long.",
        lambda s: s.sql.timeout_s),
    Key("sql", "max_rows", "integer",
        "Rows shown on a terminal or the SQL page; `sql --output FILE` and pipes get every row.",
        lambda s: s.sql.max_rows),
    Key("sql", "memory_limit", "size",
        "DuckDB memory limit of a user query, e.g. `\"2GB\"`, `\"512MB\"`.",
        lambda s: s.sql.memory_limit),
    Key("dashboard", "host", "string",
        "Address the dashboard binds; `127.0.0.1` keeps it local. Expose it through a reverse "
        "proxy with authentication (docs/deployment.md).", lambda s: s.dashboard.host),
    Key("dashboard", "port", "integer", "Dashboard port.", lambda s: s.dashboard.port),
    Key("dashboard", "public_url", "string",
        "The dashboard's address as users reach it (behind a proxy); printed and linked from "
        "alerts.", lambda s: s.dashboard.public_url),
    Key("watch", "poll_interval", "duration",
        "How often `watch` rescans the watched places for new, renamed and deleted files even "
        "without a filesystem event. Followed files are looked at every 0.8 s (an fstat each; "
        "only the ones that grew are read).", lambda s: s.watch.poll_interval_s),
    Key("watch", "retention_days", "number",
        "Rows older than this many days are pruned while watching; `0` keeps everything.",
        lambda s: s.watch.retention_days),
    Key("watch", "threads", "integer",
        "DuckDB threads of `watch`: its batches and the reads it serves to the dashboard and "
        "`sql`. `1` costs least while following live traffic; raise it when heavy queries go "
        "through a running watcher.", lambda s: s.watch.threads),
    Key("watch", "memory_limit", "size",
        "DuckDB memory limit of `watch`, reads it serves included (they spill to disk beyond "
        "it). Small keeps the watcher's memory flat: DuckDB otherwise keeps what it wrote "
        "cached, growing with the rows ingested. A backlog too large to explain in one pass "
        "under it is explained in pieces; explaining a fleet's 409s (gateway and service "
        "lines joined) needs ~64-96MB at the least.", lambda s: s.watch.memory_limit),
    Key("watch", "cpu_budget", "share",
        "A share of one core (`\"3%\"`; `0`: none) that `watch`'s looks keep to: what a look "
        "cost the process (reading, explaining, alert evaluation), divided by the budget, is "
        "the time to the next look, from 0.8 s up to 5 s. For a sidecar held to a few percent "
        "of a core, at the price of seeing new lines later (at 100 or 1,000 lines/s of "
        "realistic traffic, `\"3%\"` means seconds: `python -m bench.watch_cost --budget 3`). "
        "The reads `watch` serves to the dashboard and `sql` do not hold the logs back.",
        lambda s: s.watch.cpu_budget),
    Key("watch", "batch_wait", "duration",
        "How long small appends may wait to be read together when nobody is reading (`0`: "
        "every look, 0.8 s apart, reads what arrived). A look that reads costs about the same "
        "for 80 lines as for 800, so below a few thousand lines/s batching saves most of the "
        "watcher's CPU. "
        "They are read at once when 1 MiB waits in one file (4 MiB in all), when they hold a "
        "burst of 409s, and when `sql`, a script or an alerts check reads through the watcher: those see every "
        "line appended up to half a second before they asked. The dashboard shows each batch "
        "as it is committed. At most 60 s.",
        lambda s: s.watch.batch_wait_s),
)  # fmt: skip

ALERT_KEYS: tuple[Key[AlertConfig], ...] = (
    Key("alerts", "channels", "table",
        "Named channels, one `[alerts.channels.NAME]` table each (below)."),
    Key("alerts", "rules", "list",
        "Alert rules, one `[[alerts.rules]]` table each (below). None configured: the default "
        "rules apply.", lambda a: [r.name for r in a.rules]),
    Key("alerts", "default_rules", "boolean",
        "Whether the default rules (a global 409 spike, a per-endpoint spike) apply when no "
        "rule is configured; `false` with no rules disables alerting.", lambda a: True),
    Key("alerts", "timeout", "duration", "Per-attempt HTTP timeout of a delivery.",
        lambda a: a.delivery.timeout_s),
    Key("alerts", "retry_initial", "duration",
        "First retry delay after a 5xx, 429 or timeout; doubles up to `retry_max`.",
        lambda a: a.delivery.retry_initial_s),
    Key("alerts", "retry_max", "duration", "Longest delay between retries.",
        lambda a: a.delivery.retry_max_s),
    Key("alerts", "max_delivery_age", "duration",
        "A delivery still failing after this long is given up (recorded in `deliveries`).",
        lambda a: a.delivery.max_age_s),
    Key("alerts", "group_wait", "duration",
        "Alerts (any rule, any scope) that start firing while an incident is open join it; the "
        "incident's one FIRING message goes out this long after it opens.",
        lambda a: a.grouping.wait_s),
    Key("alerts", "group_interval", "duration",
        "An alert that starts firing this long or more into an open incident is a new problem "
        "and is announced on its own; earlier ones join quietly (listed when it resolves).",
        lambda a: a.grouping.interval_s),
)  # fmt: skip

CHANNEL = "alerts.channels.NAME"
CHANNEL_KEYS: tuple[Key[Channel], ...] = (
    Key(CHANNEL, "type", "string", "`slack`, `webhook` or `alertmanager` (required).",
        lambda c: c.kind.value),
    Key(CHANNEL, "url_env", "string",
        "Name of the environment variable holding the URL: the Slack incoming-webhook URL, the "
        "webhook receiver's URL, or Alertmanager's base URL (required). The URL itself never "
        "appears in a file, a log or a table.", lambda c: c.url_env),
    Key(CHANNEL, "secret_env", "string",
        "webhook: environment variable holding the HMAC-SHA256 key that signs each body; "
        "alertmanager: a bearer token. Not for slack.", lambda c: c.secret_env),
    Key(CHANNEL, "dedupe", "boolean",
        "Whether the receiver drops a repeated `Idempotency-Key`: then a delivery a crash left "
        "in doubt is sent again. Always true for alertmanager; never for slack.",
        lambda c: c.dedupe),
    Key(CHANNEL, "timeout", "duration", "This channel's per-attempt timeout (default: "
        "`alerts.timeout`).", lambda c: c.timeout_s),
    Key(CHANNEL, "signature_header", "string",
        "webhook: the header carrying `sha256=<hex HMAC of the body>`.",
        lambda c: c.signature_header),
)  # fmt: skip

RULES = "alerts.rules"
RULE_KEYS: tuple[Key[Rule], ...] = (
    Key(RULES, "name", "string", "Unique rule name (required); shown in every notification.",
        lambda r: r.name),
    Key(RULES, "scope", "string", "`global` (all 409s), `endpoint` (each template) or `cause`.",
        lambda r: r.scope.value),
    Key(RULES, "detector", "string",
        "`threshold`: fires when the window's 409 count reaches `min_count`. `baseline`: also "
        "needs the 409 rate to stand out from the same scope's history.",
        lambda r: r.detector.value),
    Key(RULES, "window", "duration",
        "The long window 409s and requests are counted over (whole minutes); it counts only while "
        "the short window's rate still stands `ratio` above the baseline.", lambda r: r.window_s),
    Key(RULES, "short_window", "duration",
        "The short window (whole minutes), judged on its own history with twice `min_count`: "
        "catches a sharp spike at once and resets an alert soon after it ends.",
        lambda r: r.short_window_s),
    Key(RULES, "min_count", "integer", "No alert below this many 409s in the window.",
        lambda r: r.min_count),
    Key(RULES, "for", "duration",
        "How long the condition must hold before the alert fires (`\"0s\"`: at once).",
        lambda r: r.for_s),
    Key(RULES, "channels", "list", "Channel names to notify (default: every channel; `[]`: none).",
        lambda r: None if r.channels is None else list(r.channels)),
    Key(RULES, "history", "integer", "baseline: how many past windows form the history.",
        lambda r: r.history),
    Key(RULES, "history_step", "duration",
        "baseline: distance between history windows (default: one window; `\"1d\"` compares "
        "with the same time on previous days).", lambda r: r.history_step_s),
    Key(RULES, "deviation", "number",
        "baseline: robust deviations of the 409 rate above the history's median rate that count "
        "as a spike (binomial noise for the window's requests, widened by the history's "
        "dispersion).", lambda r: r.deviation),
    Key(RULES, "ratio", "number",
        "baseline: the window's 409 rate must also be at least this many times the baseline rate.",
        lambda r: r.ratio),
    Key(RULES, "min_rise", "number",
        "baseline: ...and at least this much above it, as a rate (`0.01`: one percentage point).",
        lambda r: r.min_rise),
    Key(RULES, "min_history", "integer",
        "baseline: the rule stays silent until this many past windows exist since the data "
        "began (no page on a cold start).", lambda r: r.min_history),
    Key(RULES, "resolve_after", "duration",
        "A firing alert resolves after its condition has been false this long.",
        lambda r: r.resolve_after_s),
    Key(RULES, "repeat_interval", "duration", "A still-firing alert is re-notified this often.",
        lambda r: r.repeat_interval_s),
    Key(RULES, "flap_window", "duration", "Flap damping: the window starts are counted in.",
        lambda r: r.flap_window_s),
    Key(RULES, "flap_count", "integer",
        "Flap damping: this many starts within `flap_window` mark the alert flapping.",
        lambda r: r.flap_count),
    Key(RULES, "flap_resolve_after", "duration",
        "A flapping alert resolves only after this long without its condition.",
        lambda r: r.flap_resolve_after_s),
    Key(RULES, "severity", "string", "Label sent with the alert (`warning`, `critical`, ...).",
        lambda r: r.severity),
    Key(RULES, "top", "integer", "How many causes, resources and endpoints a message lists.",
        lambda r: r.top),
)  # fmt: skip

FORMAT = "formats.NAME"
_PATH_DOC = "Key path of the {}."
FORMAT_KEYS: tuple[Key[FieldMapping], ...] = (
    Key(FORMAT, "ts", "string", "Key path of the request's time (required); see `ts_format`."),
    Key(FORMAT, "ts_format", "string",
        "How the time is written: `auto` (ISO 8601, Unix time in s/ms/us/ns, or CLF), "
        "`iso8601`, `epoch_s`, `epoch_ms`, `epoch_us`, `epoch_ns`, `clf`, or a strftime pattern "
        "(`%z` in it gives the offset, else `ingest.timezone`).", lambda m: m.ts_format),
    Key(FORMAT, "status", "string", "Key path of the HTTP status (required)."),
    Key(FORMAT, "method", "string", _PATH_DOC.format("HTTP method")),
    Key(FORMAT, "path", "string",
        "Key path of the path or the raw request target (a query string in it is split off)."),
    Key(FORMAT, "query", "string", _PATH_DOC.format("query string")),
    Key(FORMAT, "route", "string", "Key path of an endpoint template the log carries."),
    Key(FORMAT, "host", "string", _PATH_DOC.format("host")),
    Key(FORMAT, "client_ip", "string",
        "Key path of the client address (an X-Forwarded-For list gives its first address)."),
    Key(FORMAT, "user_agent", "string", _PATH_DOC.format("user agent")),
    Key(FORMAT, "upstream_status", "string", _PATH_DOC.format("upstream's status")),
    Key(FORMAT, "bytes", "string", _PATH_DOC.format("response size")),
    Key(FORMAT, "duration_ms", "string", "Key path of the duration; see `duration_unit`."),
    Key(FORMAT, "duration_unit", "string", "Unit of the duration: `ms`, `s`, `us` or `ns`.",
        lambda m: m.duration_unit),
    Key(FORMAT, "request_id", "string", _PATH_DOC.format("request id")),
    Key(FORMAT, "message", "string",
        "Key path of the error text (`err.message`): what rule 4 of the causes reads."),
)  # fmt: skip
