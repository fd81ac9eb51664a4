"""A real OpenAI-compatible HTTP server on 127.0.0.1 with scripted replies, for the generator tests.

`ScriptedServer` serves `/v1/completions`, `/v1/chat/completions` and `/v1/models` from a
`ThreadingHTTPServer` on port 0 in a daemon thread. A script maps a substring of the request's
prompt (or last message) to a list of actions, consumed one per matching request; the last
action repeats once the list runs out. Unmatched requests get "ok". Actions:

- "ok": 200 with `reply(body)` as the text (default: " reply to <prompt tail>");
- "429", "500", "400", "401", "404", …: that status with an OpenAI-style error body;
- "hang": wait `hang_s` seconds, then reply "ok" (longer than the client's timeout);
- "nonjson": 200 with a body that is not JSON; "nochoices": 200 JSON without `choices`.

It records every request (path, headers, JSON body) and the most requests in flight at once.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def closed_port() -> int:
    """A local port with nothing listening (bound, then closed)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _headers(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    """The request headers, names lower-cased."""
    return {k.lower(): v for k, v in handler.headers.items()}


def request_text(body: dict[str, Any]) -> str:
    """The prompt of a completions body, or the concatenated messages of a chat body."""
    if "prompt" in body:
        return str(body["prompt"])
    return "\n".join(str(m.get("content", "")) for m in body.get("messages") or [])


class ScriptedServer:
    def __init__(
        self,
        models: tuple[str, ...] = ("tiny",),
        reply: Callable[[dict[str, Any]], str] | None = None,
        delay_s: float = 0.0,
        hang_s: float = 2.0,
        models_status: int = 200,
    ):
        self.models = list(models)
        self.reply = reply or (lambda body: " reply to " + request_text(body)[-12:])
        self.delay_s = delay_s  # every "ok" reply waits this long (lets concurrency overlap)
        self.hang_s = hang_s
        self.models_status = models_status
        self.rules: list[tuple[str, list[str]]] = []
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -------------------------------------------------------------------------------
    def script(self, match: str, *actions: str) -> ScriptedServer:
        """Requests whose prompt contains `match` get `actions` in turn (the last one repeats)."""
        self.rules.append((match, list(actions)))
        return self

    def _action(self, body: dict[str, Any]) -> str:
        text = request_text(body)
        with self._lock:
            for match, actions in self.rules:
                if match in text:
                    return actions.pop(0) if len(actions) > 1 else actions[0]
        return "ok"

    def completion_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("completions")]

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> ScriptedServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, payload: bytes, ctype: str = "application/json") -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def _json(self, status: int, obj: Any) -> None:
                self._send(status, json.dumps(obj).encode())

            def do_GET(self) -> None:
                with server._lock:
                    server.requests.append({"path": self.path, "headers": _headers(self), "body": None})
                if self.path.rstrip("/").endswith("/models"):
                    if server.models_status != 200:
                        self._json(server.models_status, {"error": {"message": "no"}})
                        return
                    data = [
                        {"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in server.models
                    ]
                    self._json(200, {"object": "list", "data": data})
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                with server._lock:
                    server.requests.append({"path": self.path, "headers": _headers(self), "body": body})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._handle(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _handle(self, body: dict[str, Any]) -> None:
                chat = self.path.rstrip("/").endswith("/chat/completions")
                if not chat and not self.path.rstrip("/").endswith("/completions"):
                    self._json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                action = server._action(body)
                if action.isdigit():
                    status = int(action)
                    self._json(
                        status, {"error": {"message": f"scripted {status}", "type": "test", "code": status}}
                    )
                    return
                if action == "nonjson":
                    self._send(200, b"<html>gateway hiccup</html>", "application/json")
                    return
                if action == "nochoices":
                    self._json(200, {"id": "x", "object": "text_completion", "model": body.get("model")})
                    return
                if action == "hang":
                    time.sleep(server.hang_s)
                elif server.delay_s:
                    time.sleep(server.delay_s)
                text = server.reply(body)
                choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "logprobs": None}
                if chat:
                    choice["message"] = {"role": "assistant", "content": text}
                else:
                    choice["text"] = text
                usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
                obj = "chat.completion" if chat else "text_completion"
                self._json(
                    200,
                    {
                        "id": "cmpl-1",
                        "object": obj,
                        "created": 0,
                        "model": body.get("model"),
                        "choices": [choice],
                        "usage": usage,
                    },
                )

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # do not wait for a hanging handler on close
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
