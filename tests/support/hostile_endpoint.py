"""A real HTTP endpoint that misbehaves on purpose, in front of a real upstream server or alone.

`HostileEndpoint` listens on loopback and answers `/v1/models` and `/v1/completions`.
Each request takes the next fault of its path's queue (`fault("completions", "503", 3)`
queues three), or the path's standing fault (`always(...)`, or `sometimes(..., every=k)`
for every k-th request) when the queue is empty; with no fault it forwards the request
unchanged to `upstream` (a real FastChat server), or, without one, answers with a small
well-formed completion of its own. `delay` seconds pass before every answer. Every request
is counted per path, so tests can assert how many reached the server.

Faults: `503`, `401`, `hang` (accept, never answer), `close` (the connection closed without an
answer, as a server does to a kept-alive connection it times out), `html` (a 200 web page),
`non_json`, `empty_choices`, `no_id` (models without ids), `drop_logprobs`,
`misalign_logprobs` (token_logprobs one shorter than tokens), `shift_logprobs` (tokens
of another text).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class HostileEndpoint:
    def __init__(self, upstream: str | None = None, model: str = "hostile") -> None:
        self.upstream = upstream.rstrip("/") if upstream else None
        self.model = model
        self.queues: dict[str, deque[str]] = defaultdict(deque)
        self.standing: dict[str, str | None] = {}
        self.periodic: dict[str, tuple[str, int]] = {}
        self.counts: dict[str, int] = defaultdict(int)
        self.delay = 0.0
        self._lock = threading.Lock()
        self._release = threading.Event()  # set on close: hung requests may end
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def fault(self, path: str, kind: str, times: int = 1) -> "HostileEndpoint":
        with self._lock:
            self.queues[path].extend([kind] * times)
        return self

    def always(self, path: str, kind: str | None) -> "HostileEndpoint":
        with self._lock:
            self.standing[path] = kind
        return self

    def sometimes(self, path: str, kind: str, every: int) -> "HostileEndpoint":
        with self._lock:
            self.periodic[path] = (kind, every)
        return self

    def __enter__(self) -> "HostileEndpoint":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def _next_fault(self, path: str) -> str | None:
        with self._lock:
            self.counts[path] += 1
            queue = self.queues[path]
            if queue:
                return queue.popleft()
            kind, every = self.periodic.get(path, (None, 0))
            if kind and self.counts[path] % every == 0:
                return kind
            return self.standing.get(path)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._serve(None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._serve(self.rfile.read(length))

            def _serve(self, body: bytes | None) -> None:
                path = self.path.rstrip("/").rsplit("/", 1)[-1]
                fault = endpoint._next_fault(path)
                if endpoint.delay:
                    time.sleep(endpoint.delay)
                if fault == "hang":
                    endpoint._release.wait(600)
                    return
                if fault == "close":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "503":
                    return self._send(503, {"object": "error", "message": "server overloaded"})
                if fault == "401":
                    return self._send(401, {"error": {"message": "Incorrect API key provided",
                                                      "type": "invalid_request_error"}})
                if fault == "html":
                    return self._send(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")
                if fault == "non_json":
                    return self._send(200, b"this is not json", "application/json")
                status, data = self._answer(path, body)
                if fault == "no_id" and path == "models":
                    data = {"object": "list", "data": [{"object": "model"}]}
                elif fault == "empty_choices":
                    data = {**data, "choices": []}
                elif fault in ("drop_logprobs", "misalign_logprobs", "shift_logprobs"):
                    for choice in data.get("choices", []):
                        lp = choice.get("logprobs") or {}
                        if fault == "drop_logprobs":
                            choice["logprobs"] = None
                        elif fault == "misalign_logprobs" and lp.get("token_logprobs"):
                            lp["token_logprobs"] = lp["token_logprobs"][:-2]
                        elif lp.get("tokens"):
                            lp["tokens"] = ["zz"] * len(lp["tokens"])
                self._send(status, data)

            def _answer(self, path: str, body: bytes | None) -> tuple[int, dict[str, Any]]:
                if endpoint.upstream is not None:
                    request = urllib.request.Request(f"{endpoint.upstream}/{path}", data=body,
                                                     headers={"Content-Type": "application/json"})
                    try:
                        with urllib.request.urlopen(request, timeout=600) as resp:
                            return resp.status, json.loads(resp.read())
                    except urllib.error.HTTPError as err:
                        return err.code, json.loads(err.read() or b"{}")
                if path == "models":
                    return 200, {"object": "list", "data": [{"id": endpoint.model, "object": "model"}]}
                params = json.loads(body or b"{}")
                prompt = params.get("prompt")
                prompt = prompt[0] if isinstance(prompt, list) else str(prompt or "")
                words = prompt.split(" ")
                tokens = [w if i == 0 else " " + w for i, w in enumerate(words)]
                choice: dict[str, Any] = {"index": 0, "text": " yes", "finish_reason": "stop", "logprobs": None}
                if params.get("echo"):
                    choice["text"] = prompt + " yes"
                    choice["logprobs"] = {"tokens": [*tokens, " yes"], "text_offset": [],
                                          "token_logprobs": [None] + [-1.0] * len(tokens), "top_logprobs": []}
                usage = {"prompt_tokens": len(tokens), "completion_tokens": 1, "total_tokens": len(tokens) + 1}
                return 200, {"id": "cmpl-1", "object": "text_completion", "created": int(time.time()),
                             "model": endpoint.model, "choices": [choice], "usage": usage}

            def _send(self, status: int, data: Any, kind: str = "application/json") -> None:
                payload = data if isinstance(data, bytes) else json.dumps(data).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler
