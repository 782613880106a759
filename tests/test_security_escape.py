"""Security: log-controlled text reaches every screen as inert text.

Injections from paths, user agents and error texts: terminal control sequences (ESC[2J, OSC 8
links, 8-bit CSI, bidi overrides), Rich markup, Plotly's pseudo-HTML, Markdown links, images and
GFM autolinks, Slack mentions and links. Checked per output function (ingest.escape), through
`conflictradar sql` on a real pseudo-terminal, and in a real headless Chromium for the SQL
page's chart and the backtest HTML.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from markdown_it import MarkdownIt

from bench.browser import Browser
from conflictradar.alerts.evaluation import Event
from conflictradar.alerts.lifecycle import AlertState
from conflictradar.alerts.plot import backtest_figure, write_html
from conflictradar.alerts.rules import Scope
from conflictradar.dashboard import charts, panels
from conflictradar.ingest import escape
from conflictradar.ingest.store import Store
from tests.test_dashboard_browser import browser  # noqa: F401  (the fixture)

LINK = '<a href="https://evil.example/x">click me</a>'
PAYLOADS = [
    LINK,
    "<b>bold</b><br>next<img src=x onerror=alert(1)>",
    "[link=https://evil.example]click[/link] [bold red]loud[/]",
    "/clear\x1b[2J\x1b[H/home",
    "/osc8\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
    "/csi8\u009b2J/bell\x07/nul\x00",
    "/bidi\u202egnp.exe/zero\u200bwidth",
    "[x](https://evil.example) ![i](https://evil.example/i.png)",
    "https://evil.example www.evil.example someone@evil.example <https://evil.example>",
    "**bold** _it_ :red[red] $x^2$ `code` <!channel> @here <https://evil.example|click>",
]
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
# GFM autolink literals as remark-gfm finds them in Markdown source.
GFM_LITERAL = re.compile(r"(?i)(https?://|www\.|[\w.+-]@[\w-]+\.)")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_every_escape_leaves_no_control_character(payload: str) -> None:
    for fn in (escape.terminal, escape.plotly, escape.markdown, escape.markdown_code):
        assert not CONTROL.search(fn(payload).replace("\n", "")), fn.__name__
    assert "\\x1b" in escape.terminal("\x1b[2J")  # shown, not dropped


@pytest.mark.parametrize("payload", PAYLOADS)
def test_plotly_labels_hold_no_tag(payload: str) -> None:
    assert "<" not in escape.plotly(payload) and "<" not in charts.label(payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markdown_renders_as_the_text_itself(payload: str) -> None:
    md = MarkdownIt("commonmark")
    for source in (panels.text(payload), panels.code(payload)):
        html = md.render(source)
        assert "<a " not in html and "<img" not in html and "<strong>" not in html
        assert "<em>" not in html
    assert not GFM_LITERAL.search(panels.text(payload))  # no autolink can form


def test_markdown_table_keeps_every_payload_in_its_own_cell() -> None:
    """The Overview's Top endpoints: hostile endpoints stay one cell each, as text."""
    frame = pl.DataFrame({"endpoint": [*PAYLOADS, "/a|b|c"], "n": list(range(len(PAYLOADS) + 1))})
    source = panels.markdown_table(frame, {"endpoint": ("endpoint", str), "n": ("#409s", str)})
    html = MarkdownIt("commonmark").enable("table").render(source)
    assert html.count("<tr>") == len(PAYLOADS) + 2  # header + every row
    assert html.count("<td") == 2 * (len(PAYLOADS) + 1)  # a `|` in a payload splits nothing
    assert "<a " not in html and "<img" not in html and "<strong>" not in html
    assert not GFM_LITERAL.search(source)
    assert '<td style="text-align:right">0</td>' in html  # numbers right-aligned
    assert "<td>/a|b|c</td>" in html  # shown as written


def test_markdown_shows_the_characters_written() -> None:
    html = MarkdownIt("commonmark").render(panels.text("[x](https://e.example) *y*"))
    assert "[x](https://e.example) *y*" in html


@pytest.mark.parametrize("payload", PAYLOADS)
def test_rich_table_does_not_read_markup(payload: str, tmp_path: Path) -> None:
    import io

    import pyarrow as pa

    from conflictradar.ingest.render import print_table

    out = io.StringIO()
    print_table(pa.table({"p": [payload]}), "table", out)
    text = out.getvalue()
    assert not CONTROL.search(text.replace("\n", ""))
    if "[link=" in payload:
        assert "[link=https://evil.example]" in text.replace("\n", "").replace("│", "")


def test_slack_fallback_and_blocks_quote_log_text_as_code() -> None:
    from conflictradar.alerts.slack import code
    from conflictradar.alerts.slack import escape as slack_escape

    for payload in PAYLOADS:
        for out in (code(payload), slack_escape(payload)):
            assert "<" not in out and not CONTROL.search(out)
            assert "@here" not in out and "<!channel>" not in out


# -- a real pseudo-terminal ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def evil_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("evil") / "evil.duckdb"
    with Store.open(db) as store:
        store.con.executemany(
            "INSERT INTO conflicts (ts, path, user_agent, cause, evidence) VALUES "
            "(TIMESTAMPTZ '2025-06-02 10:00:00+00', ?, ?, 'unknown', ?)",
            [[p, p, f"error text: {p}"] for p in PAYLOADS],
        )
    return db


def _on_a_pty(*args: str) -> bytes:
    """Run conflictradar with stdout and stderr on a pseudo-terminal; everything it wrote."""
    leader, follower = os.openpty()
    env = {**os.environ, "COLUMNS": "400", "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "conflictradar", *args], stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, env=env)  # fmt: skip
    os.close(follower)
    out = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(leader)
    return out


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_sql_on_a_terminal_sends_no_payload_sequence(evil_db: Path, fmt: str) -> None:
    out = _on_a_pty("sql", "SELECT path, user_agent, evidence FROM conflicts", "--db", str(evil_db),
                    "--format", fmt)  # fmt: skip
    text = out.decode("utf-8", "replace")
    for bad in ("\x1b[2J", "\x1b]8;", "\u009b", "\u202e", "\x07", "\x00"):
        assert bad not in text, (fmt, bad)
    assert "[link=https://evil.example]" in text  # Rich did not read it
    assert "\\x1b[2J" in text or "\\u001b[2J" in text  # the sequence is shown as text


def test_error_sentences_on_a_terminal_are_inert(evil_db: Path) -> None:
    out = _on_a_pty("sql", 'SELECT * FROM "no\x1b[2Jtable"', "--db", str(evil_db))
    assert b"\x1b[2J" not in out and b"conflictradar: error:" in out


# -- a real browser ------------------------------------------------------------------------------


def _links_and_text(b: Browser, page: Path) -> tuple[int, str]:
    b.call("Page.navigate", url=page.as_uri())
    b.wait_for(".js-plotly-plot .main-svg")
    links = b.eval(
        "Array.from(document.querySelectorAll('.js-plotly-plot a'))"
        ".filter(a => (a.getAttribute('href') || a.getAttribute('xlink:href') || '')"
        ".includes('evil')).length"
    )
    text = b.eval("Array.from(document.querySelectorAll('.js-plotly-plot svg text'))"
                  ".map(t => t.textContent).join('\\n')")  # fmt: skip
    return int(links), str(text)


def test_sql_page_chart_in_a_browser_shows_links_as_text(
    browser: Browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    df = pl.DataFrame({"path": [LINK, "/orders/1"], "n": [3, 1]})
    page = tmp_path / "sql_chart.html"
    charts.user_chart(df, "path", ["n"], "bar").write_html(str(page), include_plotlyjs=True)
    links, text = _links_and_text(browser, page)
    assert links == 0
    assert "<a href=" in text  # the tick shows the characters


def test_backtest_html_in_a_browser_shows_links_as_text(
    browser: Browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    t0 = datetime(2025, 6, 2, 10, tzinfo=UTC)
    series = pl.DataFrame({
        "rule": ["spike"] * 3, "key": [LINK] * 3,
        "ts": [t0 + timedelta(minutes=i) for i in range(3)],
        "value": [1, 9, 2], "fire_level": [5.0] * 3,
    })  # fmt: skip
    event = Event(
        id="e", ts=t0 + timedelta(minutes=1), rule="spike", scope=Scope.ENDPOINT, scope_value=LINK,
        state=AlertState.FIRING, previous=AlertState.INACTIVE, repeat=False, flapping=False,
        value=9, baseline=None, score=None, window_s=60.0, message=f"409s on {LINK}",
        notification_id=None,
    )  # fmt: skip
    page = tmp_path / "backtest.html"
    write_html(backtest_figure(series, [event], "backtest"), page)
    links, text = _links_and_text(browser, page)
    assert links == 0
    assert "<a href=" in text  # the legend shows the characters
