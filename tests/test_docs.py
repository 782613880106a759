"""The docs cannot drift from the code: the configuration reference is generated from the settings
definitions, and it lists exactly the keys the loaders accept."""

from __future__ import annotations

from conflictradar import configdoc


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
