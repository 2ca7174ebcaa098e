"""Open HTML pages in headless Chromium with the network off and report what a reader would see.

    python -m egma.browser_check PAGE.html ... [--screenshots DIR]

For each page: did it load, which errors reached the console (console.error/assert, uncaught
exceptions, resources that failed to load), which requests tried to leave the machine, and how many
plotly figures it holds and how many plotly.js actually drew (a figure's `.main-svg` exists only after
plotly.js ran). Optionally a PNG screenshot with the first drawn figure in view.

Chromium is driven over the DevTools protocol on `--remote-debugging-pipe` (file descriptors 3 and 4,
NUL-separated JSON), which needs nothing beyond the standard library and reports console messages
reliably. Networking is off: every request goes to a proxy that does not exist (loopback included)
and every host name fails to resolve, so a page that needs a CDN breaks here as it would offline.
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_ENV = "EGMA_CHROMIUM"  # an explicit browser binary, else the first of CHROMIUM_NAMES on PATH
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = ("install Debian's chromium (`apt-get install -y --no-install-recommends chromium`) "
                f"or point {CHROMIUM_ENV} at a Chromium/Chrome binary")

OFFLINE_FLAGS = ("--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                 "--host-resolver-rules=MAP * ~NOTFOUND")
HEADLESS_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--no-default-browser-check", "--disable-extensions", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
                  "--mute-audio",
                  # WebGL in software, as any reader's browser has it: plotly's Scattergl traces need it.
                  "--use-angle=swiftshader", "--enable-unsafe-swiftshader")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")

# Console messages known to be harmless, each with the reason; anything else is an error. A tolerated
# message is still listed in the page's report.
TOLERATED: tuple[tuple[str, str], ...] = (
    (r"^uncaught SyntaxError: Identifier 'THEBE_JS_URL' has already been declared$",
     "Sphinx 7.4 adds sphinx-thebe's inline config script to every page twice; the second copy re-declares "
     "the same constants and fails, the first already set them (and thebe is off in this book)"),
    (r"^Got invalid theme mode: \. Resetting to auto\.$",
     "pydata-sphinx-theme on a browser's first visit, before any colour mode was stored: it falls back to "
     "'auto' (html_context.default_mode in _config.yml would set one)"),
)

DRAWING_WAIT_S = 10.0  # after the load event, how long figures may take to appear
VIEWPORT = {"width": 1280, "height": 1100, "deviceScaleFactor": 1, "mobile": False}

_PAGE_STATE = """(() => {
  const figures = [...document.querySelectorAll('.plotly-graph-div')];
  return {title: document.title, text: document.body ? document.body.innerText.length : 0,
          figures: figures.length, drawn: figures.filter(f => f.querySelector('.main-svg')).length,
          plotly: typeof window.Plotly !== 'undefined'};
})()"""

# Scrolls the first drawn figure (or the page top) into view, below its preceding text.
_SHOW_FIRST_FIGURE = """(() => {
  const drawn = [...document.querySelectorAll('.plotly-graph-div')].find(f => f.querySelector('.main-svg'));
  if (drawn) { drawn.scrollIntoView({block: 'start'}); window.scrollBy(0, -160); }
  return window.scrollY;
})()"""


class ChromiumMissing(RuntimeError):
    """No Chromium binary: the pages cannot be checked (a failure, never a skip)."""


class BrowserError(RuntimeError):
    """Chromium did not start, died, or did not answer in time."""


@dataclass
class PageReport:
    page: Path
    loaded: bool = False
    title: str = ""
    text_chars: int = 0
    figures: int = 0          # plotly figure divs on the page
    figures_drawn: int = 0    # of those, how many plotly.js drew
    errors: list[str] = field(default_factory=list)
    tolerated: list[str] = field(default_factory=list)  # errors matching TOLERATED, kept in sight
    outside_requests: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def problems(self) -> list[str]:
        found = [] if self.loaded else ["the page did not finish loading"]
        if self.loaded and self.text_chars == 0:
            found.append("the page has no text")
        found += [f"console error: {e}" for e in self.errors]
        found += [f"request left the machine: {url}" for url in self.outside_requests]
        if self.figures_drawn < self.figures:
            found.append(f"only {self.figures_drawn} of {self.figures} plotly figures were drawn")
        return found

    def summary(self) -> str:
        state = "ok" if not self.problems else "FAILED"
        line = (f"{state}: {self.page} - {self.title!r}, {self.figures_drawn}/{self.figures} plotly figures drawn, "
                f"{len(self.errors)} console error(s)")
        details = [f"    {p}" for p in self.problems]
        details += [f"    tolerated (see browser_check.TOLERATED): {t}" for t in self.tolerated]
        if self.screenshot:
            details.append(f"    screenshot: {self.screenshot}")
        return "\n".join([line, *details])


def find_chromium() -> str:
    """The Chromium binary to use; ChromiumMissing (with how to install it) when there is none."""
    explicit = os.environ.get(CHROMIUM_ENV)
    if explicit:
        if shutil.which(explicit) is None:
            raise ChromiumMissing(f"{CHROMIUM_ENV}={explicit} is not an executable; {INSTALL_HINT}")
        return shutil.which(explicit)
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    raise ChromiumMissing(f"headless Chromium is needed to check the HTML pages and none of "
                          f"{', '.join(CHROMIUM_NAMES)} is on PATH; {INSTALL_HINT}")


def check_pages(pages: list[Path], screenshots: dict[Path, Path] | None = None, settle_s: float = 0.5,
                timeout_s: float = 120.0) -> list[PageReport]:
    """Load each page in one offline headless Chromium and report on it; `screenshots` maps a page to
    the PNG to write for it. Raises ChromiumMissing or BrowserError, never skips."""
    screenshots = {Path(p).resolve(): Path(png) for p, png in (screenshots or {}).items()}
    with _Chromium(find_chromium(), timeout_s) as browser:
        return [_check_page(browser, Path(page).resolve(), screenshots.get(Path(page).resolve()), settle_s, timeout_s)
                for page in pages]


def failures(reports: list[PageReport]) -> list[PageReport]:
    return [r for r in reports if r.problems]


def _check_page(browser: _Chromium, page: Path, screenshot: Path | None, settle_s: float,
                timeout_s: float) -> PageReport:
    report = PageReport(page)
    if not page.is_file():
        report.errors.append(f"{page} does not exist")
        return report
    target = browser.call("Target.createTarget", url="about:blank")["targetId"]
    session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session=session)
        browser.call("Emulation.setDeviceMetricsOverride", session=session, **VIEWPORT)
        navigated = browser.call("Page.navigate", session=session, url=page.as_uri())
        if navigated.get("errorText"):
            report.errors.append(f"navigation failed: {navigated['errorText']}")
        else:
            report.loaded = browser.wait_for_event("Page.loadEventFired", session, timeout_s)
        deadline = time.monotonic() + DRAWING_WAIT_S
        while report.loaded:  # plotly draws while the page parses; give late drawing a moment
            state = browser.evaluate(_PAGE_STATE, session)
            if state["drawn"] >= state["figures"] or not state["plotly"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if report.loaded:
            time.sleep(settle_s)  # errors thrown just after load still count
            state = browser.evaluate(_PAGE_STATE, session)
            report.title, report.text_chars = state["title"], state["text"]
            report.figures, report.figures_drawn = state["figures"], state["drawn"]
            if screenshot is not None:
                browser.evaluate(_SHOW_FIRST_FIGURE, session)
                time.sleep(0.2)
                png = browser.call("Page.captureScreenshot", session=session, format="png")["data"]
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(png))
                report.screenshot = screenshot
        _collect(report, browser.drain_events(session))
    finally:
        browser.call("Target.closeTarget", targetId=target)
    return report


def _collect(report: PageReport, events: list[dict]) -> None:
    """Sort the page's DevTools events into errors, tolerated messages and outside requests."""
    urls: dict[str, str] = {}
    for event in events:
        method, params = event["method"], event.get("params", {})
        message = None
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            message = " ".join(_remote_text(arg) for arg in params.get("args", []))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            message = "uncaught " + (details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            message = f"{entry['text']} ({entry.get('url', '')})"
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            if not url.startswith(LOCAL_SCHEMES):
                report.outside_requests.append(url)
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            message = f"failed to load {urls.get(params['requestId'], '?')}: {params.get('errorText')}"
        if message is None:
            continue
        known = any(re.search(pattern, message) for pattern, _reason in TOLERATED)
        (report.tolerated if known else report.errors).append(message)


def _remote_text(arg: dict) -> str:
    if "value" in arg:
        return str(arg["value"])
    return arg.get("description") or arg.get("unserializableValue") or arg.get("type", "?")


class _Chromium:
    """A headless Chromium process and its DevTools pipe: call() sends a command and waits for its
    answer; events are kept per session until drained."""

    def __init__(self, binary: str, timeout_s: float):
        self.binary, self.timeout_s = binary, timeout_s
        self._next_id = 0
        self._messages: queue.Queue = queue.Queue()
        self._events: dict[str | None, list[dict]] = {}

    def __enter__(self) -> _Chromium:
        self._profile = tempfile.TemporaryDirectory(prefix="egma-chromium-")
        self._log = open(Path(self._profile.name) / "stderr.log", "w+b")
        to_browser_r, to_browser_w = _pipe_above_4()
        from_browser_r, from_browser_w = _pipe_above_4()

        def as_fds_3_and_4():  # the child's ends where --remote-debugging-pipe expects them
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        command = [self.binary, *HEADLESS_FLAGS, *OFFLINE_FLAGS, "--remote-debugging-pipe",
                   f"--user-data-dir={self._profile.name}", "about:blank"]
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                         preexec_fn=as_fds_3_and_4, close_fds=False)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._send_fd, self._receive_fd = to_browser_w, from_browser_r
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.call("Browser.getVersion")  # fails clearly if the browser did not start
        except BrowserError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._process.poll() is None:
                self._send({"id": -1, "method": "Browser.close"})
                self._process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        finally:
            os.close(self._send_fd)
            self._log.close()
            self._profile.cleanup()

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._next_id += 1
        wanted = self._next_id
        message = {"id": wanted, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._send(message)
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._receive(deadline, f"the answer to {method}")
            if reply is None:
                raise BrowserError(self._failure(f"no answer to {method} from Chromium in {self.timeout_s} s"))
            if reply.get("id") == wanted:
                if "error" in reply:
                    raise BrowserError(f"{method} failed: {reply['error'].get('message')}")
                return reply.get("result", {})

    def evaluate(self, expression: str, session: str):
        result = self.call("Runtime.evaluate", session=session, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"evaluating page state failed: {result['exceptionDetails'].get('text')}")
        return result["result"]["value"]

    def wait_for_event(self, method: str, session: str, timeout_s: float) -> bool:
        """Whether the session has had (or gets within the timeout) an event `method`."""
        deadline = time.monotonic() + timeout_s
        while not any(e["method"] == method for e in self._events.get(session, [])):
            if self._receive(deadline, method) is None:
                return False
        return True

    def drain_events(self, session: str) -> list[dict]:
        """The session's events so far (all that came before the last answer received), forgotten here."""
        while self._receive(time.monotonic(), "events") is not None:
            pass
        return self._events.pop(session, [])

    def _send(self, message: dict) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._send_fd, data):]

    def _receive(self, deadline: float, awaiting: str) -> dict | None:
        """The next message, or None when none came before the deadline; events are filed under
        their session on the way."""
        try:
            message = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if message is None:
            raise BrowserError(self._failure(f"Chromium exited while waiting for {awaiting}"))
        if "method" in message:
            self._events.setdefault(message.get("sessionId"), []).append(message)
        return message

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._receive_fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                buffer += chunk
                *complete, buffer = buffer.split(b"\0")
                for raw in complete:
                    self._messages.put(json.loads(raw))
        self._messages.put(None)  # the browser closed the pipe

    def _failure(self, what: str) -> str:
        self._log.flush()
        self._log.seek(0)
        tail = self._log.read().decode(errors="replace")[-2000:]
        return f"{what} ({self.binary}, exit code {self._process.poll()}); its log ends with:\n{tail}"


def _pipe_above_4() -> tuple[int, int]:
    """A pipe whose descriptors cannot collide with 3 and 4, the numbers the child gets."""
    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5))
        os.close(fd)
    return ends[0], ends[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m egma.browser_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument("--screenshots", type=Path, help="write PAGE_STEM.png for every page into this folder")
    args = parser.parse_args(argv)
    shots = {p: args.screenshots / f"{p.stem}.png" for p in args.pages} if args.screenshots else None
    try:
        reports = check_pages(args.pages, shots)
    except (ChromiumMissing, BrowserError) as error:
        print(f"egma.browser_check: {error}", file=sys.stderr)
        return 2
    for report in reports:
        print(report.summary())
    return 1 if failures(reports) else 0


if __name__ == "__main__":
    sys.exit(main())
