"""The HTTP half of `OpenAICompatGenerator`: one client call parsed or turned into a `_Failure`,
and our retry policy around it.

Retries are ours, not the client's (it is built with `max_retries=0`), so the counts in `stats`
are exact: 429, 5xx, connection errors, timeouts and malformed bodies (non-JSON, no choices) are
retried up to `max_retries` times with exponential backoff and jitter (`backoff_base_s`, doubled
per attempt, capped at `backoff_max_s`, at least a 429's Retry-After). 400/401/403/404/422 are not
retried. The API key never leaves `_Secret` unscrubbed (`_scrub` takes it out of messages).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from typing import Any

# the generator's logger: what it says about retries is silenced with the generator's (report/judge.py)
log = logging.getLogger("steper.generators.openai_compat")

RETRY_STATUS = {408, 409, 429}  # plus every 5xx


class _Secret:
    """Holds the API key; prints as *** so it cannot leak through repr/vars."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"


class _Failure(Exception):
    """One failed attempt: `kind` (timeout, connection, http_429, malformed, …), retryable or not."""

    def __init__(
        self, kind: str, message: str, retry: bool, status: int | None = None, retry_after: float = 0.0
    ):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry = retry
        self.status = status
        self.retry_after = retry_after


class _ServerLost(Exception):
    """The server stopped answering mid-run (connection errors after every retry)."""

    def __init__(self, failure: _Failure):
        super().__init__(failure.message)
        self.failure = failure


def _retry_after(response: Any) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except (TypeError, ValueError, AttributeError):
        return 0.0


class OpenAIHttp:
    """HTTP calls with retries (a mixin of `OpenAICompatGenerator`). It uses the generator's
    `_client`, `_key`, `timeout_s`, `max_retries`, `backoff_base_s`, `backoff_max_s`, `stats`
    (`errors` by kind, `retries`, through `Generator._count`) and `_lost` (set once the server
    stopped answering)."""

    _client: Any
    _key: _Secret
    timeout_s: float
    max_retries: int
    backoff_base_s: float
    backoff_max_s: float
    stats: dict[str, Any]
    _stats_lock: threading.Lock
    _lost: _Failure | None

    def _scrub(self, text: str) -> str:
        key = self._key.get()
        return text.replace(key, "***") if key and key != "EMPTY" else text

    def _http(self, fn) -> Any:
        """Run one client call; return its parsed JSON body, or raise a _Failure."""
        import openai

        try:
            raw = fn()
            text = raw.http_response.text
        except openai.APITimeoutError as e:
            connect = type(e.__cause__).__name__ == "ConnectTimeout"
            raise _Failure(
                "connection" if connect else "timeout", f"timed out after {self.timeout_s}s", True
            ) from None
        except openai.APIConnectionError as e:
            cause = f": {e.__cause__}" if e.__cause__ else ""
            raise _Failure("connection", self._scrub(f"connection error{cause}"), True) from None
        except openai.APIStatusError as e:
            status = e.status_code
            retry = status in RETRY_STATUS or status >= 500
            msg = self._scrub(f"HTTP {status}: {str(e)[:300]}")
            raise _Failure(f"http_{status}", msg, retry, status, _retry_after(e.response)) from None
        except openai.APIResponseValidationError as e:
            raise _Failure("malformed", self._scrub(str(e)[:300]), True) from None
        try:
            return json.loads(text)
        except ValueError:
            raise _Failure("malformed", f"non-JSON body: {self._scrub(text[:120])!r}", True) from None

    def _delay(self, attempt: int, retry_after: float = 0.0) -> float:
        d = min(self.backoff_max_s, self.backoff_base_s * (2**attempt))
        d = d / 2 + random.uniform(0, d / 2)
        return max(d, min(retry_after, self.backoff_max_s))

    def _with_retries(self, fn) -> Any:
        """`fn()` with our retry policy; returns its result or raises the last _Failure.

        Once another request has found the server gone (`_lost`), no more retries: the run is
        ending anyway, and each one would only wait out its backoff."""
        attempt = 0
        while True:
            try:
                return fn()
            except _Failure as f:
                with self._stats_lock:
                    errors = self.stats["errors"]
                    errors[f.kind] = errors.get(f.kind, 0) + 1
                if not f.retry or attempt >= self.max_retries or self._lost is not None:
                    raise
                log.debug("attempt %d failed (%s); retrying", attempt + 1, f.message)
                time.sleep(self._delay(attempt, f.retry_after))
                attempt += 1
                self._count(retries=1)

    def _list_models(self) -> Any:
        """GET /models with retries: the parsed body, or a _Failure."""
        return self._with_retries(lambda: self._http(lambda: self._client.models.with_raw_response.list()))

    @staticmethod
    def _model_ids(body: Any) -> list[str] | None:
        """The ids of an OpenAI `/models` body ({"data": [{"id": ...}, ...]}), None if it is not one."""
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not all(isinstance(m, dict) and "id" in m for m in data):
            return None
        return [str(m["id"]) for m in data]

    def served_models(self) -> list[str] | None:
        """The model ids `/models` lists, or None when it does not answer (one attempt)."""
        try:
            return self._model_ids(self._http(lambda: self._client.models.with_raw_response.list()))
        except _Failure:
            return None
