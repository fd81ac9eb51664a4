"""A tiny OpenAI-compatible server on 127.0.0.1 (port 0, a daemon thread) with scripted replies.

`reply(path, text)` returns (status, content): `text` is the prompt (completions) or the joined
message contents (chat). Serves POST /v1/chat/completions, POST /v1/completions, GET /v1/models.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class JudgeServer:
    def __init__(self, reply: Callable[[str, str], tuple[int, str]], model: str = "judge-model"):
        self.reply = reply
        self.model = model
        self.requests: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with server._lock:
                    server.requests.append((self.path, body))
                if self.path == "/v1/chat/completions":
                    text = "\n".join(str(m.get("content", "")) for m in body.get("messages") or [])
                elif self.path == "/v1/completions":
                    text = str(body.get("prompt", ""))
                else:
                    self._send(404, {"error": {"message": "not found"}})
                    return
                status, content = server.reply(self.path, text)
                if status != 200:
                    self._send(status, {"error": {"message": f"scripted {status}", "type": "server_error"}})
                    return
                if self.path == "/v1/chat/completions":
                    choice = {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                    obj = "chat.completion"
                else:
                    choice = {"index": 0, "text": content, "finish_reason": "stop"}
                    obj = "text_completion"
                self._send(
                    200,
                    {
                        "id": "x",
                        "object": obj,
                        "created": 0,
                        "model": server.model,
                        "choices": [choice],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                    },
                )

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> JudgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
