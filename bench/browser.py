"""A real headless Chromium over the DevTools protocol, and each dashboard page's render time.

Used by tests/test_dashboard_browser.py (renders, errors, screenshots, times) and by
`python -m bench.dashboard_live` (times against the demo's live watcher). The browser is driven
over CDP with `websockets` (a dependency of streamlit), so no WebDriver package is needed.

A page's render time runs from the navigation's start (`performance.timeOrigin`) to the moment it
was last seen becoming ready and then stayed ready for `CALM_S`: ready = the page's title is
shown, Streamlit's script is not running (`stApp[data-test-script-state]`), no status widget or
skeleton is left, and at least the page's expected number of Plotly charts are drawn. An observer
in the page stamps that moment (`performance.now()`) on every DOM change, so the figure is not
rounded to a polling interval.
"""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1500,1000",
    "--remote-debugging-port=0",
)
# The dashboard's pages: (name, URL path, title, Plotly charts drawn when it is ready).
PAGES = (
    ("overview", "", "Overview", 2),
    ("hotspots", "hotspots", "Hotspots", 2),
    ("causes", "causes", "Causes", 2),
    ("explorer", "explorer", "Explorer", 0),
    ("sql", "sql", "SQL", 0),
    ("alerts", "alerts", "Alerts", 0),
)
CALM_S = 1.0  # ready must hold this long (a rerun or a late element resets it)
TARGET_S = 2.0  # issue 13: every page renders in under 2 s

# Installed before any page script: window.__ready(title, plots) arms (or re-arms) an observer
# that keeps window.__readyAt = the last time the page turned ready (null while it is not).
OBSERVER_JS = """window.__ready = (title, plots) => {
  window.__want = {title, plots};
  const check = () => {
    const want = window.__want;
    const app = document.querySelector('[data-testid="stApp"]');
    const h1 = document.querySelector('[data-testid="stMain"] h1');
    const drawn = [...document.querySelectorAll('.js-plotly-plot')]
      .filter(g => g._fullLayout && g.querySelector('.main-svg')).length;
    return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
      && !!h1 && h1.innerText.includes(want.title)
      && !document.querySelector('[data-testid="stStatusWidget"]')
      && !document.querySelector('[data-testid="stSkeleton"]')
      && drawn >= want.plots;
  };
  const update = () => {
    const ok = check();
    if (ok && window.__readyAt === null) window.__readyAt = performance.now();
    if (!ok) window.__readyAt = null;
  };
  window.__readyAt = null;
  if (!window.__observer) {
    window.__observer = new MutationObserver(update);
    window.__observer.observe(document,
      {subtree: true, childList: true, attributes: true, characterData: true});
  }
  update();
}"""
STATE_JS = """(() => {
  const h1 = document.querySelector('[data-testid="stMain"] h1');
  const main = document.querySelector('[data-testid="stMain"]');
  const app = document.querySelector('[data-testid="stApp"]');
  return {title: h1 ? h1.innerText : '', now: performance.now(), readyAt: window.__readyAt ?? null,
          script: app ? app.getAttribute('data-test-script-state') : null,
          height: main ? main.scrollHeight : 0,
          plots: document.querySelectorAll('.js-plotly-plot').length};
})()"""


@dataclass(frozen=True)
class Render:
    """One page load: seconds from navigation start to ready, and the page's state then."""

    seconds: float
    plots: int
    height: int


class Browser:
    """Just enough of the DevTools protocol: navigate, evaluate, click, time, screenshot."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        n = next(self.ids)
        self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    def eval(self, expression: str) -> Any:
        out = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in out:
            raise AssertionError(f"{expression[:80]}: {out['exceptionDetails']}")
        return out.get("result", {}).get("value")

    def click(self, x: float, y: float) -> None:
        """A real mouse click: move (plotly needs the hover), press, release."""
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        time.sleep(0.4)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                      clickCount=1)  # fmt: skip

    def wait_for(self, selector: str, timeout_s: float = 30.0) -> None:
        """Until an element matches `selector`."""
        deadline = time.monotonic() + timeout_s
        while not self.eval(f"!!document.querySelector({json.dumps(selector)})"):
            if time.monotonic() > deadline:
                raise AssertionError(f"{selector} never appeared")
            time.sleep(0.1)

    def wait_ready(self, title: str, plots: int = 0, timeout_s: float = 60.0) -> Render:
        """After an in-page change: until the page shows `title`, ready, for CALM_S (its
        `seconds` count from the original navigation: use `open` for render times)."""
        self.eval(f"({OBSERVER_JS}, window.__ready({json.dumps(title)}, {plots}))")
        return self._calm(title, timeout_s)

    def _calm(self, title: str, timeout_s: float) -> Render:
        deadline = time.monotonic() + timeout_s
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = self.eval(STATE_JS) or {}
            at = state.get("readyAt")
            if at is not None and state["now"] - at >= CALM_S * 1000:
                return Render(round(at / 1000, 3), int(state["plots"]), int(state["height"]))
            time.sleep(0.1)
        raise AssertionError(f"page {title!r} did not finish rendering: {state}")

    def open(self, url: str, title: str, plots: int = 0, timeout_s: float = 60.0) -> Render:
        """Navigate to `url` (a full page load) and time it to ready."""
        nonce = next(self.ids)
        arm = (
            f"{OBSERVER_JS}\nwindow.__nav = {nonce};\nwindow.__ready({json.dumps(title)}, {plots});"
        )
        added = self.call("Page.addScriptToEvaluateOnNewDocument", source=arm)
        try:
            self.call("Page.navigate", url=url)
            deadline = time.monotonic() + timeout_s
            while self.eval("window.__nav") != nonce:  # the new document has started
                if time.monotonic() > deadline:
                    raise AssertionError(f"{url} never loaded")
                time.sleep(0.02)
        finally:
            self.call("Page.removeScriptToEvaluateOnNewDocument", identifier=added["identifier"])
        return self._calm(title, timeout_s)

    def screenshot(self, path: Path, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=1500, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        time.sleep(1.0)  # let plotly re-layout at the new size
        shot = self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        self.call("Emulation.clearDeviceMetricsOverride")


@contextmanager
def chromium(exe: str) -> Iterator[tuple[Browser, subprocess.Popen[bytes]]]:
    """A headless Chromium with a fresh profile, and its process (for CPU accounting)."""
    # Chromium may still write to its profile while it exits: a leftover file is not an error.
    with tempfile.TemporaryDirectory(
        prefix="conflictradar-chromium-", ignore_cleanup_errors=True
    ) as profile:
        proc = subprocess.Popen(
            [exe, *CHROME_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text().strip():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("chromium did not open its DevTools port")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                targets = json.load(r)
            page = next(t for t in targets if t["type"] == "page")
            with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=20) as ws:
                b = Browser(ws)
                b.call("Page.enable")
                b.call("Runtime.enable")
                yield b, proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
