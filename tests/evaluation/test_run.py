"""The evaluation run in process: metrics from predictions, modes, bad generations, the targets
(student / LoRA student / checkpoint / hf) and their errors, and in-memory vs exported parity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from steper.errors import SteperError
from steper.evaluation.predictions import metrics_from_predictions, prediction_row, strip_timing_metrics
from steper.evaluation.runner import evaluate_generator
from steper.reasoning.loop import strip_timings

pytestmark = pytest.mark.usefixtures("one_thread")

TOY = {
    "name": "toy",
    "format": "toy",
    "seed": 0,
    "n_train": 400,
    "n_dev": 50,
    "n_test": 100,
    "hops": [2, 3, 4],
}
LORA = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
# a tiny model generates slowly on CPU: few questions, short steps
FAST = {"max_new_tokens": 8, "max_context": 256}


# ----------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_questions():
    from steper.data import load_questions

    return load_questions(TOY, "test")


@pytest.fixture(scope="module")
def retriever(tmp_path_factory):
    from steper.retrieval import load_retriever

    return load_retriever(TOY, {"name": "bm25", "top_k": 2}, tmp_path_factory.mktemp("eval-cache"))


def _load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    return model.eval(), tok


def _export(model, tok, out: Path, base_model: str, **meta) -> Path:
    model.save_pretrained(out)
    tok.save_pretrained(out)
    info = {
        "base_model": base_model,
        "model": "tiny",
        "method": "steper",
        "weighting": "adaptive",
        "dataset": "toy",
    }
    (out / "steper_export.json").write_text(json.dumps({**info, **meta}))
    return out


def _rows(out_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (out_dir / "predictions.jsonl").read_text().splitlines() if x.strip()]


def _comparable(rows: list[dict]) -> list[dict]:
    return [
        strip_timings({k: v for k, v in r.items() if k not in ("retrieval_s", "generation_s")}) for r in rows
    ]


def _eval(questions, retriever, generator, out_dir, **kw):
    opts = {"top_k": 2, "max_steps": 2, "batch_size": 4, "progress": False, **kw}
    return evaluate_generator(questions, retriever, generator, out_dir=out_dir, **opts)


# ----------------------------------------------------------------------------------------------
# fakes
# ----------------------------------------------------------------------------------------------


class ScriptedGenerator:
    """Returns `script[qid]` for every step of that question (None = a failed request)."""

    def __init__(self, script: dict[str, str | None]):
        self.script = script
        self.stats = {"requests": 0}

    def render(self, prompt, prefix=""):
        return f"{prompt}\nA: {prefix}"

    def fits(self, rendered):
        return True

    def generate(self, requests):
        self.stats["requests"] += len(requests)
        return [self.script[r.question.qid] for r in requests]

    def close(self):
        pass


# ----------------------------------------------------------------------------------------------
# metrics and bad generations
# ----------------------------------------------------------------------------------------------


def test_bad_generations_are_scored_wrong_and_counted(toy_questions, retriever, tmp_path):
    qs = toy_questions[:6]
    script = {
        qs[0].qid: f"So the answer is: {qs[0].answer}.",  # right
        qs[1].qid: "So the answer is: nobody knows.",  # wrong
        qs[2].qid: "",  # empty generation
        qs[3].qid: "I keep thinking about it without an answer.",  # never says "answer is"
        qs[4].qid: None,  # failed request
        qs[5].qid: "So the answer is: .",  # an answer sentence with nothing in it
    }
    m = _eval(qs, retriever, ScriptedGenerator(script), tmp_path, max_steps=3)
    rows = _rows(tmp_path)
    assert [r["qid"] for r in rows] == [q.qid for q in qs]
    assert [r["finish"] for r in rows] == ["answer", "answer", "empty", "max_steps", "error", "answer"]
    assert [r["acc"] for r in rows] == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert rows[3]["steps"] == 3 and rows[2]["steps"] == 1
    assert m["n"] == 6 and m["acc"] == pytest.approx(100 / 6, abs=1e-3)
    assert m["failures"] == 1 and m["empty"] == 1
    assert [r["prediction"] for r in rows][2:] == [None] * 4
    assert m["no_answer"] == 4
    assert m == json.loads((tmp_path / "metrics.json").read_text()) == metrics_from_predictions(rows)


def test_metrics_from_predictions_groups_and_shares():
    def row(qid, pred, golds, hops, qtype, titles, found, steps=2, secs=(0.5, 1.5)):
        return {
            "qid": qid,
            "prediction": pred,
            "golds": golds,
            "hops": hops,
            "qtype": qtype,
            "gold_titles": titles,
            "gold_found": found,
            "all_gold_found": set(titles) <= set(found) if titles else None,
            "steps": steps,
            "finish": "answer" if pred is not None else "max_steps",
            "retrieval_s": secs[0],
            "generation_s": secs[1],
            "seconds": sum(secs),
        }

    rows = [
        row("a", "Paris", ["Paris"], 2, "bridge", ["A", "B"], ["A", "B"]),
        row("b", "the city of Paris", ["Paris", "paris france"], 2, "bridge", ["A", "B"], ["A"]),
        row("c", None, ["Rome"], 3, "comparison", ["C", "D", "E"], []),
        row("d", "yes", ["no"], None, None, [], [], steps=4),
    ]
    m = metrics_from_predictions(rows)
    assert m["n"] == 4
    assert m["em"] == 25.0 and m["acc"] == 50.0
    assert m["by_hops"]["2"] == {
        "n": 2,
        "em": 50.0,
        "f1": pytest.approx(m["by_hops"]["2"]["f1"]),
        "acc": 100.0,
    }
    assert list(m["by_hops"]) == ["2", "3", "unknown"]
    assert m["by_type"]["comparison"]["n"] == 1
    assert m["gold_recall"] == pytest.approx(3 / 7, abs=1e-4)  # found 2 + 1 + 0 of 2 + 2 + 3
    assert m["all_gold_found"] == pytest.approx(1 / 3, abs=1e-4)  # "d" has no gold titles
    assert m["mean_steps"] == 2.5 and m["no_answer"] == 1 and m["failures"] == 0
    assert m["latency_s"] == {"mean": 2.0, "retrieval": 0.5, "generation": 1.5}
    assert m["questions_per_s"] == 0.5
    assert strip_timing_metrics(m).keys() == m.keys() - {"latency_s", "questions_per_s"}
    empty = metrics_from_predictions([])
    assert empty["n"] == 0 and empty["gold_recall"] is None and empty["latency_s"]["mean"] is None


# ----------------------------------------------------------------------------------------------
# modes
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", ["ircot", "selfask"])
def test_modes_restrict_retrieval(toy_questions, retriever, tmp_path, framework):
    from steper.generators.oracle import OracleGenerator

    gen = OracleGenerator()
    if framework == "selfask":
        from steper.reasoning.selfask import SelfAskOracle

        gen = SelfAskOracle(gen)
    qs = toy_questions[:15]
    steps = 9 if framework == "selfask" else 5
    out = {}
    for mode in ("multistep", "single", "noretrieval"):
        out[mode] = _eval(
            qs, retriever, gen, tmp_path / mode, mode=mode, framework=framework, max_steps=steps
        )
        for r in _rows(tmp_path / mode):
            queries = [s["query"] for s in r["trace"]["steps"]]
            retrieved = [s["retrieved"] for s in r["trace"]["steps"]]
            assert r["mode"] == mode and r["queries"] == queries
            if mode == "noretrieval":
                assert queries == [None] * len(queries) and not any(retrieved) and r["gold_found"] == []
            elif mode == "single":
                assert queries[0] == r["question"] and all(q is None for q in queries[1:])
                assert all(not x for x in retrieved[1:])
    multi = _rows(tmp_path / "multistep")
    assert any(sum(q is not None for q in r["queries"]) > 1 for r in multi)  # multistep retrieves again
    # the oracle needs every gold paragraph: without retrieval it never answers right
    assert out["noretrieval"]["acc"] == 0.0 and out["noretrieval"]["gold_recall"] == 0.0
    assert out["single"]["acc"] <= out["multistep"]["acc"] and out["multistep"]["acc"] > 0


def test_unknown_mode_and_changed_settings(toy_questions, retriever, tmp_path):
    from steper.generators.oracle import OracleGenerator

    with pytest.raises(SteperError, match="mode must be one of"):
        _eval(toy_questions[:2], retriever, OracleGenerator(), tmp_path, mode="twostep")
    _eval(toy_questions[:3], retriever, OracleGenerator(), tmp_path)
    with pytest.raises(SteperError, match="different settings.*top_k"):
        _eval(toy_questions[:3], retriever, OracleGenerator(), tmp_path, top_k=3)
    # a finished folder needs no generator at all
    m = _eval(toy_questions[:3], None, None, tmp_path)
    assert m["n"] == 3


# ----------------------------------------------------------------------------------------------
# targets
# ----------------------------------------------------------------------------------------------


def test_parity_in_memory_vs_exported_student(noisy_dir, toy_questions, retriever, tmp_path):
    """train.py evaluates the in-memory student; evaluate.py the exported one: the same predictions."""
    from steper.evaluation.targets import build_target
    from steper.generators.hf import HFGenerator

    qs = toy_questions[:8]
    gen = {"max_new_tokens": 16, "max_context": 512}
    model, tok = _load(noisy_dir)
    model.train()  # as it comes out of training: the generator switches to eval and back
    mem = HFGenerator.from_pretrained_objects(model, tok, **gen, batch_size=4)
    m_mem = _eval(qs, retriever, mem, tmp_path / "mem", max_steps=3)
    assert model.training

    student = _export(model, tok, tmp_path / "run" / "student", str(noisy_dir), peft=False, adapter=False)
    target = build_target({"name": "student", "path": str(student), "dtype": "float32", **gen}, batch_size=4)
    assert target.label == "tiny-steper-adaptive" and target.info["adapter"] is False
    m_disk = _eval(qs, retriever, target.generator, tmp_path / "disk", max_steps=3)

    rows_mem, rows_disk = _rows(tmp_path / "mem"), _rows(tmp_path / "disk")
    assert _comparable(rows_mem) == _comparable(rows_disk)
    assert strip_timing_metrics(m_mem) == strip_timing_metrics(m_disk)
    assert all(s["generation"] for r in rows_mem for s in r["trace"]["steps"])  # it did generate
    assert len({r["trace"]["steps"][0]["generation"] for r in rows_mem}) > 1  # prompt-dependent outputs


def test_lora_student_and_lora_checkpoint_equal_the_merged_model(
    noisy_dir, toy_questions, retriever, tmp_path
):
    from steper.distill.models import apply_lora
    from steper.evaluation.targets import build_target

    base, tok = _load(noisy_dir)
    peft_model = apply_lora(base, LORA)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    lora_state = {k: v.clone() for k, v in peft_model.state_dict().items() if "lora_" in k}
    student = _export(peft_model, tok, tmp_path / "run" / "student", str(noisy_dir), peft=LORA, adapter=True)
    assert (student / "adapter_config.json").is_file() and not (student / "config.json").exists()
    merged = peft_model.merge_and_unload()
    want = merged.state_dict()

    target = build_target({"name": "student", "path": str(student), "dtype": "float32", **FAST}, batch_size=4)
    assert target.info["adapter"] and target.info["merged"]
    got = target.generator.model.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    m = _eval(toy_questions[:2], retriever, target.generator, tmp_path / "eval")
    assert m["n"] == 2

    # the same adapters as a Lightning checkpoint (trainable weights only, plus the weighting)
    ckpt = tmp_path / "ckpt" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    state = {f"model.{k}": v for k, v in lora_state.items()}
    torch.save({"state_dict": {**state, "weighting.log_var": torch.zeros(3)}, "epoch": 1}, ckpt)
    with pytest.raises(SteperError, match="LoRA weights but their settings are unknown"):
        build_target({"name": "checkpoint", "ckpt_path": str(ckpt), "base_model": str(noisy_dir)})
    target = build_target(
        {
            "name": "checkpoint",
            "ckpt_path": str(ckpt),
            "base_model": str(noisy_dir),
            "peft": LORA,
            "dtype": "float32",
        }
    )
    got = target.generator.model.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    # adapters on other modules than the checkpoint's: a clear mismatch
    with pytest.raises(SteperError, match="does not match model.*(missing|unexpected) keys"):
        build_target(
            {
                "name": "checkpoint",
                "ckpt_path": str(ckpt),
                "base_model": str(noisy_dir),
                "peft": {**LORA, "target_modules": ["k_proj"]},
            }
        )


def test_full_checkpoint_loads_and_other_models_are_refused(noisy_dir, tmp_path):
    from steper.distill.tiny import build_tiny_model
    from steper.evaluation.targets import build_target

    model, tok = _load(noisy_dir)
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight.add_(1.0)  # a "trained" model differs from the base
    ckpt = tmp_path / "good.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}, ckpt)
    target = build_target(
        {"name": "checkpoint", "ckpt_path": str(ckpt), "base_model": str(noisy_dir), "dtype": "float32"}
    )
    got, want = target.generator.model.state_dict(), model.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert target.info["adapter"] is False and target.label

    other = build_tiny_model(
        tok, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64
    )
    bad = tmp_path / "other.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in other.state_dict().items()}}, bad)
    with pytest.raises(
        SteperError, match=r"checkpoint .*other\.ckpt does not match model .*(size mismatch|missing keys)"
    ):
        build_target({"name": "checkpoint", "ckpt_path": str(bad), "base_model": str(noisy_dir)})

    renamed = tmp_path / "renamed.ckpt"
    torch.save({"state_dict": {f"model.transformer.{k}": v for k, v in model.state_dict().items()}}, renamed)
    with pytest.raises(SteperError, match="does not match model.*missing keys.*unexpected keys"):
        build_target({"name": "checkpoint", "ckpt_path": str(renamed), "base_model": str(noisy_dir)})

    nothing = tmp_path / "nothing.ckpt"
    torch.save({"state_dict": {"weighting.log_var": torch.zeros(3)}}, nothing)
    with pytest.raises(SteperError, match="no `model.` weights"):
        build_target({"name": "checkpoint", "ckpt_path": str(nothing), "base_model": str(noisy_dir)})
    with pytest.raises(SteperError, match="checkpoint not found"):
        build_target(
            {"name": "checkpoint", "ckpt_path": str(tmp_path / "missing.ckpt"), "base_model": str(noisy_dir)}
        )
    with pytest.raises(SteperError, match="needs target.base_model"):
        build_target({"name": "checkpoint", "ckpt_path": str(ckpt)})


def test_mismatched_tokenizer_and_model_is_a_clear_error(noisy_dir, tmp_path):
    from steper.evaluation.targets import build_target

    model, tok = _load(noisy_dir)
    model.resize_token_embeddings(100)  # a model with a smaller vocabulary than this tokenizer's
    small = tmp_path / "small"
    model.save_pretrained(small)
    tok.save_pretrained(small)
    with pytest.raises(
        SteperError, match=r"tokenizer .* has \d+ tokens but model .* has only 100 embedding rows"
    ):
        build_target({"name": "hf", "model_name_or_path": str(small)})
    student = _export(model, tok, tmp_path / "student", str(small))
    with pytest.raises(SteperError, match="only 100 embedding rows"):
        build_target({"name": "student", "path": str(student)})
    # the right tokenizer given explicitly is fine for the full-size model
    ok = build_target({"name": "hf", "model_name_or_path": str(noisy_dir), "tokenizer": str(noisy_dir)})
    assert ok.demos and ok.label == noisy_dir.name


def test_target_errors(tmp_path):
    from steper.evaluation.targets import build_target

    with pytest.raises(SteperError, match="unknown target"):
        build_target({"name": "teacher"})
    with pytest.raises(SteperError, match="needs target.path"):
        build_target({"name": "student", "path": "???"})
    with pytest.raises(SteperError, match="student directory not found"):
        build_target({"name": "student", "path": str(tmp_path / "nope")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(SteperError, match="neither a model"):
        build_target({"name": "student", "path": str(tmp_path / "empty")})
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "./no/such/base"}))
    with pytest.raises(SteperError, match="base model .* not found.*target.base_model"):
        build_target({"name": "student", "path": str(lora)})
    with pytest.raises(SteperError, match="model path does not exist"):
        build_target({"name": "hf", "model_name_or_path": str(tmp_path / "missing" / "model")})


def test_prediction_row_holds_the_trace(toy_questions, retriever, tmp_path):
    from steper.generators.oracle import OracleGenerator
    from steper.reasoning.loop import run_loop

    (trace,) = run_loop(toy_questions[:1], retriever, OracleGenerator(), top_k=4)
    row = prediction_row(trace)
    assert row["trace"] == trace.to_dict() and row["prediction"] == trace.answer
    assert row["all_gold_found"] is True and row["acc"] == 1.0 and row["steps"] == len(trace.steps)
    assert row["seconds"] == pytest.approx(row["retrieval_s"] + row["generation_s"])
    assert [s["retrieved_titles"] for s in row["trace"]["steps"]][0]
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_checkpoint_on_another_base_than_its_run_recorded_warns_and_records_both(noisy_dir, tmp_path, caplog):
    """target.base_model naming another base than the run's own (e.g. one with another tokenizer) is
    allowed, with a warning, and the card records both (it was accepted silently)."""
    import logging

    from steper.evaluation.targets import build_target

    model, _ = _load(noisy_dir)
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "epoch": 1}, ckpt)
    (run / "student").mkdir()
    (run / "student" / "steper_export.json").write_text(json.dumps({"base_model": str(noisy_dir)}))
    other = shutil.copytree(noisy_dir, tmp_path / "other-base")
    opts = {"name": "checkpoint", "ckpt_path": str(ckpt), "dtype": "float32"}
    with caplog.at_level(logging.WARNING, logger="steper.evaluation"):
        own = build_target(opts)  # the recorded base: no warning
        assert not [r for r in caplog.records if "is not the base" in r.getMessage()]
        moved = build_target({**opts, "base_model": str(other)})
    assert own.info["base_model"] == own.info["recorded_base_model"] == str(noisy_dir)
    assert moved.info["base_model"] == str(other) and moved.info["recorded_base_model"] == str(noisy_dir)
    (warning,) = [r.getMessage() for r in caplog.records if "is not the base" in r.getMessage()]
    assert f"target.base_model={other}" in warning and str(noisy_dir) in warning
