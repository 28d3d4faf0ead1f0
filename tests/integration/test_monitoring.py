"""Monitoring pings against a real HTTP server on 127.0.0.1: what is sent, and what a
server that refuses, fails or never answers does to the run (nothing but a warning)."""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from cya import config
from cya.errors import ConfigError
from cya.monitoring import BODY_LIMIT, LogTail, Monitor


@dataclass
class Ping:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    content_type: str


@dataclass
class Recorder:
    """What the server received; ``statuses`` are answered in turn (then 200)."""

    pings: list[Ping] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    url: str = ""


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            recorder.pings.append(Ping(self.command, parts.path, parse_qs(parts.query), body,
                                       self.headers.get("Content-Type", "")))
            status = recorder.statuses.pop(0) if recorder.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        do_GET = do_POST = do_HEAD = _record

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{httpd.server_address[1]}/ping/0b3e1c52-uuid"
    try:
        yield recorder
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket that accepts connections and never says anything."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/ping/abc"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def test_start_success_and_failure_pings(server):
    run = Monitor(server.url)
    assert run.start()
    assert run.success("backup 2024-03-05 03:17 done")
    failed = Monitor(server.url)
    failed.start()
    assert failed.failure("line 1\nduplicity: disk full\n")
    start, success, start2, failure = server.pings
    assert (start.method, start.path, start.body) == ("POST", "/ping/0b3e1c52-uuid/start", b"")
    assert (success.method, success.path) == ("POST", "/ping/0b3e1c52-uuid")
    assert success.body == b"backup 2024-03-05 03:17 done"
    assert (failure.path, failure.body) == ("/ping/0b3e1c52-uuid/fail",
                                            b"line 1\nduplicity: disk full\n")
    assert failure.content_type.startswith("text/plain")
    # one run id links the start and finish of each run, and two runs differ
    assert start.query["rid"] == success.query["rid"] == [run.run_id]
    assert start2.query["rid"] == failure.query["rid"] == [failed.run_id]
    assert run.run_id != failed.run_id


def test_finish_chooses_the_ping_by_exit_code(server):
    run = Monitor(server.url)
    assert run.finish(0) and run.finish(1, "it broke") and run.finish(2, "bad config")
    assert run.finish(75)
    paths = [p.path.removeprefix("/ping/0b3e1c52-uuid") for p in server.pings]
    assert paths == ["", "/fail", "/fail", "/log"]
    busy = server.pings[-1]
    assert "rid" not in busy.query  # not a run: the check's state stays as it is
    assert b"another cya run holds the lock" in busy.body


def test_the_failure_body_is_the_end_of_the_log_within_10_kb(server):
    log_text = "".join(f"2024-03-05 03:17:{i % 60:02d} line {i} ünïcode\n" for i in range(2000))
    Monitor(server.url).failure(log_text)
    body = server.pings[0].body
    assert len(body) <= BODY_LIMIT == 10_000
    assert body.endswith("line 1999 ünïcode\n".encode())
    assert body.startswith(b"2024-03-05")  # cut at a line start
    assert log_text.encode().endswith(body)


def test_a_url_with_a_query_keeps_it(server):
    Monitor(server.url + "?create=1").start()
    ping = server.pings[0]
    assert ping.path.endswith("/start")
    assert ping.query["create"] == ["1"] and len(ping.query["rid"]) == 1


def test_a_5xx_answer_is_retried_and_a_4xx_is_not(server, caplog):
    server.statuses = [503, 500]
    assert Monitor(server.url, pause=0.05).start()
    assert len(server.pings) == 3
    server.pings.clear()
    server.statuses = [404]
    with caplog.at_level(logging.WARNING, logger="cya"):
        assert not Monitor(server.url, pause=0.05).success()
    assert len(server.pings) == 1
    assert "HTTP 404" in caplog.text
    assert "0b3e1c52" not in caplog.text  # the ping URL's secret part is never logged


def test_a_server_that_never_answers_costs_only_the_timeout(silent_server, caplog):
    run = Monitor(silent_server, timeout=1.0, attempts=1)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="cya"):
        assert run.start() is False
    assert time.monotonic() - started < 3
    assert "monitoring: the /start ping to http://127.0.0.1 failed" in caplog.text
    assert "the backup is not affected" in caplog.text


def test_retries_are_bounded(silent_server, caplog):
    run = Monitor(silent_server, timeout=0.5, attempts=3, pause=0.1)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="cya"):
        assert run.failure("x") is False
    assert time.monotonic() - started < 3 * 0.5 + 0.3 + 2
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_an_unreachable_url_only_warns(caplog):
    run = Monitor(f"http://127.0.0.1:{closed_port()}/ping/abc", attempts=2, pause=0.05)
    with caplog.at_level(logging.WARNING, logger="cya"):
        assert run.start() is False
        assert run.finish(1, "body") is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "refused" in warnings[0].lower()


def test_no_url_sends_nothing():
    run = Monitor("")
    assert not run.enabled
    assert run.start() is False and run.finish(0) is False


def test_log_tail_keeps_the_last_lines_within_its_limit():
    tail = LogTail(limit=200)
    logger = logging.getLogger("cya.test-monitoring")
    logger.setLevel(logging.INFO)
    logger.addHandler(tail)
    try:
        for i in range(50):
            logger.info("message %d", i)
    finally:
        logger.removeHandler(tail)
    text = tail.text()
    assert len(text.encode()) <= 200
    assert text.rstrip().endswith("INFO message 49")
    assert "INFO message 10\n" not in text and "INFO message 0\n" not in text


# -- config ------------------------------------------------------------------------

def load(tmp_path, text: str) -> config.Settings:
    path = tmp_path / "config.toml"
    path.write_text('tree = "/t"\nsources = ["/s"]\nencryption = { mode = "none" }\n' + text)
    path.chmod(0o600)
    return config.load(path)


def test_monitoring_config(tmp_path):
    settings = load(tmp_path, '[monitoring]\nping_url = "https://hc-ping.com/0b3e1c52"\n')
    assert settings.monitoring.ping_url == "https://hc-ping.com/0b3e1c52"
    assert Monitor.from_settings(settings.monitoring).enabled
    assert not load(tmp_path, "").monitoring.enabled


@pytest.mark.parametrize("text, expected", [
    ('[monitoring]\nping_url = "hc-ping.com/abc"\n', "monitoring.ping_url: 'hc-ping.com/abc' is "
                                                     "not an http:// or https:// URL"),
    ('[monitoring]\nping_url = 3\n', "monitoring.ping_url: must be a string"),
    ('[monitoring]\nurl = "https://x"\n', "monitoring.url: unknown key"),
])
def test_monitoring_config_errors_name_the_key(tmp_path, text, expected):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert expected in caught.value.one_line()


def test_nothing_here_raises(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("something unexpected")

    monkeypatch.setattr(urllib.request, "urlopen", broken)
    with caplog.at_level(logging.WARNING, logger="cya"):
        assert Monitor("http://127.0.0.1:1/x").start() is False
    assert "RuntimeError: something unexpected" in caplog.text
