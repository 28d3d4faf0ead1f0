"""A do-nothing S3-protocol server on loopback: it speaks just enough S3 (multipart
create / part / complete / abort, PUT, HEAD, list uploads) for boto3 to upload to it,
reads every byte it is sent and keeps none. Against it, an upload's speed is the
client's own ceiling: tar, hashing, botocore, and the loopback socket.
"""

from __future__ import annotations

import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CHUNK = 1 << 20


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.uploads: dict[str, dict] = {}  # upload id -> {"key", "meta", "sizes"}
        self.objects: dict[str, dict] = {}  # key -> {"size", "meta"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _State

    def log_message(self, *args) -> None:
        pass

    def _drain(self) -> int:
        remaining = int(self.headers.get("Content-Length", 0))
        total = remaining
        view = memoryview(bytearray(CHUNK))
        while remaining:
            got = self.rfile.readinto(view[:min(CHUNK, remaining)])
            if not got:
                break
            remaining -= got
        return total

    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _parts(self) -> tuple[str, dict]:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        return url.path, query

    def _meta(self) -> dict:
        return {k: v for k, v in self.headers.items() if k.lower().startswith("x-amz-meta-")
                or k.lower() == "x-amz-storage-class"}

    def do_POST(self) -> None:
        path, query = self._parts()
        self._drain()
        if "uploads" in query:
            upload = uuid.uuid4().hex
            with self.state.lock:
                self.state.uploads[upload] = {"key": path, "meta": self._meta(), "sizes": {}}
            self._reply(200, (f"<InitiateMultipartUploadResult><UploadId>{upload}</UploadId>"
                              "</InitiateMultipartUploadResult>").encode())
        elif "uploadId" in query:
            with self.state.lock:
                upload = self.state.uploads.pop(query["uploadId"])
                self.state.objects[path] = {"size": sum(upload["sizes"].values()),
                                            "meta": upload["meta"]}
            self._reply(200, b"<CompleteMultipartUploadResult><ETag>\"x-1\"</ETag>"
                             b"</CompleteMultipartUploadResult>")
        else:
            self._reply(400)

    def do_PUT(self) -> None:
        path, query = self._parts()
        size = self._drain()
        checksum = {k: v for k, v in self.headers.items()
                    if k.lower().startswith("x-amz-checksum-")}
        if "uploadId" in query:
            with self.state.lock:
                self.state.uploads[query["uploadId"]]["sizes"][int(query["partNumber"])] = size
        else:
            with self.state.lock:
                self.state.objects[path] = {"size": size, "meta": self._meta()}
        self._reply(200, headers={"ETag": f'"{uuid.uuid4().hex}"', **checksum})

    def do_HEAD(self) -> None:
        path, _ = self._parts()
        found = self.state.objects.get(path)
        if found is None:
            self._reply(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(found["size"]))
        for name, value in found["meta"].items():
            self.send_header(name, value)
        self.end_headers()

    def do_GET(self) -> None:
        _, query = self._parts()
        if "uploads" in query:
            self._reply(200, b"<ListMultipartUploadsResult></ListMultipartUploadsResult>")
        else:
            self._reply(404)

    def do_DELETE(self) -> None:
        self._drain()
        self._reply(204)


class Sink:
    """``with Sink() as endpoint:`` a running sink on 127.0.0.1 and a free port."""

    def __enter__(self) -> str:
        handler = type("Handler", (_Handler,), {"state": _State()})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
