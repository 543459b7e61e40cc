"""A headless Chromium driven over the DevTools protocol, for tests of pages a person opens.

    with Browser() as page:
        page.open(path)                       # file:// URL, waits for the load event
        page.js("document.title")             # evaluate, returning the value
        page.click("#filters button[data-filter=wrong]")
        page.errors                           # console errors and uncaught exceptions so far
        page.screenshot(png_path)

`find_chromium()` gives Debian's `chromium` (or another Chrome) when one is installed; tests
skip with a reason otherwise. Only the standard library and `websockets` are used.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


class Browser:
    """One headless Chromium with one page; a context manager."""

    def __init__(self, width: int = 1280, height: int = 900, timeout: float = 30.0) -> None:
        self.binary = find_chromium()
        if self.binary is None:
            raise RuntimeError("no Chromium found (apt-get install chromium)")
        self.width, self.height, self.timeout = width, height, timeout
        self.errors: list[str] = []
        self._ids = itertools.count(1)

    def __enter__(self) -> Browser:
        from websockets.sync.client import connect

        self._profile = tempfile.mkdtemp(prefix="autoact-chromium-")
        self._proc = subprocess.Popen(
            [self.binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--remote-debugging-port=0",
             f"--window-size={self.width},{self.height}", f"--user-data-dir={self._profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not port_file.is_file() or not port_file.read_text().strip():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        import urllib.request
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                    pages = [t for t in json.loads(response.read()) if t.get("type") == "page"]
                if pages:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("Chromium has no page to drive")
            time.sleep(0.1)
        self._connection = connect(pages[0]["webSocketDebuggerUrl"], max_size=64 * 2**20, open_timeout=self.timeout)
        self._ws = self._connection.__enter__()
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._connection.__exit__(None, None, None)
        finally:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            shutil.rmtree(self._profile, ignore_errors=True)

    # -- protocol ------------------------------------------------------------------------
    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(str(params["entry"].get("text")))

    def call(self, method: str, wait_for: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command; return its result (and, with `wait_for`, wait for that event too)."""
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        result: dict[str, Any] | None = None
        seen = wait_for is None
        deadline = time.monotonic() + self.timeout
        while result is None or not seen:
            message = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result = message.get("result", {})
            elif message.get("method") == wait_for:
                seen = True
            else:
                self._event(message)
        return result

    # -- what tests use ------------------------------------------------------------------
    def open(self, path: Path | str) -> float:
        """Load a file (or URL) and wait for its load event; returns the seconds it took."""
        url = path if isinstance(path, str) and "://" in path else Path(path).resolve().as_uri()
        start = time.perf_counter()
        self.call("Page.navigate", wait_for="Page.loadEventFired", url=url)
        return time.perf_counter() - start

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (an exception there raises here)."""
        out = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in out:
            raise RuntimeError(f"{expression}: {out['exceptionDetails'].get('exception', {}).get('description')}")
        return out.get("result", {}).get("value")

    def click(self, selector: str) -> None:
        if not self.js(f"(() => {{ const n = document.querySelector({json.dumps(selector)}); "
                       "if (!n) return false; n.click(); return true; })()"):
            raise RuntimeError(f"nothing matches {selector!r}")

    def choose(self, selector: str, value: str) -> None:
        """Set a <select> or <input> as a person would, firing its change and input events."""
        self.js(f"(() => {{ const n = document.querySelector({json.dumps(selector)}); n.value = {json.dumps(value)}; "
                "n.dispatchEvent(new Event('input')); n.dispatchEvent(new Event('change')); })()")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.support.browser PAGE.html OUT.png [--click SELECTOR ...]`: a screenshot of a page
    after clicking the given elements in turn (how the README's picture of the viewer is made)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.support.browser")
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--click", action="append", default=[], metavar="SELECTOR")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args(argv)
    with Browser(args.width, args.height) as page:
        page.open(args.page)
        for selector in args.click:
            page.click(selector)
        page.screenshot(args.out)
        if page.errors:
            raise SystemExit(f"console errors: {page.errors}")
    print(args.out)


if __name__ == "__main__":
    main()
