"""A real vLLM server as a subprocess, for the integration tests and benchmarks/eval_real_bench.py.

`VLLMServer(model, port)` runs scripts/serve_vllm.sh (the same script `make serve` runs: the
.venv-vllm interpreter, 127.0.0.1, float32, the served name = the registry name) in its own process
group, waits until `GET /v1/models` lists the served model (bounded by `start_timeout_s`), and
stops it on `stop()` / leaving the `with` block: SIGTERM to the group, SIGKILL after a grace
period. `kill()` is SIGKILL at once (a crashed server). Its output goes to a log file, whose tail
is in every error.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "scripts" / "serve_vllm.sh"
VLLM_VENV = REPO / ".venv-vllm"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def served_models(base_url: str, timeout_s: float = 2.0) -> list[str] | None:
    """The ids `GET <base_url>/models` lists, or None when nothing (valid) answers."""
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=timeout_s) as r:
            return [str(m["id"]) for m in json.loads(r.read())["data"]]
    except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError):
        return None


class VLLMServer:
    """One vLLM server process serving `model` (a registry name or a folder) on 127.0.0.1:`port`."""

    def __init__(
        self,
        model: str,
        port: int | None = None,
        *,
        log_path: str | Path,
        start_timeout_s: float = 420.0,
        env: dict[str, str] | None = None,
    ):
        self.model = model
        self.name = Path(model).name if os.path.isdir(model) else model
        self.port = int(port) if port else free_port()
        self.log_path = Path(log_path)
        self.start_timeout_s = float(start_timeout_s)
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.start_seconds: float | None = None  # launch → first model list, of the last start

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def start(self) -> VLLMServer:
        """Launch and wait until the model is listed; RuntimeError (with the log's tail) if the
        process exits first or the timeout passes (the process is then stopped)."""
        if not (VLLM_VENV / ".installed").is_file():
            raise RuntimeError(f"{VLLM_VENV} is not set up: run `make vllm-env`")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(self.env if self.env is not None else os.environ)
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["bash", str(SERVE), self.model, str(self.port)],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches the engine workers too
            )
        deadline = t0 + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"vLLM server exited with status {rc} while starting:\n{self.log_tail()}")
            if self.name in (served_models(self.base_url) or []):
                self.start_seconds = time.monotonic() - t0
                return self
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(
            f"vLLM server not ready after {self.start_timeout_s:.0f} s on {self.base_url}:\n{self.log_tail()}"
        )

    def _signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole server (API process and engine) at once, as a crash would."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the server's process group; SIGKILL what is left after `grace_s`."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        # the engine core and workers are children in the same group: make sure none outlives us
        self._signal_group(signal.SIGKILL)
        try:
            self.proc.wait(timeout=30)
        finally:
            self.proc = None

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
