"""The deployment recipes in deploy/: the systemd units pass `systemd-analyze verify`, and every
command the recipes run is one our parser accepts; compose and Kubernetes keep watch and the
dashboard on one volume and one loopback. (The Dockerfile is not built: no container engine here.)"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conflictradar.arguments import build_parser

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
INSTALLED = "/usr/local/bin/conflictradar"


def accepts(argv: list[str]) -> None:
    """Our CLI parses `argv` (the arguments after `conflictradar`)."""
    build_parser().parse_args(argv)


def unit_commands(text: str) -> list[list[str]]:
    joined = text.replace("\\\n", " ")
    return [shlex.split(m) for m in re.findall(r"^Exec\w+=(.+)$", joined, re.M)]


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        reason = "SKIPPED LOUDLY: systemd-analyze is not installed (Debian package systemd)"
        print(reason, file=sys.stderr)
        pytest.skip(reason)
    assert [u.name for u in UNITS] == [
        "conflictradar-dashboard.service",
        "conflictradar-watch.service",
    ]
    # The units name the pipx install path; verify checks the binary exists, so point it at this
    # checkout's installed command (the same entry point).
    here = str(Path(sys.executable).with_name("conflictradar"))
    copies = []
    for unit in UNITS:
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace(INSTALLED, here))
        copies.append(str(copy))
    proc = subprocess.run([analyze, "verify", *copies], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr  # warnings (an unknown key, a bad value) count too


def test_a_broken_unit_fails_the_check(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("SKIPPED LOUDLY: systemd-analyze is not installed")
    here = str(Path(sys.executable).with_name("conflictradar"))
    text = (DEPLOY / "systemd" / "conflictradar-watch.service").read_text().replace(INSTALLED, here)
    broken = tmp_path / "broken.service"
    broken.write_text(text.replace("RestartSec=5", "RestartSecs=5"))
    proc = subprocess.run([analyze, "verify", str(broken)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert "Unknown key 'RestartSecs'" in proc.stderr


def test_unit_commands_are_valid_conflictradar_commands() -> None:
    seen = []
    for unit in UNITS:
        for argv in unit_commands(unit.read_text()):
            assert argv[0] == INSTALLED
            accepts(argv[1:])
            seen.append(argv[1])
    assert sorted(seen) == ["config", "dashboard", "watch"]
    watch = (DEPLOY / "systemd" / "conflictradar-watch.service").read_text()
    assert (
        "--metrics 127.0.0.1:9409" in watch
        and "EnvironmentFile=-/etc/conflictradar/secrets.env" in watch
    )


def service_commands(compose: dict[str, Any]) -> dict[str, list[str]]:
    return {name: list(svc["command"]) for name, svc in compose["services"].items()}


def test_compose_runs_watch_and_dashboard_on_one_volume_and_one_loopback() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    watch, dashboard = compose["services"]["watch"], compose["services"]["dashboard"]
    assert dashboard["network_mode"] == "service:watch"
    assert "data:/data" in watch["volumes"] and "data:/data" in dashboard["volumes"]
    assert all(p.startswith("127.0.0.1:") for p in watch["ports"])
    assert "ports" not in dashboard  # it has no network of its own
    for argv in service_commands(compose).values():
        accepts(argv)
    assert (DEPLOY / "conflictradar.toml").is_file()


def test_kubernetes_pod_holds_watch_and_dashboard_sharing_the_volume() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "conflictradar.yaml").read_text()))
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Service"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"  # one writer
    pod = spec["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"watch", "dashboard"}
    for c in containers.values():
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert mounts["data"] == "/data"
        accepts(c["args"])
    assert containers["watch"]["livenessProbe"]["httpGet"]["path"] == "/healthz"
    claim = next(v for v in pod["volumes"] if v["name"] == "data")
    assert claim["persistentVolumeClaim"]["claimName"] == "conflictradar-data"


def test_dockerfile_installs_the_wheel_and_runs_watch() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M)[1])  # type: ignore[index]
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M)[1])  # type: ignore[index]
    assert entry == ["conflictradar"]
    accepts(cmd)
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert list(ROOT.glob(source)), f"the Dockerfile copies {source}, which does not exist"
    assert "USER conflictradar" in text and 'VOLUME ["/data"]' in text


def test_reverse_proxy_passes_the_websocket_to_the_loopback_dashboard() -> None:
    text = (DEPLOY / "proxy" / "nginx.conf").read_text()
    assert "server 127.0.0.1:8501;" in text
    assert "proxy_set_header Upgrade $http_upgrade;" in text  # Streamlit's /_stcore/stream
    assert "auth_basic_user_file" in text and "listen 443 ssl;" in text
