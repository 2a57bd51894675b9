"""Headless Chromium driven over the DevTools protocol on a pipe (no network port, no downloads).

    with Chromium() as browser:
        browser.open("file:///tmp/view.html", width=800, height=600)
        browser.evaluate("viewer.ready")            # awaits a promise, returns its JSON value
        png = browser.screenshot()                  # PNG bytes of the viewport

Chromium reads protocol messages (JSON, each ended by a NUL byte) from its file descriptor 3 and
writes answers and events to descriptor 4 (`--remote-debugging-pipe`). Used by tests/test_viewer.py
and to make docs/viewer.png (`python -m tests.chromium VIEW.html OUT.png [WIDTHxHEIGHT] [#STATE]`).
"""
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--force-device-scale-factor=1", "--remote-debugging-pipe")
TIMEOUT_S = 60


class BrowserError(RuntimeError):
    """Chromium died, answered with an error, or a page script threw."""


def find_chromium() -> str | None:
    """Path of a Chromium (or Chrome) executable on PATH, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """One headless Chromium process with one page (tab) attached in flat session mode."""

    def __init__(self, executable: str | None = None):
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise BrowserError(f"no Chromium on PATH (looked for {', '.join(CHROMIUM_NAMES)})")
        self.next_id = 0
        self.buffer = b""

    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix="srcnn_np_chromium_")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        # the child's ends, moved above 4 so that putting them at 3 and 4 cannot overwrite either
        child_r, child_w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5) for fd in (to_browser_r, from_browser_w))
        os.close(to_browser_r)
        os.close(from_browser_w)

        def map_pipes():  # in the child: the ends at 3 and 4, inheritable (dup2); Python's own fds are not
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        self.process = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=map_pipes)
        os.close(child_r)
        os.close(child_w)
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self.call("Page.enable", session=True)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        try:
            self.call("Browser.close")
        except BrowserError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.to_browser)
        os.close(self.from_browser)
        shutil.rmtree(self.profile, ignore_errors=True)

    def call(self, method: str, session: bool = False, **params) -> dict:
        """Send one command (to the page's session if `session`) and return its result."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def wait_event(self, method: str) -> dict:
        """Read messages until the event `method` arrives; return its params."""
        while True:
            message = self._read_message()
            if message.get("method") == method:
                return message.get("params", {})

    def _read_message(self) -> dict:
        while b"\0" not in self.buffer:
            ready, _, _ = select.select([self.from_browser], [], [], TIMEOUT_S)
            if not ready:
                raise BrowserError(f"no answer from Chromium in {TIMEOUT_S} s")
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium exited (status {self.process.poll()})")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str, width: int, height: int) -> None:
        """Load `url` in a width x height viewport (CSS pixels = device pixels) and wait for its load event."""
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", session=True, url=url)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        """Evaluate a JavaScript expression in the page, awaiting a promise; its value (JSON-able)."""
        result = self.call("Runtime.evaluate", session=True, expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{expression}: {details.get('exception', {}).get('description', details.get('text'))}")
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        """The viewport as PNG bytes."""
        return base64.b64decode(self.call("Page.captureScreenshot", session=True, format="png")["data"])


USAGE = "usage: python -m tests.chromium VIEW.html OUT.png [WIDTHxHEIGHT] ['#zoom=4&cx=..&cy=..&slider=..']"


def main(argv: list[str]) -> int:
    """Screenshot a viewer page once it is drawn (see USAGE); the fragment sets the view."""
    if not 2 <= len(argv) <= 4:
        print(USAGE, file=sys.stderr)
        return 2
    html, out = argv[:2]
    width, height = map(int, (argv[2] if len(argv) > 2 else "900x600").split("x"))
    state = argv[3] if len(argv) > 3 else ""
    with Chromium() as browser:
        browser.open("file://" + os.path.abspath(html) + state, width, height)
        browser.evaluate("viewer.ready")
        with open(out, "wb") as f:
            f.write(browser.screenshot())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
