"""Entry-point helpers: one clear line for a user error, never traceback soup, and a terminal
that shows progress and results while library chatter goes to the job's log file."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from steper.errors import SteperError
from steper.secrets import scrub_text

F = TypeVar("F", bound=Callable[..., Any])

# Loggers whose INFO lines are library chatter (tips, device banners, load bars' notes): kept in
# the log file, shown on the terminal only from WARNING up.
CHATTY = ("lightning", "pytorch_lightning", "transformers", "peft", "huggingface_hub", "datasets", "torch")


class _ConsoleFilter(logging.Filter):
    """Drops Python warnings (deprecations, library notices) and chatty libraries' INFO records
    from a terminal handler; file handlers keep everything."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "py.warnings":
            return False
        chatty = record.name.split(".")[0] in CHATTY
        return not (chatty and record.levelno < logging.WARNING)


class _SecretFilter(logging.Filter):
    """Masks credentials (user:password@ in URLs, secret environment values) in every record a
    handler writes, the job's log file included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub_text(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


def scrub_hydra_dumps() -> None:
    """Mask credentials in the files Hydra wrote before the job started (`.hydra/config.yaml`,
    `hydra.yaml`, `overrides.yaml`, a sweep's `multirun.yaml`): a `user:password@` typed into a URL
    on the command line must not stay on disk. No-op outside a Hydra job."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return
        hc = HydraConfig.get()
    except Exception:  # pragma: no cover - hydra internals
        return
    from pathlib import Path

    files = []
    if hc.output_subdir is not None:
        files += sorted((Path(hc.runtime.output_dir) / str(hc.output_subdir)).glob("*.yaml"))
    if hc.sweep.dir:
        files.append(Path(str(hc.sweep.dir)) / "multirun.yaml")
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        clean = scrub_text(text)
        if clean != text:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(clean, encoding="utf-8")
            os.replace(tmp, path)


def quiet_console() -> None:
    """Route warnings into logging and keep library chatter off the terminal (idempotent).

    Call once logging is configured (inside a Hydra task). Lightning installs its own stream
    handler when it is imported before logging is set up, which printed every one of its lines a
    second time; it is removed so its records pass through the root handlers (and this filter)."""
    logging.captureWarnings(True)
    # transformers' bars for sub-second steps (loading weights, writing shards) clutter the output;
    # steper's own bars (questions, training steps) stay
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True
    for handler in logging.getLogger().handlers:
        is_terminal = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
        if is_terminal and not any(isinstance(f, _ConsoleFilter) for f in handler.filters):
            handler.addFilter(_ConsoleFilter())
        if not any(isinstance(f, _SecretFilter) for f in handler.filters):
            handler.addFilter(_SecretFilter())


def friendly_errors(fn: F) -> F:
    """Turn a `SteperError` into `error: <message>` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SteperError as e:
            print(f"error: {scrub_text(str(e))}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            # what finished is on disk (every job resumes); say so instead of a traceback
            print("error: interrupted (Ctrl-C): what finished is kept; rerun the same command to resume "
                  "(train.py: add ckpt_path=last and the same hydra.run.dir)", file=sys.stderr)  # fmt: skip
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def hydra_task(fn: F) -> F:
    """A Hydra entry point's body: a quiet console (once Hydra set up logging) and friendly errors."""
    inner = friendly_errors(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scrub_hydra_dumps()
        quiet_console()
        return inner(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
