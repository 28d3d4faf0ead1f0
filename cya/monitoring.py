"""Pings to a monitoring service, in the Healthchecks convention.

With ``[monitoring] ping_url = URL`` a backup run sends:

* ``URL/start`` when the backup begins (after cya holds the tree lock);
* ``URL`` when it ends with exit 0;
* ``URL/fail`` when it ends with any other exit but 75, the last lines of cya's log
  (at most ``BODY_LIMIT`` bytes) as the POST body;
* ``URL/log`` when it ends with exit 75 (another run holds the lock), a one-line body
  saying so.

Why ``/log`` for exit 75, and no ``/75``: Healthchecks treats ``/<exit-status>`` with
a non-zero status as a failure, but a 75 is not a failed backup — the run holding the
lock is working and sends its own success or failure, so ``/75`` would raise a false
alarm every time a long backup overlaps the next cron slot. A plain success would be
wrong too (this invocation backed nothing up), and would hide a stuck lock holder.
``/log`` records the event in the check's log without changing its state; if the
holder never finishes, the missing success ping is caught by the check's own period
and grace time. No ``/start`` is sent before the lock is taken, so a 75 leaves no run
open.

Start and finish carry the same ``?rid=<uuid>`` so that the service pairs them (and
measures the run's duration). Each ping is a POST with a short ``timeout`` per attempt,
retried ``attempts`` times on a network error, a timeout or a 5xx answer (never on a
4xx: a wrong URL stays wrong). Nothing here raises: a monitoring failure is logged as
a warning and never fails the backup. The ping URL is a secret of sorts (anyone who
knows it can ping), so messages name only its scheme and host.
"""

from __future__ import annotations

import collections
import logging
import time
import uuid
from urllib.parse import urlencode, urlsplit, urlunsplit

from cya import __version__
from cya.config import Monitoring
from cya.errors import EXIT_TEMPFAIL

log = logging.getLogger("cya")
TIMEOUT_SECONDS = 10.0
ATTEMPTS = 3
PAUSE_SECONDS = 1.0  # before the second attempt; doubled for each one after
BODY_LIMIT = 10_000  # bytes of log sent with /fail


class Monitor:
    """The pings of one run. Every method returns whether the service took the ping."""

    def __init__(self, ping_url: str, *, timeout: float = TIMEOUT_SECONDS,
                 attempts: int = ATTEMPTS, pause: float = PAUSE_SECONDS,
                 run_id: str | None = None):
        self.ping_url = ping_url
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.pause = pause
        self.run_id = run_id or str(uuid.uuid4())

    @classmethod
    def from_settings(cls, monitoring: Monitoring) -> Monitor:
        return cls(monitoring.ping_url)

    @property
    def enabled(self) -> bool:
        return bool(self.ping_url)

    def start(self) -> bool:
        """The backup begins (call once the tree lock is held)."""
        return self._ping("start", "")

    def success(self, body: str = "") -> bool:
        """The run ended with exit 0; ``body`` (a summary) is optional."""
        return self._ping("", body)

    def failure(self, body: str) -> bool:
        """The run failed; ``body`` is the end of the log (cut to BODY_LIMIT bytes)."""
        return self._ping("fail", body)

    def busy(self, body: str = "") -> bool:
        """The run ended with exit 75: logged, the check's state unchanged (see above)."""
        return self._ping("log", body or "cya: skipped: another cya run holds the lock",
                          with_run_id=False)

    def finish(self, exit_code: int, body: str = "") -> bool:
        """Send the ping that ends a run with ``exit_code``: success, busy or failure."""
        if exit_code == 0:
            return self.success(body)
        if exit_code == EXIT_TEMPFAIL:
            return self.busy(body)
        return self.failure(body)

    def url(self, suffix: str, with_run_id: bool = True) -> str:
        """The ping URL with ``/suffix`` added to its path and the run id to its query."""
        parts = urlsplit(self.ping_url)
        path = parts.path.rstrip("/") + (f"/{suffix}" if suffix else "")
        query = parts.query
        if with_run_id:
            query = "&".join(q for q in (query, urlencode({"rid": self.run_id})) if q)
        return urlunsplit((parts.scheme, parts.netloc, path or "/", query, ""))

    def _ping(self, suffix: str, body: str, with_run_id: bool = True) -> bool:
        if not self.enabled:
            return False
        what = f"/{suffix}" if suffix else "success"
        try:
            url = self.url(suffix, with_run_id)
            data = last_bytes(body, BODY_LIMIT)
            for attempt in range(1, self.attempts + 1):
                retry, reason = self._send(url, data)
                if reason is None:
                    return True
                if not retry or attempt == self.attempts:
                    break
                time.sleep(self.pause * 2 ** (attempt - 1))
        except Exception as error:  # noqa: BLE001 - monitoring must never fail a run
            reason = f"{type(error).__name__}: {error}"
        log.warning("monitoring: the %s ping to %s failed: %s; the backup is not affected",
                    what, self._where(), reason)
        return False

    def _send(self, url: str, data: bytes) -> tuple[bool, str | None]:
        """POST once. Return (worth retrying, why it failed) — (False, None) when it worked."""
        # imported here: every backup loads this module, few send pings (http.client and
        # urllib.request are a tenth of cya's start-up)
        import http.client
        import urllib.error
        import urllib.request

        request = urllib.request.Request(url, data=data, method="POST", headers={
            "User-Agent": f"cya/{__version__}",
            "Content-Type": "text/plain; charset=utf-8",
        })
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read(1024)
            return False, None
        except urllib.error.HTTPError as error:
            return error.code >= 500, f"HTTP {error.code} {error.reason}"
        except urllib.error.URLError as error:
            return True, str(error.reason)
        except (TimeoutError, OSError, http.client.HTTPException) as error:
            return True, f"{type(error).__name__}: {error}" if str(error) else type(error).__name__

    def _where(self) -> str:
        parts = urlsplit(self.ping_url)
        return f"{parts.scheme}://{parts.hostname or '?'}"


def last_bytes(text: str, limit: int) -> bytes:
    """The end of ``text`` as UTF-8, at most ``limit`` bytes, starting at a line start."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    cut = data[-limit:]
    newline = cut.find(b"\n")
    if 0 <= newline < len(cut) - 1:
        cut = cut[newline + 1:]
    return cut.decode("utf-8", "ignore").encode("utf-8")


class LogTail(logging.Handler):
    """Keeps the last lines cya logs, for the body of a failure ping.

    Attach it to the ``cya`` logger for the run: ``logging.getLogger("cya").addHandler(tail)``;
    ``text()`` gives the lines kept. It keeps at most ``limit`` bytes.
    """

    def __init__(self, limit: int = BODY_LIMIT, level: int = logging.INFO):
        super().__init__(level)
        self.limit = limit
        self.lines: collections.deque[str] = collections.deque()
        self.size = 0
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            for line in self.format(record).splitlines():
                self.lines.append(line)
                self.size += len(line.encode("utf-8", "replace")) + 1
            while self.size > self.limit and len(self.lines) > 1:
                self.size -= len(self.lines.popleft().encode("utf-8", "replace")) + 1
        except Exception:  # noqa: BLE001 - logging must not fail the run
            self.handleError(record)

    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")
