"""Open an HTML file in headless Chromium and report what a user would see, without extra packages.

Chromium is driven over the DevTools protocol through `--remote-debugging-pipe`: the browser
reads commands from file descriptor 3 and writes replies and events to descriptor 4, each message
a JSON object ended by a NUL byte. This needs no websocket client and no free TCP port (so
parallel runs cannot collide), and the pipe closes when the browser dies, so a crash surfaces as
an error instead of a hang; every read also has a deadline.

`inspect_page(html_file, screenshot=...)` loads the file, waits for its load event, and returns a
`PageReport`: each image's natural size, console errors and uncaught exceptions, log-level errors
(e.g. a resource that failed to load), every request that left the machine, the section titles,
and the page printed to PDF. It saves a full-page screenshot.

Run as a script to check a report and save its screenshot:
    python -m tests.browser reports/example/report.html --screenshot reports/example/screenshot.png
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio", "--no-default-browser-check")


def find_chromium() -> str | None:
    """The Chromium executable (Debian's `chromium` package), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageReport:
    images: list[dict[str, Any]]  # {"alt", "complete", "width", "height"} per <img>
    console_errors: list[str]
    exceptions: list[str]
    log_errors: list[str]
    external_requests: list[str]  # URLs other than data:, file:, about:
    section_titles: list[str]
    pdf: bytes = b""
    screenshot: Path | None = None
    events: list[str] = field(default_factory=list)  # every event method seen (for debugging)
    overflow_px: int = 0  # how far the page is wider than the window (0: no horizontal scrolling)

    @property
    def broken_images(self) -> list[dict[str, Any]]:
        return [i for i in self.images if not i["complete"] or i["width"] <= 0 or i["height"] <= 0]

    @property
    def errors(self) -> list[str]:
        return self.console_errors + self.exceptions + self.log_errors


class Chromium:
    """A headless Chromium driven over `--remote-debugging-pipe`; use as a context manager."""

    def __init__(self, executable: str, timeout: float = 60.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="co-ssl-chromium-")
        to_browser_r, self._to_browser_w = os.pipe()
        self._from_browser_r, from_browser_w = os.pipe()
        # The browser's ends, moved above the low descriptors (so dup2 onto 3 and 4 cannot clobber
        # them) and close-on-exec: only the copies on 3 and 4 reach Chromium.
        high_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
        high_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def child_fds() -> None:
            os.dup2(high_r, 3)  # dup2 clears close-on-exec on the copy
            os.dup2(high_w, 4)

        self.log = tempfile.TemporaryFile()
        # close_fds=False: Python opens every descriptor close-on-exec, so Chromium inherits only 0-4.
        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe", "about:blank"],
            close_fds=False, preexec_fn=child_fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.log)
        os.close(high_r)
        os.close(high_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self._send("Browser.close")
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for fd in (self._to_browser_w, self._from_browser_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    # ---- the protocol: NUL-terminated JSON messages -------------------------------------------
    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser_w, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser_r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser_r, 1 << 20)
            if not chunk:
                self.log.seek(0)
                tail = self.log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"Chromium exited (code {self.process.poll()}): {tail}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict[str, Any]:
        """Send a command and return its result; events that arrive meanwhile are kept."""
        ident = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, session: str) -> dict[str, Any]:
        """The first event `method` of `session`, already received or still to come."""
        deadline = time.monotonic() + self.timeout
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            self.events.append(self._receive(deadline))

    def evaluate(self, expression: str, session: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluating {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    # ---- one page -----------------------------------------------------------------------------
    def inspect(self, html_file: Path, screenshot: Path | None = None, width: int = 1200) -> PageReport:
        """Load `html_file` in a new tab and report what it shows (see the module docstring)."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        first_event = len(self.events)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                         "mobile": False}, session)
        self.call("Page.navigate", {"url": Path(html_file).resolve().as_uri()}, session)
        self.wait_for("Page.loadEventFired", session)
        # Every <img> decoded (or failed), then its natural size.
        images = self.evaluate("""Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)))
            .then(() => Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,
                width: i.naturalWidth, height: i.naturalHeight})))""", session)
        titles = self.evaluate("Array.from(document.querySelectorAll('main > section > h2')).map(h => h.textContent)",
                               session)
        overflow = self.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth",
                                 session)
        shot = None
        if screenshot is not None:
            height = self.evaluate("Math.ceil(document.documentElement.scrollHeight)", session)
            self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": int(height),
                                                             "deviceScaleFactor": 1, "mobile": False}, session)
            data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session)
            shot = Path(screenshot)
            shot.parent.mkdir(parents=True, exist_ok=True)
            shot.write_bytes(base64.b64decode(data["data"]))
        pdf = base64.b64decode(self.call("Page.printToPDF", {"printBackground": True}, session)["data"])
        events = [e for e in self.events[first_event:] if e.get("sessionId") == session]
        self.call("Target.closeTarget", {"targetId": target})
        report = _page_report(events, images, titles, pdf, shot)
        report.overflow_px = int(overflow)
        return report


def _page_report(events: list[dict[str, Any]], images: list[dict[str, Any]], titles: list[str], pdf: bytes,
                 screenshot: Path | None) -> PageReport:
    console, exceptions, logs, external = [], [], [], []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exceptions.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            logs.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            if not url.startswith(("data:", "file:", "about:")):
                external.append(url)
    return PageReport(images, console, exceptions, logs, external, titles, pdf, screenshot,
                      sorted({e.get("method", "") for e in events}))


def inspect_page(html_file: Path, screenshot: Path | None = None, executable: str | None = None) -> PageReport:
    """Open `html_file` in a fresh headless Chromium and report what it shows."""
    executable = executable or find_chromium()
    if executable is None:
        raise FileNotFoundError("Chromium is not installed (Debian: apt-get install chromium)")
    with Chromium(executable) as browser:
        return browser.inspect(Path(html_file), screenshot)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check an HTML report in headless Chromium and save a screenshot.")
    parser.add_argument("html", type=Path)
    parser.add_argument("--screenshot", type=Path, help="full-page PNG to write")
    args = parser.parse_args(argv)
    report = inspect_page(args.html, args.screenshot)
    print(f"{len(report.images)} images, {len(report.broken_images)} broken; "
          f"sections: {', '.join(report.section_titles)}")
    print(f"errors: {report.errors or 'none'}; external requests: {report.external_requests or 'none'}; "
          f"print to PDF: {len(report.pdf)} bytes; horizontal overflow: {report.overflow_px} px")
    if args.screenshot:
        print(f"screenshot: {args.screenshot}")
    return 1 if report.broken_images or report.errors or report.external_requests or report.overflow_px else 0


if __name__ == "__main__":
    sys.exit(main())
