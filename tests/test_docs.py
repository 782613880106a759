"""The docs cannot drift from the code: the configuration reference is generated from the settings
definitions, and it lists exactly the keys the loaders accept."""

from __future__ import annotations

import re
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from conflictradar import cli, configdoc


def test_configuration_reference_lists_exactly_the_keys_the_loaders_accept() -> None:
    assert configdoc.drift() == []
    accepted = configdoc.accepted_keys()
    assert {"ingest", "classify", "endpoints", "sql", "dashboard", "watch", "alerts"} <= set(
        accepted
    )
    assert "min_count" in accepted["alerts.rules"] and "url_env" in accepted["alerts.channels.NAME"]


def test_configuration_reference_is_current() -> None:
    # Stale? Run `make docs` (python -m conflictradar.configdoc) and commit docs/configuration.md.
    assert configdoc.DOC.read_text() == configdoc.render()
    text = configdoc.render()
    for key in ("`retry_window` | duration | `\"30s\"`", "`max_rows` | integer | `10000`",
                "## `[[alerts.rules]]`", "`url_env` | string"):  # fmt: skip
        assert key in text


ROOT = Path(__file__).resolve().parents[1]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(lang: str) -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for i, m in enumerate(FENCE.finditer(doc.read_text())):
            if m.group(1) == lang:
                out.append((f"{doc.name}#{i}", m.group(2)))
    return out


def example_configs() -> list[tuple[str, str]]:
    found = blocks("toml")
    found.append(
        ("deploy/conflictradar.toml", (ROOT / "deploy" / "conflictradar.toml").read_text())
    )
    for doc in yaml.safe_load_all(
        (ROOT / "deploy" / "kubernetes" / "conflictradar.yaml").read_text()
    ):
        if doc["kind"] == "ConfigMap":
            found.append(("deploy/kubernetes ConfigMap", doc["data"]["conflictradar.toml"]))
    return found


def test_there_are_documented_examples_to_check() -> None:
    names = [name for name, _ in example_configs()]
    assert len(names) >= 8, names
    assert any(n.startswith("alerts.md") for n in names)
    assert any(n.startswith("README.md") for n in names)


@pytest.mark.parametrize(("name", "text"), [pytest.param(n, t, id=n) for n, t in example_configs()])
def test_every_documented_example_config_passes_config_check(
    name: str, text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "example.toml"
    cfg.write_text(text)
    assert cli.main(["config", "check", str(cfg), "--db", str(tmp_path / "x.duckdb")]) == 0, name
    out = capsys.readouterr()
    assert out.err.startswith(f"conflictradar: {cfg} is valid"), out.err
    tomllib.loads(out.out)  # the effective settings it prints are TOML


def test_the_documented_signature_check_accepts_ours_and_refuses_tampering() -> None:
    from conflictradar.alerts.webhook import signature

    code = next(text for _, text in blocks("python") if "def verify(" in text)
    scope: dict[str, object] = {}
    exec(compile(code, "docs/alerts.md", "exec"), scope)
    verify = scope["verify"]
    assert callable(verify)
    key, body, now = b"k3y", b'{"status": "firing", "alerts": []}', int(time.time())
    header = signature(key, body, now)
    assert verify(header, body, key) is True
    assert verify(header, body + b" ", key) is False  # a changed body
    assert verify(header, body, b"other") is False  # another key
    assert verify(signature(key, body, now - 3600), body, key) is False  # a replay, an hour late
    assert verify("", body, key) is False and verify("t=x,v1=y", body, key) is False


def test_docs_link_to_files_that_exist() -> None:
    link = re.compile(r"\]\((?!https?://|#)([^)#]+)")
    for doc in DOCS:
        for target in link.findall(doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
