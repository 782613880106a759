"""Log-controlled text -> a screen: the one place that makes it inert for each kind of output.

Paths, user agents, messages and error texts come from whoever sent the logged request. Shown
anywhere, they must read as the characters they are: never as terminal control sequences
(`ESC[2J`, OSC 8 links, bidi overrides), Rich markup (`[link=...]`), Plotly's pseudo-HTML
(`<a href=...>`), Markdown (links, images, GFM autolinks) or Slack mrkdwn (mentions, links).
Every function first makes control characters visible (`\\x1b` is shown as the four characters
`\\x1b`), so what is hidden in a log line is seen, not executed.
"""

from __future__ import annotations

import html
import io
import re
from typing import TextIO, cast

# C0 controls but tab and newline, DEL, C1 controls; and the invisible format characters that
# reorder or hide text (bidi embeddings, overrides and isolates, zero-width marks).
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_LINE_BREAK = re.compile(r"[\t\n]")
# CommonMark's escapable ASCII punctuation that means something in Streamlit's Markdown (its
# :color[]/:icon: and $math$ included); `@` and `/` too, so no GFM autolink (`www.x`,
# `https://x`, `a@b.c`) can form.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=^&@/])")


def visible(text: object, keep_lines: bool = False) -> str:
    """`text` with every control or invisible format character shown as its `\\xNN` / `\\uNNNN`
    escape; tabs and newlines become spaces unless `keep_lines`."""
    out = _CONTROL.sub(_show, str(text))
    return out if keep_lines else _LINE_BREAK.sub(" ", out)


def _show(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(text: object) -> str:
    """For a terminal: no control sequences. (Rich output must also pass it as `Text`, not as a
    markup string; see `rich_text`.)"""
    return visible(text, keep_lines=True)


def rich_text(text: object) -> object:
    """A Rich `Text` of `text`: printed as written, `[link=...]` and `[bold]` included."""
    from rich.text import Text

    return Text(visible(text))


def plotly(text: object) -> str:
    """For a Plotly label, tick, legend entry or hover text: Plotly reads `<a href>`, `<b>`,
    `<br>` and entities there, so `&`, `<`, `>` become entities."""
    return html.escape(visible(text), quote=False)


def markdown(text: object) -> str:
    """For st.markdown / a Markdown report: shown as written, never as markup, links or images."""
    return _MARKDOWN.sub(r"\\\1", " ".join(visible(text).split()))


def markdown_code(text: object) -> str:
    """As inline code (nothing is markup inside, no autolink), its backticks made harmless."""
    return "`" + " ".join(visible(text).split()).replace("`", "\u02cb") + "`"


class TerminalStream(io.TextIOBase):
    """A text stream to a terminal that shows control characters instead of sending them: for
    plain-text reports (`alerts check`, `alerts backtest`) that quote log text."""

    def __init__(self, target: TextIO) -> None:
        self._target = target

    def write(self, text: str) -> int:
        self._target.write(terminal(text))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._target.fileno()


def for_screen(out: TextIO) -> TextIO:
    """`out` itself, or a TerminalStream over it when it is a terminal."""
    return cast(TextIO, TerminalStream(out)) if out.isatty() else out
