"""What `--help` shows below the options: examples for every command and the exit codes."""

from __future__ import annotations

# Exit codes scripts can rely on (also in docs/cli.md).
EXIT_OK = 0
EXIT_ERROR = 1  # one sentence on stderr; for `ingest`, also: a path yielded no request
EXIT_USAGE = 2
EXIT_FIRING = 3  # `alerts check`: evaluated fine, and at least one alert is firing
EXIT_INTERRUPTED = 130

EXIT_CODES = """exit codes:
  0    ok
  1    error (one sentence on stderr); `ingest`: a path yielded no request (format not
       recognised, or every line rejected)
  2    usage (unknown option, missing argument)
  3    `alerts check`: at least one alert is firing (0: none is)
  130  interrupted (Ctrl-C)"""

GLOBAL = f"""global options (--db, --config, -v) go before or after the command.

examples:
  conflictradar ingest /var/log/nginx/
  conflictradar --db /srv/cr.duckdb watch /var/log/nginx/ --metrics 127.0.0.1:9409
  conflictradar sql "SELECT endpoint, cause, count(*) FROM conflicts GROUP BY ALL"
  conflictradar config check ./conflictradar.toml

{EXIT_CODES}"""

EXAMPLES: dict[str, str] = {
    "demo": """examples:
  conflictradar demo                     # until Ctrl-C
  conflictradar demo --duration 120      # two minutes, then stop""",
    "ingest": """examples:
  conflictradar ingest /var/log/nginx/access.log*
  conflictradar ingest 'logs/**/*.jsonl.gz' --format apigw
  kubectl logs deploy/api | conflictradar ingest -
  conflictradar ingest app.log --format nginx:'$remote_addr [$time_local] "$request" $status'

exits 1 when a path yields no request: format not recognised, or every line rejected
(the rejects table says why). Ingesting the same bytes again adds nothing and exits 0.""",
    "watch": """examples:
  conflictradar watch /var/log/nginx/ /var/log/traefik/access.json
  conflictradar watch '/var/log/nginx/access.log*' --metrics 127.0.0.1:9409
  kubectl logs -f deploy/api | conflictradar watch -
  conflictradar watch /var/log/nginx/ --lake /mnt/lake --lake-host gw-a   # + sealed hours

`-` reads standard input (spooled next to the database, so a restart loses nothing that
reached the spool) and stops once standard input ends and every line is stored.""",
    "sql": """examples:
  conflictradar sql "SELECT cause, count(*) FROM conflicts GROUP BY cause"
  conflictradar sql "SELECT * FROM conflicts" --format parquet --output conflicts.parquet
  conflictradar sql - --format ndjson < query.sql | jq .evidence

sql.max_rows caps what a terminal shows; --output files and csv/json/ndjson/parquet on a
pipe get every row (the sql.timeout still applies).""",
    "dashboard": """examples:
  conflictradar dashboard
  conflictradar --db /srv/cr.duckdb dashboard --port 8600""",
    "alerts": """examples:
  conflictradar alerts test
  conflictradar alerts check; echo $?     # 3 while an alert is firing
  conflictradar alerts backtest --since 7d""",
    "alerts test": """examples:
  SLACK_WEBHOOK_URL=https://hooks.slack.com/services/... conflictradar alerts test

exits 0 when every channel accepted the test message, 1 otherwise.""",
    "alerts check": f"""examples:
  conflictradar alerts check
  conflictradar alerts check || page-oncall   # non-zero: firing (3) or failed (1)
  conflictradar alerts check --lake /mnt/lake --db /srv/lake-alerts.duckdb

{EXIT_CODES}""",
    "alerts backtest": """examples:
  conflictradar alerts backtest --since 7d
  conflictradar alerts backtest --since 2025-06-02T08:00Z --until 2025-06-02T12:00Z --step 30s
  conflictradar alerts backtest --since 2d --html backtest.html""",
    "config": """examples:
  conflictradar config check
  conflictradar config check deploy/conflictradar.toml""",
    "config check": """examples:
  conflictradar config check                       # ./conflictradar.toml, or the defaults
  conflictradar config check /etc/conflictradar/conflictradar.toml

prints the effective settings (defaults < file < CONFLICTRADAR_* environment) as TOML, secrets
masked; exits 1 with one sentence when the file is broken.""",
}
