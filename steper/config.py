"""Structured configs: a dataclass per config section, so a wrong key or type fails with a clear message.

Entry points call `validate(cfg)` right after Hydra composed the config. Each section is merged into
its dataclass schema; an unknown key or a value of the wrong type raises a `SteperError` that names
the section, the key and the valid keys. Modules add their section's schema to `SCHEMAS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from steper.errors import SteperError


@dataclass
class PathsConfig:
    root_dir: str = "."
    data_dir: str = "data"
    cache_dir: str = "data/cache"
    log_dir: str = "outputs"
    output_dir: str = "outputs"


@dataclass
class DatasetConfig:
    name: str = "toy"
    # toy | hotpot | hotpot_hf | 2wiki | musique | ircot
    format: str = "toy"
    train_path: str | None = None
    dev_path: str | None = None
    test_path: str | None = None  # only for formats that ship a separate test file (ircot)
    aliases_path: str | None = None  # 2Wiki id_aliases.json
    corpus_path: str | None = None  # HotpotQA abstracts dump, or a prepared corpus JSONL
    # More question files whose contexts join the corpus (IRCoT's 2Wiki corpus adds test.json).
    corpus_sources: list[str] | None = None
    dev_ids_path: str | None = None
    test_ids_path: str | None = None
    strict: bool = True
    # toy world
    seed: int = 0
    n_train: int = 400
    n_dev: int = 50
    n_test: int = 100
    hops: list[int] = field(default_factory=lambda: [2, 3, 4])
    paragraphs: str = "full"  # full | facts (relational facts only)
    # open | gated (each hop's paragraph reachable only through the previous hop's bridge entity)
    evidence: str = "open"


@dataclass
class RetrieverConfig:
    name: str = "bm25"
    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    stemmer: str | None = "english"
    stopwords: str | None = "en"
    top_k: int = 4


@dataclass
class GeneratorConfig:
    """Schema of a generator section: `teacher` (generate_data.py) and `target` (evaluate.py),
    conf/generator/*.yaml. Each backend reads its own fields and ignores the others'."""

    # teacher: oracle | hf | openai;  target: student | checkpoint | hf | openai | oracle
    name: str = "oracle"
    # the name in tables, W&B and the CSV line; null = derived from the target
    label: str | None = None
    # -- generation, shared by every generating backend
    max_new_tokens: int = 64
    stop: list[str] = field(default_factory=lambda: ["\n"])
    temperature: float = 0.0  # 0 = greedy
    # chat template: auto (when the tokenizer has one; student: as trained) | true | false
    chat: Any = "auto"
    max_context: int | None = None  # tokens; hf default: the model's max_position_embeddings
    # -- oracle: how the gold chain is written (ideal | in_order; conf/generator/oracle.yaml)
    policy: str = "ideal"
    # -- hf (and the hf-backed student/checkpoint)
    model_name_or_path: str | None = None
    dtype: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # prompts per forward pass; null = the job's batch_size (evaluate) or 8 (teacher)
    batch_size: int | None = None
    # greedy: reuse the keys/values a question's prompt shares with its previous step's prompt
    prompt_cache: bool = True
    # greedy: end a generation once the loop's unit (IRCoT: the first sentence) is written for good
    stop_at_unit: bool = True
    # a tokenizer other than the model's own; openai: a local tokenizer for chat rendering and
    # token-exact `fits`
    tokenizer: str | None = None
    # -- student: the exported directory (<train run dir>/student)
    path: str | None = None
    merge: bool = True  # LoRA: merge the adapter into the base weights (faster)
    # -- checkpoint: a Lightning .ckpt of train.py
    ckpt_path: str | None = None
    # student (adapter) / checkpoint: the base model; null = from steper_export.json / the run folder
    base_model: str | None = None
    # checkpoint with LoRA weights: the LoRA settings; null = the run folder's
    peft: Any = None
    # -- openai
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str | None = None  # served model name; None = the server's only model
    api: str = "completions"  # completions | chat
    api_key_env: str = "OPENAI_API_KEY"  # NAME of the environment variable holding the key
    concurrency: int = 16
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    extra_body: dict[str, Any] | None = None  # extra JSON fields sent with every request


@dataclass
class FrameworkConfig:
    """Schema of the `framework` section (conf/framework/*.yaml)."""

    name: str = "ircot"  # ircot | selfask
    max_steps: int = 5  # S: generated units before giving up (Self-Ask needs 2 per hop + 1)
    max_passages: int = 15  # cap of the accumulated passages (IRCoT's)
    n_demos: int = 3  # teacher few-shot demonstrations (the student gets none)


@dataclass
class QuestionLoopOptions:
    """What every job that runs the loop over a split's questions has (docs in its yaml)."""

    split: str = "test"
    limit: int | None = None
    batch_size: int = 32
    progress: bool = True
    retry_errors: bool = True
    # the most questions that may end on a failed generation request before the job fails
    # (failed requests are not wrong answers; everything is written, a rerun retries them)
    max_failure_rate: float = 0.05


@dataclass
class GenerateDataOptions(QuestionLoopOptions):
    """generate_data.py's own top-level options (conf/generate_data.yaml)."""

    task_name: str = "generate_data"
    split: str = "train"
    filter: str = "em"
    val_fraction: float = 0.1
    seed: int = 0
    out_dir: str = MISSING
    trace_delay_s: float = 0.0


@dataclass
class EvalLoopOptions(QuestionLoopOptions):
    """The evaluation loop's settings (conf/eval/default.yaml)."""

    mode: str = "multistep"
    n_demos: int | None = None


@dataclass
class EvaluateOptions(EvalLoopOptions):
    """evaluate.py's own top-level options (conf/evaluate.yaml + conf/eval/default.yaml)."""

    task_name: str = "evaluate"
    out_dir: str = MISSING
    tags: list[str] = field(default_factory=list)
    row_delay_s: float = 0.0


# ---- train.py (conf/train.yaml). Fields default to MISSING ("???") where an option's file may
# leave them out, so validation checks names and types without injecting keys; `steper.instantiate`
# drops missing keys before instantiating.


@dataclass
class StudentModelConfig:
    name: str = MISSING
    name_or_path: str = MISSING
    dtype: str = "auto"
    gradient_checkpointing: bool = False
    tiny: dict[str, Any] | None = None
    decoder_layer: str | None = None


@dataclass
class TrainingConfig:
    """Training hyper-parameters (a model's file recommends them; override `training.lr=...`)."""

    lr: float = MISSING
    max_epochs: int = MISSING
    # how long every student trains (steper.distill.budget): epochs | steps | tokens
    budget: str = "epochs"
    max_steps: int | None = None  # optimizer steps, for budget=steps
    max_target_tokens: int | None = None  # target (loss) tokens, for budget=tokens
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    precision: str = MISSING
    batch_size: int = MISSING
    max_length: int = MISSING


@dataclass
class StepwiseConfig:
    _target_: str = "steper.distill.datamodule.StepwiseDataModule"
    data_dir: str = MISSING
    method: str = MISSING
    batch_size: int = MISSING
    eval_batch_size: int | None = None
    max_length: int = MISSING
    chat: Any = "auto"
    loss_on_prefix: bool = False
    eos_after: str = "final"
    length_grouped: bool = True
    num_workers: int = 0
    seed: int = 0
    limit_train: int | None = None
    limit_val: int | None = None
    megabatch: int = MISSING
    pad_to_multiple_of: int | None = MISSING


@dataclass
class WeightingConfig:
    name: str = MISSING
    _target_: str = MISSING
    lambdas: Any = MISSING  # FixedWeighting: 3 numbers (first, mid, final) or a preset name
    init: float = MISSING  # AdaptiveWeighting
    clamp: float = MISSING
    lr: float | None = MISSING
    freeze: bool = MISSING  # AdaptiveWeighting: s_j fixed at init


@dataclass
class MethodConfig:
    name: str = "steper"


@dataclass
class PeftConfig:
    enabled: bool = False
    r: int = MISSING
    lora_alpha: int = MISSING
    lora_dropout: float = MISSING
    target_modules: Any = MISSING
    bias: str = MISSING
    use_rslora: bool = MISSING
    modules_to_save: Any = MISSING


@dataclass
class ModuleConfig:
    optimizer: Any = MISSING
    scheduler: Any = None
    weighting_lr: float | None = None


@dataclass
class WandbConfig:
    _target_: str = "lightning.pytorch.loggers.WandbLogger"
    tags: list[str] = field(default_factory=list)
    project: str = "steper"
    entity: str | None = None
    name: str | None = None
    group: str | None = None
    save_dir: str = MISSING
    offline: Any = "auto"  # auto | true | false
    log_model: Any = False
    job_type: str | None = None
    notes: str | None = MISSING
    mode: str | None = MISSING


@dataclass
class TrainEvalConfig(EvalLoopOptions):
    """train.py's evaluation of the trained student (`eval`): evaluate.py's loop settings
    (conf/eval/default.yaml) plus what only train.py needs."""

    limit: int | None = 100
    enabled: bool = True
    val_limit: int = 20
    max_new_tokens: int = 64
    stop: list[str] = field(default_factory=lambda: ["\n"])
    prompt_cache: bool = True
    stop_at_unit: bool = True


SCHEMAS: dict[str, type] = {
    "paths": PathsConfig,
    "dataset": DatasetConfig,
    "retriever": RetrieverConfig,
    # train.py
    "model": StudentModelConfig,
    "training": TrainingConfig,
    "stepwise": StepwiseConfig,
    "weighting": WeightingConfig,
    "method": MethodConfig,
    "peft": PeftConfig,
    "module": ModuleConfig,
    "eval": TrainEvalConfig,
    "framework": FrameworkConfig,
    "teacher": GeneratorConfig,  # generate_data.py
    "target": GeneratorConfig,  # evaluate.py
}


def validate_section(name: str, node: Any, schema: type) -> DictConfig:
    """Merge one section into its schema; raise a SteperError naming the bad key on failure."""
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or getattr(e, "key", None) or "?"
        valid = ", ".join(f.name for f in fields(schema))
        msg = str(e).splitlines()[0]
        raise SteperError(
            f"config `{name}`: bad key `{key}`: {msg}. Valid keys of `{name}`: {valid}"
        ) from None


def validate_options(cfg: DictConfig, schema: type) -> None:
    """Check the job's top-level options (not its sections) against `schema`, in place: a value of
    the wrong type (`limit=abc`) is a SteperError naming the option."""
    names = [f.name for f in fields(schema)]
    node = {k: cfg[k] for k in names if k in cfg and not OmegaConf.is_missing(cfg, k)}
    for name, value in node.items():
        try:
            checked = OmegaConf.merge(OmegaConf.structured(schema), {name: value})[name]
        except OmegaConfBaseException as e:
            msg = str(e).splitlines()[0]
            raise SteperError(f"option `{name}={value}`: {msg}") from None
        with open_dict(cfg):
            cfg[name] = checked


def check_choice(key: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise SteperError(f"{key} must be one of {', '.join(valid)}, got {value!r}")


def check_at_least(key: str, value: Any, low: float, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if value is None or value < low:
        what = "null or " if optional else ""
        raise SteperError(f"{key} must be {what}at least {low:g}, got {value}")


def validate_instantiables(name: str, node: Any) -> None:
    """`logger` and `callbacks` are open mappings (add your own: `+callbacks.mine={_target_: ...}`):
    each entry is null or a node with a `_target_`; W&B's entry is checked against its schema."""
    for key in node:
        entry = node[key]
        if entry is None:
            continue
        if not isinstance(entry, DictConfig) or "_target_" not in entry:
            raise SteperError(
                f"config `{name}.{key}`: expected null or a node with a `_target_` (the class to build), "
                f"got {OmegaConf.to_yaml(entry).strip() if OmegaConf.is_config(entry) else entry!r}"
            )
    if name == "logger" and node.get("wandb") is not None:
        validate_section("logger.wandb", node.wandb, WandbConfig)


def validate_trainer(node: Any) -> None:
    """`trainer` holds lightning.pytorch.Trainer's arguments (logger and callbacks come from their
    own groups): a key that is not one is a SteperError (the types are the Trainer's to check)."""
    import inspect

    from lightning.pytorch import Trainer

    valid = {"_target_", *inspect.signature(Trainer.__init__).parameters} - {"self", "logger", "callbacks"}
    unknown = sorted(set(node) - valid)
    if unknown:
        raise SteperError(
            f"config `trainer`: bad key `{unknown[0]}`: not an argument of lightning.pytorch.Trainer. "
            f"Valid keys of `trainer`: {', '.join(sorted(valid))}"
        )


def validate(cfg: DictConfig) -> DictConfig:
    """Validate every known section present in `cfg` in place; returns `cfg` for chaining."""
    for name, schema in SCHEMAS.items():
        if name in cfg and cfg[name] is not None:
            checked = validate_section(name, cfg[name], schema)
            with open_dict(cfg):
                cfg[name] = checked
    for name in ("logger", "callbacks"):
        if name in cfg and cfg[name] is not None:
            validate_instantiables(name, cfg[name])
    if cfg.get("trainer") is not None:
        validate_trainer(cfg.trainer)
    return cfg
