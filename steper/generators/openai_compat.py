"""Any OpenAI-compatible server as a generator: vLLM, TGI, SGLang, or OpenAI itself.

Two request shapes (`api`):
- `completions` (default): the prompt rendered as plain text (`...\\nA: <prefix>`), or through a
  local tokenizer's chat template when `tokenizer:` is set and `chat` allows it, sent to
  `/v1/completions`. This is the exact text the student trains on, prefix included, and works on
  every server that serves completions. (Chat-template text already carries its special tokens,
  so `add_special_tokens: false` goes with it, a vLLM option.)
- `chat`: `/v1/chat/completions` with the prompt as the user message; when the reasoning so far is
  non-empty it goes in as a final assistant message that the model continues, with vLLM's
  `continue_final_message: true, add_generation_prompt: false`. OpenAI proper does not support
  this prefill (it rejects or ignores those fields): there use `api: completions`, or prompts
  without a prefix.

Retries are ours, not the client's (`steper.generators.openai_http`), so the counts in `stats`
are exact: 429, 5xx, connection errors, timeouts and malformed bodies (non-JSON, no choices)
are retried up to `max_retries` times with exponential backoff and jitter; then that request
gets None and counts as a failure. 400/401/403/404/422 are not retried. Requests run on a thread
pool of `concurrency` workers.

Start-up: nothing is contacted until the first `generate`. It first asks `GET /models` (with
the retries): a server that cannot be reached, one that is not an OpenAI-compatible server (no
`/models`, or no model list there), one that refuses the key, and a `model` it does not serve
(or, with `model` unset, more than one served model) are each one SteperError that names the
setting to fix (`teacher.model` / `target.model`, see `section`), the base_url and the served
names. Then the first request goes alone; 401/403/404 there are SteperErrors too.

After a first success, a request that fails (HTTP errors, timeouts, malformed replies, after
the retries) gives None, counted in `stats`; the run goes on and the caller decides. A server
that stops answering altogether (connection errors after every retry: killed, crashed) ends
`generate` with one SteperError, "lost the server ... mid-run": the jobs append each finished
question as it finishes and resume by question, so the outputs hold only whole questions and a
rerun after a restart runs exactly the unfinished ones. Other requests in flight then stop
retrying.

The API key is read from the environment variable NAMED by `api_key_env` (never from the
config). Without it, "EMPTY" is sent (a local vLLM needs no key) and the log says so. The key is
kept out of `repr`, `stats`, logs and error messages.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from steper.errors import SteperError
from steper.generators.base import GenerationRequest, Generator, chat_setting, cut_at_stop, pick
from steper.generators.openai_http import OpenAIHttp, _Failure, _Secret, _ServerLost
from steper.reasoning import prompts

log = logging.getLogger(__name__)

OPTS = (
    "base_url",
    "model",
    "api",
    "api_key_env",
    "concurrency",
    "timeout_s",
    "max_retries",
    "backoff_base_s",
    "backoff_max_s",
    "max_new_tokens",
    "stop",
    "temperature",
    "chat",
    "tokenizer",
    "max_context",
    "extra_body",
)
APIS = ("completions", "chat")
# the start-up and mid-run errors, each naming what to fix
_MESSAGES = {
    "unreachable": (
        "cannot reach {url}: start the server (python -m vllm.entrypoints.openai.api_server --model <model> "
        "--port <port>, or bash scripts/serve_vllm.sh <model> <port>) or fix {section}.base_url"
    ),
    "lost": (
        "lost the server at {url} mid-run ({failure}; gave up after {retries} retries): restart it and rerun "
        "the same command. Finished questions are saved and are not run again; the unfinished ones run then"
    ),
    "not_openai": (
        "{url} does not look like an OpenAI-compatible server (vLLM, TGI, SGLang, OpenAI): GET {url}/models "
        "{what}. Check {section}.base_url (for vLLM it is http://<host>:<port>/v1)"
    ),
    "refused": (
        "{url} refused the key ({failure}): wrong API key? It is read from the environment variable "
        "{key_env} ({section}.api_key_env)"
    ),
}


class OpenAICompatGenerator(OpenAIHttp, Generator):
    name = "openai"

    def __init__(
        self,
        *,
        # the server
        base_url: str = "http://127.0.0.1:8000/v1",
        model: str | None = None,
        api: str = "completions",
        api_key_env: str = "OPENAI_API_KEY",
        extra_body: dict[str, Any] | None = None,
        # what each request asks for
        max_new_tokens: int = 64,
        stop: Any = ("\n",),
        temperature: float = 0.0,
        chat: Any = "auto",
        tokenizer: Any = None,
        max_context: int | None = None,
        # HTTP: workers, timeout, retries
        concurrency: int = 16,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        section: str = "teacher",
    ):
        """`section`: the config section these options come from (`teacher` in generate_data.py,
        `target` in evaluate.py); errors name the setting to fix as `<section>.<key>`."""
        super().__init__(max_new_tokens=max_new_tokens, stop=stop, temperature=temperature)
        self.section = str(section)
        if api not in APIS:
            raise SteperError(f"{self.section}.api must be one of {', '.join(APIS)}, got {api!r}")
        if int(concurrency) < 1 or int(max_retries) < 0 or float(timeout_s) <= 0:
            raise SteperError(f"{self.section}.concurrency must be >= 1, max_retries >= 0 and timeout_s > 0")
        self.base_url = str(base_url).rstrip("/")
        self.model = model
        self.api = api
        self.api_key_env = api_key_env
        self.concurrency = int(concurrency)
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_context = int(max_context) if max_context else None
        self.extra_body = dict(extra_body or {})
        self.stats["errors"] = {}
        self.tokenizer = self._load_tokenizer(tokenizer, self.section)
        self.chat = self._chat(chat)
        self._client = self._make_client()
        self._pool: ThreadPoolExecutor | None = None
        self._start_lock = threading.Lock()
        self._started = False
        self._lost: _Failure | None = None  # set when the server stopped answering mid-run

    def _chat(self, chat: Any) -> bool:
        """Whether completions render through the local tokenizer's chat template."""
        setting = chat_setting(chat)
        if setting is True and not getattr(self.tokenizer, "chat_template", None):
            raise SteperError(
                f"{self.section}.chat=true needs a local tokenizer with a chat template "
                f"({self.section}.tokenizer=<dir or id>); "
                "or use api=chat to let the server apply its template"
            )
        return prompts.uses_chat(self.tokenizer, setting) if self.tokenizer is not None else False

    def _make_client(self) -> Any:
        """The OpenAI client, with the key read from the environment variable `api_key_env`."""
        import openai

        key = os.environ.get(self.api_key_env or "") or ""
        if not key:
            log.info(
                "no API key: environment variable %s is not set; sending 'EMPTY' (fine for a local vLLM)",
                self.api_key_env,
            )
            key = "EMPTY"
        self._key = _Secret(key)
        # The HTTP library logs every request at INFO: thousands of lines in a teacher run, which
        # Hydra's logging config would all keep. Failures are logged (and counted) here instead.
        for name in ("httpx", "httpx2"):
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.WARNING)
        return openai.OpenAI(api_key=key, base_url=self.base_url, timeout=self.timeout_s, max_retries=0)

    @classmethod
    def from_config(
        cls, opts: dict[str, Any], tokenizer=None, section: str = "teacher", **objects: Any
    ) -> OpenAICompatGenerator:
        """`tokenizer=` (an object) overrides the config's `tokenizer` path; `section=` names the
        config section in errors (`target` for evaluate.py); other objects are ignored."""
        kwargs = pick(opts, OPTS)
        if tokenizer is not None:
            kwargs["tokenizer"] = tokenizer
        return cls(**kwargs, section=section)

    @staticmethod
    def _load_tokenizer(tokenizer: Any, section: str = "teacher"):
        if tokenizer is None or not isinstance(tokenizer, str | os.PathLike):
            return tokenizer
        from transformers import AutoTokenizer

        from steper.generators.hf_loading import hub_offline
        from steper.models import resolve_model

        # a registry name (smollm2-135m, the name scripts/serve_vllm.sh serves it under) → its folder
        src = resolve_model(os.path.expanduser(str(tokenizer)))
        try:
            return AutoTokenizer.from_pretrained(src, local_files_only=hub_offline())
        except OSError as e:
            raise SteperError(f"cannot load {section}.tokenizer {str(tokenizer)!r}: {e}") from None

    # -- what the model sees ---------------------------------------------------------------------
    def _n_tokens(self, rendered: str) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer(rendered, add_special_tokens=not self.chat)["input_ids"])
        return len(rendered) // 3 + 1  # no tokenizer: a rough, conservative estimate

    def fits(self, rendered: str) -> bool:
        """Token-exact with `tokenizer:` set; without one a rough estimate (3 chars a token);
        always True without `max_context` (set it to the server's --max-model-len)."""
        if not self.max_context:
            return True
        return self._n_tokens(rendered) + self.max_new_tokens <= self.max_context

    def _call(self, req: GenerationRequest) -> str:
        """One attempt at one request: the continuation text, or a _Failure."""
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
        }
        if self.stop:
            params["stop"] = list(self.stop)
        extra = dict(self.extra_body)
        if self.api == "completions":
            if self.chat:
                extra.setdefault("add_special_tokens", False)
            params["prompt"] = self.render(req.prompt, req.prefix)
            create = self._client.completions.with_raw_response.create
        else:
            messages = [{"role": "user", "content": req.prompt}]
            if req.prefix:
                messages.append({"role": "assistant", "content": req.prefix})
                extra.update(continue_final_message=True, add_generation_prompt=False)
            params["messages"] = messages
            create = self._client.chat.completions.with_raw_response.create
        body = self._http(lambda: create(**params, extra_body=extra or None))
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _Failure("malformed", "reply has no choices", True)
        c = choices[0]
        text = c.get("text") if self.api == "completions" else (c.get("message") or {}).get("content")
        if not isinstance(text, str):
            raise _Failure("malformed", "reply choice has no text", True)
        usage = body.get("usage") or {}
        if isinstance(usage, dict):
            self._count(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                generated_tokens=int(usage.get("completion_tokens") or 0),
            )
        return text

    def _one(self, req: GenerationRequest, first: bool = False) -> str | None:
        """One request with retries: its text, None when it failed (counted), or _ServerLost."""
        if self._lost is not None:
            raise _ServerLost(self._lost)
        self._count(requests=1)
        try:
            text = self._with_retries(lambda: self._call(req))
        except _Failure as f:
            self._count(failures=1)
            if first:
                self._raise_at_start(f)
            if f.kind == "connection":
                # Nothing answers at all, after every retry: the server is gone (killed, crashed,
                # restarting). A None per request would fill the outputs with failed questions;
                # ending the run keeps them to the finished ones, and a rerun resumes.
                with self._stats_lock:
                    if self._lost is None:
                        self._lost = f
                raise _ServerLost(f) from None
            log.warning("%s request failed, giving up (%s)", self.section, f.message)
            return None
        return cut_at_stop(text, self.stop)

    # -- start-up checks -------------------------------------------------------------------------
    def _error(self, kind: str, f: _Failure | None = None, **more: str) -> SteperError:
        """The SteperError of `_MESSAGES[kind]`, naming the setting to fix."""
        return SteperError(
            _MESSAGES[kind].format(
                url=self.base_url,
                section=self.section,
                retries=self.max_retries,
                key_env=self.api_key_env,
                failure=f.message if f is not None else "",
                **more,
            )
        )

    def _check_server(self) -> None:
        """Before the first request: the server is an OpenAI-compatible one (`GET /models` answers
        with a model list) and serves `model` (or, with `model` unset, exactly one model, taken).
        Each way this fails is one SteperError naming the setting to fix."""
        key = f"{self.section}.model"
        try:
            body = self._list_models()
        except _Failure as f:
            if f.kind == "connection":
                raise self._error("unreachable") from None
            if f.status in (401, 403):
                raise self._error("refused", f) from None
            raise self._error("not_openai", what=f"failed ({f.message})") from None
        ids = self._model_ids(body)
        if ids is None:
            raise self._error("not_openai", what=f"gave no model list ({str(body)[:120]!r})")
        if not self.model:
            if len(ids) != 1:
                raise SteperError(
                    f"{key} is not set and the server at {self.base_url} serves {ids or 'no model'}: "
                    f"set {key} to one of them"
                )
            self.model = ids[0]
            log.info("%s not set: using the server's only model %r", key, self.model)
        elif self.model not in ids:
            raise SteperError(
                f"{key}={self.model!r} is not served by {self.base_url}; the server serves: "
                f"{', '.join(ids) or 'no model'}. Set {key} to one of them (vLLM's --served-model-name), "
                f"or point {self.section}.base_url at the server of {self.model!r}"
            )

    def _raise_at_start(self, f: _Failure) -> None:
        if f.kind == "connection":
            raise self._error("unreachable")
        if f.status in (401, 403):
            raise self._error("refused", f)
        if f.status == 404:
            models = self.served_models()
            served = f"; the server serves: {', '.join(models)}" if models else ""
            raise SteperError(
                f"{self.base_url} answered 404 for model {self.model!r} ({f.message}): wrong {self.section}.model, "
                f"or a base_url without /v1, or a server without the {self.api} endpoint{served}"
            )

    # -- generation ------------------------------------------------------------------------------
    def generate(self, requests: list[GenerationRequest]) -> list[str | None]:
        """Texts in the request order (None: that request failed after its retries). A server
        that stops answering altogether is a SteperError (see the module docstring)."""
        if not requests:
            return []
        t0 = time.perf_counter()
        results: list[str | None] = []
        rest = list(requests)
        try:
            with self._start_lock:
                if not self._started:
                    self._check_server()
                    results.append(self._one(rest.pop(0), first=True))
                    self._started = True
            if rest:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        max_workers=self.concurrency, thread_name_prefix="steper-openai"
                    )
                results.extend(self._pool.map(self._one, rest))
        except _ServerLost as e:
            raise self._error("lost", e.failure) from None
        finally:
            self._count(seconds=time.perf_counter() - t0)
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._client.close()

    def __repr__(self) -> str:
        return (
            f"OpenAICompatGenerator(base_url={self.base_url!r}, model={self.model!r}, api={self.api!r}, "
            f"concurrency={self.concurrency}, max_new_tokens={self.max_new_tokens}, stop={self.stop!r})"
        )
