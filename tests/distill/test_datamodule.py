"""The step-wise DataModule: structured rows, loss masking, truncation in the passages, length
grouping, DDP shares, and one clear error for each bad setting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from steper.data.schema import Paragraph
from steper.distill.datamodule import StepwiseDataModule, StepwiseSampler, real_token_share
from steper.distill.encoding import row_prompt
from steper.distill.stepwise import trace_examples
from steper.distill.synthetic import synthetic_stepwise_rows
from steper.distill.tiny import train_tokenizer
from steper.errors import SteperError
from steper.io import write_jsonl
from steper.reasoning.loop import Trace, TraceStep
from steper.reasoning.prompts import build_prompt, continuation, render


def stepwise_rows(n_questions: int, seed: int = 0, filler: tuple[int, int] = (0, 12)) -> list[dict]:
    return synthetic_stepwise_rows(n_questions, seed, filler)


def write_stepwise(path, n_train: int = 24, n_val: int = 8, seed: int = 0, **kw):
    path.mkdir(parents=True, exist_ok=True)
    write_jsonl(path / "train.jsonl", stepwise_rows(n_train, seed, **kw))
    write_jsonl(path / "validation.jsonl", stepwise_rows(n_val, seed + 1, **kw))
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_stepwise(tmp_path_factory.mktemp("stepwise"))


@pytest.fixture(scope="module")
def tokenizer(data_dir):
    return train_tokenizer(StepwiseDataModule(str(data_dir)).texts(), vocab_size=400)


def make_dm(data_dir, tokenizer, **kw) -> StepwiseDataModule:
    dm = StepwiseDataModule(str(data_dir), **kw)
    dm.set_tokenizer(tokenizer)
    dm.setup("fit")
    return dm


def labelled_text(tok, ids, n_input) -> tuple[str, str]:
    return tok.decode(ids[:n_input]), tok.decode(ids[n_input:])


def ending(row: dict, tok) -> str:
    """EOS ends the answer step's (and the vanilla chain's) target only (eos_after=final)."""
    return tok.eos_token if row["task"] in ("final", "vanilla") else ""


def test_labels_cover_exactly_the_target_and_eos(data_dir, tokenizer):
    dm = make_dm(data_dir, tokenizer, batch_size=4)
    rows = dm.rows("train")
    ds = dm.datasets["train"]
    for i in (0, 1, 2, 5):
        r = rows[i]
        inp, tgt = labelled_text(tokenizer, ds.ids[i], ds.n_input[i])
        assert inp == render(row_prompt(r), r["prefix"])
        assert tgt == continuation(r["target"], r["prefix"]) + ending(r, tokenizer)
    # The collated labels are -100 exactly outside the target tokens.
    batch = dm.collator()([ds[i] for i in range(4)])
    for row in range(4):
        n, n_in = len(ds.ids[row]), ds.n_input[row]
        lab = batch["labels"][row]
        assert (lab[:n_in] == -100).all() and (lab[n:] == -100).all()
        assert lab[n_in:n].tolist() == ds.ids[row][n_in:].tolist()
        assert batch["attention_mask"][row].sum().item() == n
        assert batch["n_target_tokens"][row].item() == n - n_in
        assert tokenizer.decode(lab[lab != -100].tolist()) == continuation(
            rows[row]["target"], rows[row]["prefix"]
        ) + ending(rows[row], tokenizer)
    assert batch["task_ids"].tolist() == [0, 1, 2, 0]
    assert batch["stats"]["task_counts"] == [2, 1, 1]


def test_eos_after_every_step_on_request(data_dir, tokenizer):
    rows = make_dm(data_dir, tokenizer).rows("train")
    every = make_dm(data_dir, tokenizer, eos_after="every").datasets["train"]
    final = make_dm(data_dir, tokenizer).datasets["train"]
    for i, r in enumerate(rows):
        assert labelled_text(tokenizer, every.ids[i], every.n_input[i])[1].endswith(tokenizer.eos_token)
        assert len(every.ids[i]) - len(final.ids[i]) == (0 if r["task"] in ("final", "vanilla") else 1)
    assert {r["task"] for r in rows} >= {"first", "mid", "final"}
    with pytest.raises(SteperError, match="eos_after must be one of final, every"):
        make_dm(data_dir, tokenizer, eos_after="never")


def test_loss_on_prefix_trains_the_prefix_too(data_dir, tokenizer):
    dm = make_dm(data_dir, tokenizer, loss_on_prefix=True)
    r, ds = dm.rows("train")[2], dm.datasets["train"]  # a final-step row with a two-sentence prefix
    inp, tgt = labelled_text(tokenizer, ds.ids[2], ds.n_input[2])
    assert inp == render(row_prompt(r), "")
    assert tgt == continuation(f"{r['prefix']} {r['target']}", "") + tokenizer.eos_token


def test_chat_template_input_is_the_loop_input(data_dir, tokenizer):
    tok = train_tokenizer(StepwiseDataModule(str(data_dir)).texts(), vocab_size=400)
    tok.chat_template = "{% for m in messages %}<user>{{ m['content'] }}</user>{% endfor %}<assistant>"
    dm = make_dm(data_dir, tok, chat="auto", limit_train=3, limit_val=1)
    assert dm.use_chat
    for i, r in enumerate(dm.rows("train")):
        inp, tgt = labelled_text(tok, dm.datasets["train"].ids[i], dm.datasets["train"].n_input[i])
        assert inp == render(row_prompt(r), r["prefix"], tok, chat=True)
        assert tgt == continuation(r["target"], r["prefix"], chat=True) + ending(r, tok)
    assert not make_dm(data_dir, tok, chat=False, limit_train=1, limit_val=1).use_chat


def test_task_ids_and_method_selection(data_dir, tokenizer):
    steper = make_dm(data_dir, tokenizer)
    assert steper.task_counts() == {
        "train/first": 24,
        "train/mid": 24,
        "train/final": 24,
        "validation/first": 8,
        "validation/mid": 8,
        "validation/final": 8,
    }
    want = [{"first": 0, "mid": 1, "final": 2}[r["task"]] for r in steper.rows("train")]
    assert steper.datasets["train"].tasks.tolist() == want
    vanilla = make_dm(data_dir, tokenizer, method="vanilla")
    assert vanilla.task_counts()["train/final"] == 24 and vanilla.task_counts()["train/first"] == 0
    assert set(vanilla.datasets["train"].tasks.tolist()) == {2}
    assert all(r["task"] == "vanilla" for r in vanilla.rows("train"))
    assert len(make_dm(data_dir, tokenizer, limit_train=10, limit_val=3).datasets["validation"]) == 3
    texts = list(StepwiseDataModule(str(data_dir)).texts())
    assert len(texts) == 3 * 32 and "So the answer is:" in texts[2]


def test_truncation_cuts_passages_keeps_question_and_target(tmp_path, tokenizer):
    long_p = [Paragraph("Alpha Page", "alpha words " * 60), Paragraph("Beta Page", "beta words " * 60)]
    question = "Where was the director of Cato Reed Story born?"
    row = {
        "qid": "x",
        "task": "mid",
        "step": 2,
        "question": question,
        "passages": [{"title": p.title, "text": p.text} for p in long_p],
        "demos": "",
        "prefix": "Cato Reed Story was directed by Ivo Oak.",
        "target": "Ivo Oak was born in Brill.",
    }
    write_jsonl(tmp_path / "train.jsonl", [row])
    write_jsonl(tmp_path / "validation.jsonl", [row])
    full = len(tokenizer(render(build_prompt(question, long_p), row["prefix"]))["input_ids"])
    dm = make_dm(tmp_path, tokenizer, max_length=full // 2)
    ds = dm.datasets["train"]
    assert len(ds.ids[0]) <= full // 2 and dm.truncated["train"] == 1 and dm.dropped["train"] == 0
    inp, tgt = labelled_text(tokenizer, ds.ids[0], ds.n_input[0])
    assert question in inp and inp.endswith(row["prefix"]) and "Wikipedia Title: Alpha Page" in inp
    assert tgt == continuation(row["target"], row["prefix"]) + ending(row, tokenizer)
    assert inp.count("alpha words") < 60 and inp.count("beta words") < 60  # both passages shrank
    assert inp.count("alpha words") >= 1  # ... to a common budget, keeping their heads

    with pytest.raises(
        SteperError, match=r"max_length 8 too small for any target \(shortest needs \d+ tokens\)"
    ):
        make_dm(tmp_path, tokenizer, max_length=8)


def old_way_ids(tok, question: str, paragraphs, prefix: str, target: str, answer: bool) -> list[int]:
    """The token ids of an example as steper made them from a rendered `prompt` row."""
    prompt = build_prompt(question, paragraphs)
    ids = (
        tok(render(prompt, prefix))["input_ids"]
        + tok(continuation(target, prefix), add_special_tokens=False)["input_ids"]
    )
    return ids + [tok.eos_token_id] * answer


def test_structured_rows_give_the_token_ids_of_rendered_prompts(tmp_path, tokenizer):
    texts = {f"p{i}": {"title": f"Page {i}", "text": f"Page {i} says fact {i}. " * 3} for i in range(1, 5)}
    sentences = ["Fact 1 holds.", "Fact 2 holds.", "So the answer is: Brill."]
    steps = []
    for s, r in enumerate(sentences, start=1):
        acc = [f"p{j}" for j in range(1, s + 1)]
        prefix = " ".join(sentences[: s - 1])
        steps.append(
            TraceStep(
                step=s,
                query="x",
                retrieved=[f"p{s}"],
                retrieved_titles=[f"Page {s}"],
                accumulated=acc,
                prefix=prefix,
                generation=r,
                sentence=r,
            )
        )
    trace = Trace(
        qid="t",
        question="Where?",
        golds=["Brill"],
        steps=steps,
        answer="Brill",
        finish="answer",
        passages=texts,
    )
    rows = trace_examples(trace)
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "validation.jsonl", rows)
    for method in ("steper", "vanilla"):
        dm = make_dm(tmp_path, tokenizer, method=method)
        kept = [r for r in rows if (r["task"] == "vanilla") == (method == "vanilla")]
        for r, ids in zip(kept, dm.datasets["train"].ids, strict=True):
            step = trace.steps[r["step"] - 1]
            paragraphs = trace.paragraphs(step.accumulated)  # what generate_data rendered into `prompt`
            want = old_way_ids(
                tokenizer,
                trace.question,
                paragraphs,
                r["prefix"],
                r["target"],
                r["task"] in ("final", "vanilla"),
            )
            assert ids.tolist() == want


def test_errors_name_the_path(tmp_path, tokenizer):
    with pytest.raises(SteperError, match=r"nowhere.*generate_data\.py"):
        StepwiseDataModule(str(tmp_path / "nowhere")).task_counts()
    (tmp_path / "train.jsonl").write_text(json.dumps(stepwise_rows(1)[0]) + "\n{not json\n")
    (tmp_path / "validation.jsonl").write_text("")
    with pytest.raises(SteperError, match=r"train\.jsonl:2"):
        StepwiseDataModule(str(tmp_path)).task_counts()
    (tmp_path / "train.jsonl").write_text(json.dumps({**stepwise_rows(1)[0], "task": "middle"}) + "\n")
    with pytest.raises(SteperError, match=r"train\.jsonl:1: unknown task 'middle'"):
        StepwiseDataModule(str(tmp_path)).task_counts()
    (tmp_path / "train.jsonl").write_text(json.dumps(stepwise_rows(1)[0]) + "\n")
    with pytest.raises(SteperError, match=r"validation\.jsonl is empty.*generate_data"):
        StepwiseDataModule(str(tmp_path)).task_counts()
    old = {"qid": "q", "task": "mid", "step": 2, "prompt": "Q: ...", "prefix": "r1.", "target": "r2."}
    write_jsonl(tmp_path / "validation.jsonl", [old])
    with pytest.raises(
        SteperError, match=r"validation\.jsonl:1: .*older steper: rerun generate_data\.py into a new out_dir"
    ):
        StepwiseDataModule(str(tmp_path)).task_counts()
    write_jsonl(tmp_path / "validation.jsonl", stepwise_rows(1))
    with pytest.raises(SteperError, match="set_tokenizer"):
        StepwiseDataModule(str(tmp_path)).setup("fit")


def test_length_grouping_fills_batches(tmp_path, tokenizer):
    data = write_stepwise(tmp_path, n_train=160, n_val=4, filler=(0, 120))
    grouped = make_dm(data, tokenizer, batch_size=8, length_grouped=True, megabatch=50)
    plain = make_dm(data, tokenizer, batch_size=8, length_grouped=False)
    ds = grouped.datasets["train"]
    share_grouped = real_token_share(ds, grouped.sampler("train").rank_batches())
    share_plain = real_token_share(ds, plain.sampler("train").rank_batches())
    print(f"real-token share: length-grouped {share_grouped:.3f} vs unsorted {share_plain:.3f}")
    assert share_grouped >= 0.85 and share_grouped > share_plain + 0.1
    # Every example once per epoch; a new order per epoch; the same order for the same epoch.
    s = grouped.sampler("train")
    first = list(s)
    assert sorted(first) == list(range(len(ds)))
    s.set_epoch(1)
    second = list(s)
    assert sorted(second) == sorted(first) and second != first
    s.set_epoch(0)
    assert list(StepwiseSampler(ds.lengths, 8, seed=0)) == first
    # The longest batch comes first (an out-of-memory shows at step 1).
    batches = s.rank_batches()
    assert ds.lengths[batches[0]].max() == ds.lengths.max()
    # The loader yields batches of all tasks mixed, each with its task id.
    loader = grouped.train_dataloader()
    tasks = set()
    for batch in loader:
        tasks |= set(batch["task_ids"].tolist())
        assert batch["input_ids"].shape[0] <= 8
    assert tasks == {0, 1, 2}
    val = [b for b in grouped.val_dataloader()]
    assert sum(len(b["task_ids"]) for b in val) == len(grouped.datasets["validation"])


@pytest.mark.parametrize("n", [37, 40])
def test_ddp_shares_are_disjoint_and_even(n):
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 300, size=n)
    world = 3
    shares = [StepwiseSampler(lengths, 4, num_replicas=world, rank=r, seed=5) for r in range(world)]
    streams = [list(s) for s in shares]
    assert len({len(x) for x in streams}) == 1 and all(len(x) == len(shares[0]) for x in streams)
    batch_sizes = [[len(b) for b in s.rank_batches()] for s in shares]
    assert batch_sizes[0] == batch_sizes[1] == batch_sizes[2]  # same number of steps, same shapes
    real = [i for x in streams for i in x if i < n]
    pads = [i for x in streams for i in x if i >= n]
    assert sorted(real) == list(range(n))  # disjoint, complete
    assert len(pads) == (-n) % world
    # Ranks' batches at one step split one global batch (consecutive in length order).
    for step, global_batch in enumerate(shares[0].global_batches()):
        parts = [s.rank_batches()[step].tolist() for s in shares]
        assert sorted(sum(parts, [])) == sorted(global_batch.tolist())


@pytest.mark.parametrize(
    "setting, message",
    [
        (
            {"batch_size": 0},
            "stepwise.batch_size must be at least 1, got 0 (the training examples per batch on each "
            "device): set e.g. stepwise.batch_size=8",
        ),
        ({"batch_size": "many"}, "stepwise.batch_size must be an integer of at least 1, got 'many'"),
        ({"batch_size": True}, "stepwise.batch_size must be an integer of at least 1, got True"),
        ({"eval_batch_size": 0}, "stepwise.eval_batch_size must be at least 1 or null, got 0"),
        ({"max_length": 1}, "stepwise.max_length must be at least 2, got 1"),
        ({"num_workers": -1}, "stepwise.num_workers must be at least 0, got -1"),
        ({"limit_train": -5}, "stepwise.limit_train must be at least 0 or null, got -5"),
        ({"limit_val": 2.5}, "stepwise.limit_val must be an integer of at least 0 or null, got 2.5"),
        ({"megabatch": 0}, "stepwise.megabatch must be at least 1, got 0"),
        ({"pad_to_multiple_of": 0}, "stepwise.pad_to_multiple_of must be at least 1 or null, got 0"),
        ({"chat": "yes"}, "stepwise.chat must be one of auto, true, false, got 'yes'"),
        ({"chat": 1}, "stepwise.chat must be one of auto, true, false, got 1"),
        ({"eos_after": "never"}, "stepwise.eos_after must be one of final, every, got 'never'"),
        ({"method": "distill"}, "stepwise.method must be one of steper, vanilla, got 'distill'"),
    ],
)
def test_bad_settings_name_the_key_and_the_fix(tmp_path, setting, message):
    with pytest.raises(SteperError) as e:
        StepwiseDataModule(str(tmp_path), **setting)
    assert str(e.value).startswith(message)
    key = next(iter(setting))
    if key not in ("chat", "eos_after", "method"):
        assert f": set e.g. stepwise.{key}=" in str(e.value)


def test_good_settings_pass(tmp_path):
    dm = StepwiseDataModule(str(tmp_path), chat="FALSE", eval_batch_size=None, limit_train=0, num_workers=0)
    assert dm.eval_batch_size == dm.batch_size and dm.limits["train"] == 0
    assert StepwiseDataModule(str(tmp_path), chat=True)._chat is True
    assert StepwiseDataModule(str(tmp_path), chat="true")._chat is True
