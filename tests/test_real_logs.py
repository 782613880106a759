"""`conflictradar ingest ../shared/real_logs`: the whole folder, auto-detected, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

EXPECTED_FORMAT = {
    "beats-fixtures/apache_access_test.log": "combined",
    "beats-fixtures/envoy-json.log": "envoy",
    "beats-fixtures/haproxy_http.log": "haproxy",
    "beats-fixtures/iis_7.5_w3c.log": "w3c",
    "beats-fixtures/nginx_access.log": "combined",
    "beats-fixtures/nginx_test_edgecases.log": "combined",
    "beats-fixtures/traefik_v1_access.log": "combined",
    "crowdsec-hub-tests/apache2-logs__apache2-logs.log": "combined",
    "crowdsec-hub-tests/aws-alb-logs__aws-alb-logs.log": "alb",
    "crowdsec-hub-tests/aws-cloudfront-logs__aws-cloudfront-logs.log": "cloudfront",
    "crowdsec-hub-tests/caddy-logs__caddy-logs.log": "caddy",
    "crowdsec-hub-tests/envoy-logs__envoy.log": "envoy",
    "crowdsec-hub-tests/haproxy-logs__haproxy-logs.log": "haproxy",
    "crowdsec-hub-tests/nginx-proxy-manager-logs__nginx-proxy-manager-logs.log": "nginx-proxy-manager",
    "crowdsec-hub-tests/nginx_http-logs__nginx_http-logs.log": "combined",
    "crowdsec-hub-tests/traefik_base-http-scenario__traefik_base-http-scenario.log": "traefik",
    "crowdsec-hub-tests/traefik_clf__traefik_clf.log": "combined",
    "crowdsec-hub-tests/traefik_json__traefik_json.log": "traefik",
    "elastic-examples/apache_logs": "combined",
    **{f"erddaplogs-voto/tomcat-access.log.{i}": "combined" for i in range(1, 10)},
    "lnav-tests/logfile_access_log.0": "combined",
    "lnav-tests/logfile_caddy_log.0": "caddy",
    "lnav-tests/logfile_caddy_log.1": "caddy",
    "lnav-tests/logfile_haproxy.0": "haproxy",
    "lnav-tests/logfile_shop_access_log.0": "combined",
    **{f"lnav-tests/logfile_w3c.{i}": "w3c" for i in range(7)},
    "lnav-tests/logfile_w3c_big.0": "w3c",
}
UNSUPPORTED = [
    "lnav-tests/logfile_uwsgi.0",
    "crowdsec-hub-tests/couchdb-logs__couchdb-logs.log",
    "crowdsec-hub-tests/zoraxy-http-logs__zoraxy.log",
    "crowdsec-hub-tests/iis-xml-logs__iis-logs.log",
    "crowdsec-hub-tests/base-upsun-httplog-logs__base-upsun-httplog-logs.log",
]


@pytest.fixture(scope="module")
def ingested(real_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    db = tmp_path_factory.mktemp("real") / "real.duckdb"
    proc = subprocess.run(
        [sys.executable, "-m", "conflictradar", "ingest", str(real_logs), "--db", str(db)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "CONFLICTRADAR_DB": ""},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return db, proc.stderr


def _files(db: Path) -> dict[str, str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {str(p): str(f) for p, f in con.execute("SELECT path, format FROM files").fetchall()}
    finally:
        con.close()


def test_every_supported_file_gets_its_format(ingested: tuple[Path, str], real_logs: Path) -> None:
    db, _ = ingested
    formats = _files(db)
    for rel, fmt in EXPECTED_FORMAT.items():
        assert formats.get(str(real_logs / rel)) == fmt, rel


def test_unsupported_files_get_one_clear_line(ingested: tuple[Path, str], real_logs: Path) -> None:
    _, stderr = ingested
    for rel in UNSUPPORTED:
        lines = [ln for ln in stderr.splitlines() if str(real_logs / rel) in ln]
        assert len(lines) == 1, rel
        assert "format not recognised; tried apigw, kong, traefik" in lines[0]
        assert "combined" in lines[0] and "w3c" in lines[0]
    assert str(real_logs / "SOURCES.md") not in _files(ingested[0])


def test_combined_files_parse_every_well_formed_line(ingested: tuple[Path, str],
                                                     real_logs: Path) -> None:  # fmt: skip
    con = duckdb.connect(str(ingested[0]), read_only=True)
    try:
        apache = str(real_logs / "elastic-examples/apache_logs")
        assert con.execute("SELECT count(*) FROM requests WHERE file = ?", [apache]).fetchone() == (
            10_000,
        )
        assert con.execute("SELECT count(*) FROM rejects WHERE file = ?", [apache]).fetchone() == (
            0,
        )
        erddap = str(real_logs / "erddaplogs-voto") + "/%"
        parsed = con.execute("SELECT count(*) FROM requests WHERE file LIKE ?", [erddap]).fetchone()
        rejected = con.execute(
            "SELECT count(*) FROM rejects WHERE file LIKE ?", [erddap]
        ).fetchone()
        assert rejected == (5_796,)
        assert parsed == (16_275 - 5_796,)
        # The rejects are the fragments (a user agent only), never a well-formed request line.
        assert con.execute(
            "SELECT count(*) FROM rejects WHERE file LIKE ? AND regexp_matches(raw, '\\] \"[A-Z]+ /')",
            [erddap],
        ).fetchone() == (0,)
        shop = str(real_logs / "lnav-tests/logfile_shop_access_log.0")
        assert con.execute("SELECT count(*) FROM requests WHERE file = ?", [shop]).fetchone() == (
            1_000,
        )
    finally:
        con.close()
