"""Entry-point helpers: one clear line for a user error, never traceback soup, and a terminal
that shows progress and results while library chatter goes to the job's log file."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hydra.experimental.callback import Callback

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


def hydra_config() -> Any:
    """The running Hydra job's config (HydraConfig), None outside a Hydra job."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get() if HydraConfig.initialized() else None
    except Exception:  # pragma: no cover - hydra internals
        return None


def scrub_hydra_dumps() -> None:
    """Mask credentials in the files Hydra wrote before the job started (`.hydra/config.yaml`,
    `hydra.yaml`, `overrides.yaml`, a sweep's `multirun.yaml`): a `user:password@` typed into a URL
    on the command line must not stay on disk. No-op outside a Hydra job."""
    hc = hydra_config()
    if hc is None:
        return
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


def _leaf_paths(node: Any, prefix: str = "") -> set[str]:
    if isinstance(node, dict) and node:
        return set().union(*(_leaf_paths(v, f"{prefix}.{k}" if prefix else str(k)) for k, v in node.items()))
    return {prefix}


def check_added_keys(cfg: Any) -> None:
    """`+key=value` adds a key the composed config did not have. A top-level key, or a section that
    only the `+` overrides made, is read by no job (`+limitt=5`, `+target.max_new_tokens=0` on
    generate_data): it would be silently ignored, so it is one error naming it, with the nearest
    known key. Config groups (`+experiment=...`) and additions to an existing section
    (`+callbacks.mine=...`) pass. No-op outside a Hydra job."""
    import difflib

    from omegaconf import OmegaConf

    hc = hydra_config()
    if hc is None:
        return
    main = [s for s in hc.runtime.config_sources if s.provider == "main" and s.schema == "file"]
    groups = {p.name for p in Path(main[0].path).iterdir() if p.is_dir()} if main else set()
    added: dict[str, set[str]] = {}
    for override in hc.overrides.task:
        if override.startswith("+") and not override.startswith("++"):
            key = override[1:].split("=", 1)[0]
            added.setdefault(key.split(".")[0], set()).add(key)
    plain = OmegaConf.to_container(cfg, resolve=False)
    for root, keys in added.items():
        is_group = root in groups and keys == {root}  # `+experiment=demo` selects a group option
        if is_group or root == "hydra" or root not in plain:
            continue
        made_by_plus = root in keys or _leaf_paths(plain[root], root) <= {
            p for k in keys for p in _leaf_paths(OmegaConf.select(cfg, k), k)
        }
        if not made_by_plus:
            continue  # an addition to a section the job has
        known = sorted(k for k in plain if k not in added)
        near = difflib.get_close_matches(root, known, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise SteperError(
            f"`+{sorted(keys)[0]}=...` adds {root!r}, which {hc.job.config_name}.py does not read{hint}: it "
            f"would be ignored. Its top-level keys and sections: {', '.join(known)}"
        )


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
    """A Hydra entry point's body: credentials out of Hydra's dumps, a quiet console (once Hydra set
    up logging), `+key` overrides the job would ignore refused, and friendly errors."""

    @functools.wraps(fn)
    def body(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        check_added_keys(cfg)
        return fn(cfg, *args, **kwargs)

    inner = friendly_errors(body)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scrub_hydra_dumps()
        quiet_console()
        return inner(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _not_a_folder(path: Path) -> Path | None:
    """The first existing part of `path` (itself or a parent) that is not a folder, if any."""
    for part in [path, *path.parents]:
        if part.exists():
            return None if part.is_dir() else part
    return None


class OutputFolderCheck(Callback):
    """Hydra callback (conf/hydra/default.yaml): before Hydra creates the job's folder, a run or
    sweep folder that is, or lies under, a file is one `error:` line naming the setting that put it
    there (hydra.run.dir / hydra.sweep.dir, or STEPER_ROOT through paths.root_dir), not Hydra's
    FileExistsError traceback."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config, "run")

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config, "sweep")

    @staticmethod
    def _check(config: Any, kind: str) -> None:
        try:
            folder = Path(str(config.hydra[kind].dir))
            root = Path(str(config.paths.root_dir))
        except Exception:  # noqa: BLE001  an interpolation Hydra resolves only later: Hydra's own checks apply
            return
        bad = _not_a_folder(folder)
        if bad is None:
            return
        if bad == root or bad in root.parents:
            where = (
                f"STEPER_ROOT={os.environ['STEPER_ROOT']}" if os.environ.get("STEPER_ROOT") else f"paths.root_dir={root}"
            )
            fix = "point STEPER_ROOT (or paths.root_dir=...) at a folder"
        else:
            where, fix = f"hydra.{kind}.dir={folder}", f"set hydra.{kind}.dir=<a folder> (or remove {bad})"
        message = f"{where}: {bad} is a file, not a folder, so the job's outputs cannot go to {folder}: {fix}"
        print(f"error: {scrub_text(message)}", file=sys.stderr)
        sys.exit(2)
