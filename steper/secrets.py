"""Secrets never reach a config dump, a log, a manifest or W&B: one scrubber for all of them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SECRET_PARTS = {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "credential", "credentials"}
_SPLIT = re.compile(r"[^a-z0-9]+")
_URL_CREDENTIALS = re.compile(r"://[^/@\s]+@")
MASK = "***"


def is_secret_key(key: str) -> bool:
    """A config key that may hold a credential: its last word is key/token/secret/password…
    (`api_key`, `hf_token`, `client_secret`), or it holds api_key/secret/password anywhere; not
    `max_tokens`, `max_new_tokens`, `tokenizer`, `num_key_value_heads`, nor `api_key_env` (which
    names an environment variable, it does not hold the key)."""
    low = str(key).lower()
    parts = [p for p in _SPLIT.split(low) if p]
    if not parts or parts[-1] == "env":
        return False
    squashed = "".join(parts)
    return parts[-1] in SECRET_PARTS or any(w in squashed for w in ("apikey", "secret", "password", "passwd"))


def scrub(obj: Any) -> Any:
    """A copy of a (nested) config container with secret-looking values masked and credentials
    cut out of URLs (`https://user:pw@host` → `https://***@host`)."""
    if isinstance(obj, Mapping):
        return {k: (MASK if is_secret_key(k) and v not in (None, "") else scrub(v)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub(v) for v in obj]
    if isinstance(obj, str):
        return _URL_CREDENTIALS.sub("://***@", obj)
    return obj


def secret_env_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of secret-looking environment variables (`OPENAI_API_KEY`, `WANDB_API_KEY`,
    `HF_TOKEN`, ...), longest first; short values (< 8 characters) are too common to mask."""
    import os

    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if is_secret_key(k) and v and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def scrub_text(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with credentials cut out of URLs and secret environment values masked (messages,
    log lines, Hydra's own config dumps)."""
    out = _URL_CREDENTIALS.sub("://***@", text)
    for value in secret_env_values(environ):
        out = out.replace(value, MASK)
    return out
