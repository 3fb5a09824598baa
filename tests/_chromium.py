"""Drive headless Chromium over the DevTools protocol on a pipe (no dependency beyond the stdlib).

`chromium --remote-debugging-pipe` reads NUL-terminated JSON commands on fd 3 and writes
NUL-terminated JSON replies and events on fd 4. `open_page(path)` opens a file in a fresh
profile, waits for its load event and returns what a test needs: console messages and
uncaught exceptions, every network request the page made, the result of JavaScript
expressions and a full-page PNG screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageVisit:
    """What one visit of a page showed."""

    url: str
    console: list[dict] = field(default_factory=list)      # {"level", "text"}
    exceptions: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)      # every URL the page asked for
    failed: list[str] = field(default_factory=list)        # URLs whose loading failed
    values: dict = field(default_factory=dict)             # expression -> value
    screenshot: bytes = b""

    @property
    def errors(self) -> list[str]:
        return ([f"console.{c['level']}: {c['text']}" for c in self.console if c["level"] in ("error", "assert")]
                + [f"exception: {e}" for e in self.exceptions])


class _Pipe:
    def __init__(self, proc, to_browser: int, from_browser: int):
        self.proc = proc
        self.w = to_browser
        self.r = from_browser
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self.r], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()})")
                self.buf += chunk
        msg, _, self.buf = self.buf.partition(b"\0")
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60.0) -> dict:
        self.next_id += 1
        mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == mid:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, session: str | None, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        for i, m in enumerate(self.events):
            if m.get("method") == method and m.get("sessionId") == session:
                return m
        while True:
            m = self._read_message(deadline)
            self.events.append(m)
            if m.get("method") == method and m.get("sessionId") == session:
                return m

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.events.append(self._read_message(deadline))
            except TimeoutError:
                return


def _console_text(params: dict) -> str:
    out = []
    for a in params.get("args", []):
        out.append(str(a.get("value", a.get("description", a.get("type")))))
    return " ".join(out)


def open_page(path: str | Path, expressions: dict[str, str] | None = None, width: int = 1280,
              timeout: float = 120.0) -> PageVisit:
    """Open `path` (a local file) in headless Chromium; evaluate `expressions` after load.

    `expressions` maps a name to a JavaScript expression whose JSON-serialisable value is kept in
    `PageVisit.values[name]`. The screenshot covers the whole page at `width` CSS pixels.
    """
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError("no chromium on PATH (Debian: apt-get install chromium)")
    url = Path(path).resolve().as_uri()
    profile = tempfile.mkdtemp(prefix="mcsim-chromium-")
    to_r, to_w = os.pipe()      # we write commands, chromium reads fd 3
    from_r, from_w = os.pipe()  # chromium writes fd 4, we read

    def child_fds():
        # move both ends above 4 first, so neither is overwritten by the other's dup2
        a, b = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
        os.dup2(a, 3)
        os.dup2(b, 4)

    args = [browser, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--mute-audio", f"--user-data-dir={profile}",
            f"--window-size={width},900", "about:blank"]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=child_fds, close_fds=False)
    os.close(to_r)
    os.close(from_w)
    pipe = _Pipe(proc, to_w, from_r)
    visit = PageVisit(url=url)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.send(f"{domain}.enable", {}, session)
        pipe.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
        pipe.events.clear()
        pipe.send("Page.navigate", {"url": url}, session)
        pipe.wait_event("Page.loadEventFired", session, timeout)
        pipe.drain(0.5)
        for name, expr in (expressions or {}).items():
            r = pipe.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session)
            if "exceptionDetails" in r:
                visit.exceptions.append(f"{name}: {r['exceptionDetails'].get('text')}")
            visit.values[name] = r.get("result", {}).get("value")
        height = pipe.send("Runtime.evaluate", {"expression": "document.documentElement.scrollHeight",
                                                "returnByValue": True}, session)["result"]["value"]
        pipe.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": int(min(height, 16000)), "deviceScaleFactor": 1,
                   "mobile": False}, session)
        shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session)
        visit.screenshot = base64.b64decode(shot["data"])
        pipe.drain(0.2)
        for m in pipe.events:
            if m.get("sessionId") != session:
                continue
            meth, p = m.get("method"), m.get("params", {})
            if meth == "Runtime.consoleAPICalled":
                visit.console.append({"level": p.get("type"), "text": _console_text(p)})
            elif meth == "Log.entryAdded":
                e = p.get("entry", {})
                visit.console.append({"level": e.get("level"), "text": f"{e.get('text')} {e.get('url', '')}".strip()})
            elif meth == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                visit.exceptions.append(str(d.get("exception", {}).get("description") or d.get("text")))
            elif meth == "Network.requestWillBeSent":
                visit.requests.append(p.get("request", {}).get("url", ""))
            elif meth == "Network.loadingFailed":
                visit.failed.append(p.get("requestId", ""))
        try:
            pipe.send("Browser.close", {}, timeout=10)
        except (RuntimeError, TimeoutError):
            pass
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(to_w)
        os.close(from_r)
        shutil.rmtree(profile, ignore_errors=True)
    return visit


def external_requests(visit: PageVisit) -> list[str]:
    """Requests that leave the file: anything but the page itself and inline `data:` URLs."""
    return [u for u in visit.requests if u != visit.url and not u.startswith(("data:", "about:"))]
