"""Retrieval on real text: gold-paragraph recall of the IRCoT loop under the oracle's queries, steper's
BM25 side by side with a plain bm25s index over the same corpus and the same queries.

    .venv/bin/python benchmarks/real_retrieval.py                    # HotpotQA, 2Wiki, MuSiQue, fullwiki
    .venv/bin/python benchmarks/real_retrieval.py --datasets 2wiki --out real_retrieval.json
    .venv/bin/python benchmarks/real_retrieval.py --datasets hotpot,musique --keep work/

Data: the real dev rows under `--real-dir` (default `../shared/data/real` beside the repository;
read there, never copied). Per dataset:

1. **The harness.** `evaluate.py target=oracle target.policy=P` for P = `ideal` and `in_order`, on
   every row of the file (its ids in `dataset.test_ids_path`), the file as train and dev path, so
   the corpus is the union of the file's context paragraphs (deduplicated, steper.data.corpus);
   steper's BM25 over `title + " " + text`, `retriever.top_k` (4) per step, at most
   `framework.max_steps` (5) steps. Its predictions.jsonl (each step's query and retrieved titles)
   and metrics.json (EM, shown-gold recall) are what is scored.
2. **steper's BM25, reloaded** from the cache the harness built (`load_retriever`, a reload, not a
   rebuild), for the rankings the runs do not hold (other k, deeper ranks, the in-order query
   sequence). Every step's query of the `ideal` run is replayed through it and must give the
   trace's own top-k pids (`replay_mismatches`, expected 0).
3. **Plain bm25s** over the same paragraphs in the same order, with bm25s's own defaults:
   `bm25s.tokenize(texts, stopwords="en")` (lower-case, its word pattern, its English stopwords, no
   stemmer), `bm25s.BM25()` (lucene, k1=1.5, b=0.75), `retrieve(tokens, k)`. Hits of score 0 (no
   query term in the paragraph: bm25s pads its top-k with them) are dropped, as steper and
   Elasticsearch return matching documents only; `zero_score_gold` counts gold ones so dropped.
   steper's tokenizer is bm25s's pipeline plus the Snowball stemmer, so the two arms differ in
   stemming and in the order of equal scores only. A **control** arm (bm25s with
   `stemmer=Stemmer.Stemmer("english")`) checks that: `stemmed_bm25s_control` counts the queries
   whose top-k titles equal steper's.

Gold paragraphs are the row's supporting titles, matched by normalised title as the harness does;
recall is micro (gold paragraphs found / gold paragraphs). Measures:

- **on time**: a gold paragraph is needed at step i + 1 when chain step i (the first one citing its
  title) is written from it; a supporting title without a chain step is needed by the answer step,
  len(chain) + 1; both capped at max_steps. On time = among the top-k of the queries of steps
  1..need. Scored on two query sequences: the **in-order queries** (the question, then each gold
  chain sentence turned into a query by the loop's own rule, `IRCOT.query`: what the `in_order`
  oracle issues while it keeps finding its paragraphs; `in_order_query_mismatches` checks them
  against its run) and the queries of the **ideal run**. `all on time`: every gold paragraph of the
  question on time (the `in_order` oracle's EM, but for 5-step chains that leave no answer step).
- **within budget** (ideal run): retrieved by any of the run's queries (at most max_steps × top_k
  passages, before the loop's 15-passage cap that the harness's own shown-gold numbers include);
  **all gold**: every gold paragraph of the question within the budget. The `ideal` oracle writes
  a chain sentence it was not shown (recalls it), and that sentence, holding the fact, becomes the
  next query: within-budget recall is an upper bound no real model reaches.
- **question only @k**: the question alone as the query, top k (one-step retrieval), k in `--ks`.
- **misses**: each gold paragraph not retrieved within the budget, with its best rank under any of
  the question's queries (depth 50), and whether the other arm found it.

Plain bm25s is scored on the oracle's query sequences, not in a closed loop of its own. Output: a
JSON file (`--out`) and markdown tables on stdout; about 20 s on 2 CPUs for the four datasets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline"}
os.environ.update(OFFLINE_ENV)

POLICIES = ("ideal", "in_order")
RANK_DEPTH = 50  # how deep the miss analysis looks into a ranking


@dataclass(frozen=True)
class Spec:
    """One real question file and how the harness reads it."""

    key: str
    name: str  # dataset.name (the conf/dataset group)
    fmt: str  # dataset.format
    path: str  # relative to --real-dir
    label: str


DATASETS = {
    s.key: s
    for s in (
        Spec("hotpot", "hotpot", "hotpot", "hotpot/hotpot_dev_distractor_v1.sample.json",
             "HotpotQA dev distractor"),
        Spec("2wiki", "2wiki", "2wiki", "2wiki/dev.sample.json", "2WikiMultihopQA dev"),
        Spec("musique", "musique", "musique", "musique/musique_ans_v1.0_dev.sample.jsonl",
             "MuSiQue-Ans dev"),
        Spec("hotpot_fullwiki", "hotpot", "hotpot", "hotpot/hotpot_dev_fullwiki_v1.sample.json",
             "HotpotQA dev fullwiki contexts"),
    )
}  # fmt: skip
DEFAULT_DATASETS = ("hotpot", "2wiki", "musique", "hotpot_fullwiki")

# What IRCoT and FlashRAG publish (read from the paper / README; see benchmarks/README.md).
PUBLISHED: dict[str, Any] = {
    "ircot": {
        "source": "Trivedi et al., ACL 2023, arXiv:2212.10509v2; github.com/StonyBrookNLP/ircot",
        "setup": (
            "BM25 in Elasticsearch (english analyzer: stemming + stopwords); corpus: HotpotQA's own "
            "Wikipedia corpus (2017 abstracts), for 2Wiki / MuSiQue all paragraphs of train+dev+test; 500 "
            "test questions; recall of gold paragraphs among at most 15 retrieved, K tuned on 100 dev "
            "questions (OneR K in {5..15}, IRCoT K in {2,4,6,8})"
        ),
        "recall_gain_ircot_over_oner_points": {  # §5 'IRCoT retrieval is better than one-step'
            "flan_t5_xxl": {"hotpot": 7.9, "2wiki": 14.3, "musique": 3.5},
            "gpt3": {"hotpot": 11.3, "2wiki": 22.6, "musique": 12.5},
        },
        "absolute_recall": "only in Fig. 3 (bar chart), not given in the text",
        "answer_f1": {  # appendix table of answer F1 (Table 4 in arXiv v2)
            "oner_qa_flan_t5_xxl_direct": {"hotpot": 49.7, "2wiki": 51.2, "musique": 25.8},
            "ircot_qa_flan_t5_xxl_direct": {"hotpot": 59.1, "2wiki": 66.5, "musique": 30.8},
            "oner_qa_gpt3_cot": {"hotpot": 53.6, "2wiki": 54.8, "musique": 29.4},
            "ircot_qa_gpt3_cot": {"hotpot": 60.7, "2wiki": 68.0, "musique": 36.5},
        },
    },
    "flashrag": {
        "source": "RUC-NLPIR/FlashRAG README.md (Supporting Methods) @1ee52490",
        "setup": "e5-base-v2 dense retriever (not BM25), 5 docs per query, Llama3-8B-instruct",
        "bm25_numbers": "none published for HotpotQA / 2Wiki / MuSiQue",
        "answer_f1_e5": {
            "standard_rag": {"hotpot": 35.3, "2wiki": 21.0},
            "ircot": {"hotpot": 41.5, "2wiki": 32.4},
        },
    },
}


# --------------------------------------------------------------------------- harness
def dataset_cfg(spec: Spec, real_dir: Path, ids_path: Path | None = None) -> dict[str, Any]:
    """The `dataset` section evaluate.py gets from the overrides of `run_harness`."""
    path = str(real_dir / spec.path)
    return {"name": spec.name, "format": spec.fmt, "train_path": path, "dev_path": path,
            "test_path": None, "corpus_path": None,
            "test_ids_path": str(ids_path) if ids_path else None}  # fmt: skip


def run_harness(spec: Spec, real_dir: Path, ids_path: Path, policy: str, out: Path, cache: Path,
                top_k: int, max_steps: int) -> float:  # fmt: skip
    """evaluate.py with the oracle on the listed questions; the wall-clock seconds it took."""
    if out.exists():  # a leftover folder would make evaluate.py resume instead of rerun
        shutil.rmtree(out)
    path = real_dir / spec.path
    cmd = [
        sys.executable, str(REPO / "evaluate.py"), "target=oracle", f"target.policy={policy}",
        f"dataset={spec.name}", f"dataset.format={spec.fmt}", f"dataset.train_path={path}",
        f"dataset.dev_path={path}", f"dataset.test_ids_path={ids_path}", "split=test",
        f"retriever.top_k={top_k}", f"framework.max_steps={max_steps}", "logger=none",
        "progress=false", f"hydra.run.dir={out}", f"paths.cache_dir={cache}",
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, **OFFLINE_ENV}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(
            f"evaluate.py failed on {spec.key} ({policy}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return time.perf_counter() - t0


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON Lines file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------- rankings
class PlainBM25:
    """bm25s with its own defaults over the same texts; rankings as corpus positions, score-0 hits dropped.

    `stemmer`: None (the plain arm) or a PyStemmer stemmer (the control arm: then only the top-k
    selection differs from steper's)."""

    def __init__(self, texts: Sequence[str], stemmer: Any = None):
        import bm25s

        self._bm25s = bm25s
        self._stemmer = stemmer
        t0 = time.perf_counter()
        self.model = bm25s.BM25()
        corpus = bm25s.tokenize(list(texts), stopwords="en", stemmer=stemmer, show_progress=False)
        self.model.index(corpus, show_progress=False)
        self.build_s = time.perf_counter() - t0
        self.n = len(texts)

    def rank(self, queries: Sequence[str], k: int) -> list[tuple[list[int], list[int]]]:
        """Per query: (doc indices with a positive score, best first; the score-0 docs bm25s padded with)."""
        tokens = self._bm25s.tokenize(
            list(queries), stopwords="en", stemmer=self._stemmer, show_progress=False
        )
        docs, scores = self.model.retrieve(tokens, k=min(k, self.n), show_progress=False, n_threads=1)
        out: list[tuple[list[int], list[int]]] = []
        for d, s in zip(docs.tolist(), scores.tolist()):
            out.append(([int(j) for j, x in zip(d, s) if x > 0], [int(j) for j, x in zip(d, s) if x <= 0]))
        return out


def steper_rank(retriever: Any, queries: Sequence[str], k: int) -> list[list[int]]:
    """steper's BM25 top-k corpus positions per query (pids are '<dataset>:<position>')."""
    docs = retriever.retrieve(list(queries), k)
    return [[int(p.pid.rsplit(":", 1)[1]) for p in ds] for ds in docs]


def first_rank(ranking: Sequence[int], titles: Sequence[str], gold: str) -> int | None:
    """1-based rank of the first paragraph titled `gold` in `ranking`, or None."""
    for r, j in enumerate(ranking, 1):
        if titles[j] == gold:
            return r
    return None


# --------------------------------------------------------------------------- scoring
def need_steps(golds: Sequence[str], chain_titles: Sequence[str | None], max_steps: int) -> list[int]:
    """The step at which each gold paragraph is needed (see the module docstring)."""
    from steper.reasoning.trace import norm_title

    first: dict[str, int] = {}
    for i, t in enumerate(chain_titles):
        if t is not None:
            first.setdefault(norm_title(t), i)
    return [min(first.get(g, len(chain_titles)) + 1, max_steps) for g in golds]


def _pct(num: float, den: float) -> float | None:
    return round(100.0 * num / den, 1) if den else None


def score_loop(questions: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    """on-time / within-budget / all-gold recall from per-step retrieved title sets under `key`."""
    n_gold = on_time = budget = all_gold = all_time = 0
    by_need: dict[str, list[int]] = {}
    for q in questions:
        steps: list[set[str]] = q[key]
        seen_by: list[set[str]] = []
        acc: set[str] = set()
        for s in steps:
            acc = acc | s
            seen_by.append(acc)
        found_all = time_all = True
        for g, need in zip(q["golds"], q["need"]):
            n_gold += 1
            ok_time = bool(seen_by) and g in seen_by[min(need, len(seen_by)) - 1]
            ok_budget = bool(seen_by) and g in seen_by[-1]
            on_time += ok_time
            budget += ok_budget
            found_all &= ok_budget
            time_all &= ok_time
            bucket = str(need) if need < 3 else "3+"
            hit_tot = by_need.setdefault(bucket, [0, 0])
            hit_tot[0] += ok_time
            hit_tot[1] += 1
        all_gold += found_all
        all_time += time_all
    return {
        "gold_paragraphs": n_gold,
        "on_time_recall": _pct(on_time, n_gold),
        "budget_recall": _pct(budget, n_gold),
        "all_gold": _pct(all_gold, len(questions)),
        "all_on_time": _pct(all_time, len(questions)),
        "on_time_by_need_step": {b: {"recall": _pct(h, t), "n": t} for b, (h, t) in sorted(by_need.items())},
    }


def score_question_only(questions: Sequence[dict[str, Any]], key: str, ks: Iterable[int]) -> dict[str, Any]:
    """recall@k and all-gold@k of the question alone as the query (title sets under `key`, by k)."""
    out: dict[str, Any] = {}
    for k in ks:
        hits = tot = full = 0
        for q in questions:
            got = q[key][k]
            h = sum(g in got for g in q["golds"])
            hits += h
            tot += len(q["golds"])
            full += h == len(q["golds"])
        out[str(k)] = {"recall": _pct(hits, tot), "all_gold": _pct(full, len(questions))}
    return out


def rank_bucket(rank: int | None) -> str:
    """The miss table's column of a best rank (<= top-k only through the order of equal scores)."""
    if rank is None:
        return f">{RANK_DEPTH} or no term match"
    if rank <= 8:
        return "5-8"
    if rank <= 20:
        return "9-20"
    return f"21-{RANK_DEPTH}"


# --------------------------------------------------------------------------- one dataset
def run_dataset(spec: Spec, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from steper.data import load_questions
    from steper.data.readers import read_questions
    from steper.reasoning.ircot import IRCOT
    from steper.reasoning.trace import norm_title
    from steper.retrieval import index_dir, load_retriever

    real_dir = Path(args.real_dir).resolve()
    path = real_dir / spec.path
    if not path.is_file():
        raise SystemExit(f"{spec.key}: {path} not found (set --real-dir)")
    wd = work / spec.key
    wd.mkdir(parents=True, exist_ok=True)
    cache = wd / "cache"
    ids = [q.qid for q in read_questions(path, spec.fmt, strict=True, dataset=spec.name)]
    ids_path = wd / "ids.txt"
    ids_path.write_text("\n".join(ids) + "\n", encoding="utf-8")

    harness: dict[str, Any] = {}
    preds: dict[str, list[dict[str, Any]]] = {}
    for policy in POLICIES:
        out = wd / policy
        secs = run_harness(spec, real_dir, ids_path, policy, out, cache, args.top_k, args.max_steps)
        metrics = json.loads((out / "metrics.json").read_text())
        preds[policy] = read_jsonl(out / "predictions.jsonl")
        harness[policy] = {"em": metrics["em"], "f1": metrics["f1"],
                           "shown_gold_recall": metrics.get("gold_recall"),
                           "shown_all_gold": metrics.get("all_gold_found"),
                           "mean_steps": metrics.get("mean_steps"), "seconds": round(secs, 1)}  # fmt: skip

    # steper's index as the harness built it (a reload, not a rebuild)
    cfg = dataset_cfg(spec, real_dir, ids_path)
    rcfg = {"k1": 1.5, "b": 0.75, "method": "lucene", "stemmer": "english", "stopwords": "en"}
    if not index_dir(cfg, rcfg, cache).is_dir():
        raise SystemExit(f"{spec.key}: the harness's BM25 index was not found under {cache}")
    retriever = load_retriever(cfg, rcfg, cache)
    paras = [retriever.paragraph(i) for i in range(len(retriever))]
    titles = [norm_title(p.title) for p in paras]
    plain = PlainBM25([f"{p.title} {p.text}" for p in paras])

    qs = {q.qid: q for q in load_questions(cfg, "test")}
    rows = preds["ideal"]
    in_order_rows = {r["qid"]: r for r in preds["in_order"]}
    corpus_titles = set(titles)

    # the in-order query sequence: the question, then each chain sentence as the loop makes it a query
    io_queries: dict[str, list[str | None]] = {}
    io_mismatch = 0
    for qid, qu in qs.items():
        units = [IRCOT.unit(c.sentence) for c in qu.chain]
        seq = [IRCOT.query(qu.question, units[:i]) for i in range(min(len(units) + 1, args.max_steps))]
        io_queries[qid] = seq
        got = [s.get("query") for s in in_order_rows[qid]["trace"]["steps"]]
        io_mismatch += got != seq[: len(got)]  # the harness's in_order run issued a prefix of it

    # every query issued, ranked once per retriever
    uniq = sorted(
        {qu for r in rows for qu in r["queries"] if qu}
        | {r["question"] for r in rows}
        | {x for seq in io_queries.values() for x in seq if x}
    )
    ks = sorted(set(args.ks))
    depth = max([RANK_DEPTH, args.top_k, *ks])
    st_rank = dict(zip(uniq, steper_rank(retriever, uniq, depth)))
    pl_rank = {k: dict(zip(uniq, plain.rank(uniq, k))) for k in sorted({*ks, args.top_k, depth})}

    # control: bm25s with steper's stemmer must rank as steper does, up to the order of equal scores
    import Stemmer

    control = PlainBM25([f"{p.title} {p.text}" for p in paras], stemmer=Stemmer.Stemmer("english"))
    ctl = dict(zip(uniq, control.rank(uniq, args.top_k)))
    control_same = sum(ctl[x][0] == st_rank[x][: args.top_k] for x in uniq)
    control_same_set = sum(
        {titles[j] for j in ctl[x][0]} == {titles[j] for j in st_rank[x][: args.top_k]} for x in uniq
    )

    def st_set(query: str | None) -> set[str]:
        return {titles[j] for j in st_rank[query][: args.top_k]} if query else set()

    def pl_set(query: str | None) -> set[str]:
        return {titles[j] for j in pl_rank[args.top_k][query][0]} if query else set()

    questions: list[dict[str, Any]] = []
    replay_mismatch = zero_gold = 0
    for r in rows:
        golds = [norm_title(t) for t in r["gold_titles"]]
        steps = r["trace"]["steps"]
        chain = qs[r["qid"]].chain
        queries = [s.get("query") for s in steps]  # None: a step without retrieval
        q: dict[str, Any] = {"qid": r["qid"], "question": r["question"], "golds": golds,
                             "need": need_steps(golds, [c.title for c in chain], args.max_steps),
                             "queries": queries, "io_queries": io_queries[r["qid"]]}  # fmt: skip
        # the harness's own retrieval, step by step (a step without a query retrieves nothing)
        q["steper_steps"] = [
            {norm_title(t) for t in s["retrieved_titles"]} if s.get("query") else set() for s in steps
        ]
        for s in steps:
            if s.get("query"):
                replay = st_rank[s["query"]][: args.top_k]
                replay_mismatch += [f"{spec.name}:{j}" for j in replay] != list(s["retrieved"])
                zero_gold += sum(titles[j] in golds for j in pl_rank[args.top_k][s["query"]][1])
        q["plain_steps"] = [pl_set(x) for x in queries]
        q["steper_io"] = [st_set(x) for x in q["io_queries"]]
        q["plain_io"] = [pl_set(x) for x in q["io_queries"]]
        q["steper_q"] = {k: {titles[j] for j in st_rank[r["question"]][:k]} for k in ks}
        q["plain_q"] = {k: {titles[j] for j in pl_rank[k][r["question"]][0]} for k in ks}
        questions.append(q)

    loop = {
        "in_order_queries": {
            "steper": score_loop(questions, "steper_io"),
            "plain_bm25s": score_loop(questions, "plain_io"),
        },
        "ideal_run": {
            "steper": score_loop(questions, "steper_steps"),
            "plain_bm25s": score_loop(questions, "plain_steps"),
        },
    }
    one = {"steper": score_question_only(questions, "steper_q", ks),
           "plain_bm25s": score_question_only(questions, "plain_q", ks)}  # fmt: skip

    # misses: gold paragraphs never retrieved within the budget of the ideal run
    misses: dict[str, Any] = {"steper": {}, "plain_bm25s": {}}
    examples: list[dict[str, Any]] = []
    only = {"steper_only": 0, "plain_only": 0, "neither": 0}
    for q in questions:
        st_all, pl_all = set().union(*q["steper_steps"]), set().union(*q["plain_steps"])
        for g in q["golds"]:
            in_st, in_pl = g in st_all, g in pl_all
            if in_st != in_pl or not in_st:
                only["steper_only" if in_st else "plain_only" if in_pl else "neither"] += 1
            for name, found, ranking in (("steper", in_st, lambda x: st_rank[x]),
                                         ("plain_bm25s", in_pl, lambda x: pl_rank[depth][x][0])):  # fmt: skip
                if found:
                    continue
                ranks = [first_rank(ranking(x), titles, g) for x in q["queries"] if x]
                best = min((x for x in ranks if x is not None), default=None)
                b = rank_bucket(best)
                misses[name][b] = misses[name].get(b, 0) + 1
                if name == "steper" and len(examples) < args.examples:
                    examples.append({"qid": q["qid"], "gold": g, "in_corpus": g in corpus_titles,
                                     "best_steper_rank": best, "found_by_plain": in_pl,
                                     "queries": q["queries"]})  # fmt: skip

    # where the tokenizers part: gold paragraphs in one top-k of the question and not the other
    differ: list[dict[str, Any]] = []
    differ_n = {"steper": 0, "plain_bm25s": 0}
    for q in questions:
        st_q, pl_q = st_set(q["question"]), pl_set(q["question"])
        for g in q["golds"]:
            if (g in st_q) != (g in pl_q):
                differ_n["steper" if g in st_q else "plain_bm25s"] += 1
            if (g in st_q) != (g in pl_q) and len(differ) < 2 * args.examples:
                differ.append({"qid": q["qid"], "question": q["question"], "gold": g,
                               "found_by": "steper" if g in st_q else "plain_bm25s"})  # fmt: skip

    n_gold = sum(len(q["golds"]) for q in questions)
    return {
        "dataset": spec.key,
        "label": spec.label,
        "file": spec.path,
        "questions": len(rows),
        "corpus_paragraphs": len(paras),
        "gold_per_question": round(n_gold / len(rows), 2),
        "gold_in_corpus": _pct(sum(g in corpus_titles for q in questions for g in q["golds"]), n_gold),
        "queries_per_question": round(
            sum(sum(x is not None for x in q["queries"]) for q in questions) / len(rows), 2
        ),
        "harness": harness,
        "loop": loop,
        "question_only": one,
        "found_by_one_only": only,
        "misses_best_rank": misses,
        "miss_examples": examples,
        "question_topk_only": differ_n,
        "question_topk_differences": differ,
        "replay_mismatches": replay_mismatch,
        "in_order_query_mismatches": io_mismatch,
        "zero_score_gold": zero_gold,
        "stemmed_bm25s_control": {
            "queries": len(uniq),
            f"same_top{args.top_k}_order": control_same,
            f"same_top{args.top_k}_titles": control_same_set,
        },  # fmt: skip
        "plain_index_s": round(plain.build_s, 2),
    }


# --------------------------------------------------------------------------- output
def _f(x: Any) -> str:
    return "–" if x is None else f"{x:.1f}" if isinstance(x, float) else str(x)


def _pair(a: dict[str, Any], b: dict[str, Any], key: str) -> str:
    return f"{_f(a[key])} / {_f(b[key])}"


def markdown(results: Sequence[dict[str, Any]], ks: Sequence[int], top_k: int, max_steps: int) -> str:
    lines = [
        f"### Gold-paragraph recall %, oracle queries, top-{top_k} per step, ≤ {max_steps} steps "
        "(steper / plain bm25s)",
        "",
        "| dataset | questions | corpus | gold/q | gold in corpus | on time, in-order queries | "
        "all on time, in-order | on time, ideal run | within budget, ideal run | all gold, ideal run | "
        "EM in_order | EM ideal |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        io, idl, h = r["loop"]["in_order_queries"], r["loop"]["ideal_run"], r["harness"]
        lines.append(
            f"| {r['label']} | {r['questions']} | {r['corpus_paragraphs']} | {r['gold_per_question']} | "
            f"{_f(r['gold_in_corpus'])} | {_pair(io['steper'], io['plain_bm25s'], 'on_time_recall')} | "
            f"{_pair(io['steper'], io['plain_bm25s'], 'all_on_time')} | "
            f"{_pair(idl['steper'], idl['plain_bm25s'], 'on_time_recall')} | "
            f"{_pair(idl['steper'], idl['plain_bm25s'], 'budget_recall')} | "
            f"{_pair(idl['steper'], idl['plain_bm25s'], 'all_gold')} | "
            f"{_f(h['in_order']['em'])} | {_f(h['ideal']['em'])} |"
        )
    lines += ["", "### On-time recall % by the step that needs the paragraph, in-order queries "
              "(steper / plain bm25s; gold paragraphs)", "",
              "| dataset | step 1 (the question) | step 2 | step 3+ |", "|---|---|---|---|"]  # fmt: skip
    for r in results:
        io = r["loop"]["in_order_queries"]
        st, pl = io["steper"]["on_time_by_need_step"], io["plain_bm25s"]["on_time_by_need_step"]
        cells = [f"{_f(st[b]['recall'])} / {_f(pl[b]['recall'])} ({st[b]['n']})" if b in st else "–"
                 for b in ("1", "2", "3+")]  # fmt: skip
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    head = " | ".join(f"@{k}" for k in ks)
    lines += ["", "### Question only (one-step retrieval): recall % / all-gold %", "",
              f"| dataset | retriever | {head} |", "|---|---|" + "---|" * len(ks)]  # fmt: skip
    for r in results:
        for name in ("steper", "plain_bm25s"):
            o = r["question_only"][name]
            cells = " | ".join(f"{_f(o[str(k)]['recall'])} / {_f(o[str(k)]['all_gold'])}" for k in ks)
            lines.append(f"| {r['label']} | {name} | {cells} |")
    lines += ["", "### Gold paragraphs not retrieved within the budget (ideal run): count by best rank under "
              "any of the question's queries", "",
              "| dataset | retriever | 5-8 | 9-20 | 21-50 | >50 / no match | found by the other only |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        for name, other in (("steper", "plain_only"), ("plain_bm25s", "steper_only")):
            m = r["misses_best_rank"][name]
            cells = " | ".join(str(m.get(b, 0)) for b in ("5-8", "9-20", f"21-{RANK_DEPTH}",
                                                          f">{RANK_DEPTH} or no term match"))  # fmt: skip
            lines.append(f"| {r['label']} | {name} | {cells} | {r['found_by_one_only'][other]} |")
    lines += ["", "checks: " + "; ".join(
        f"{r['dataset']}: replay mismatches {r['replay_mismatches']}, in-order query mismatches "
        f"{r['in_order_query_mismatches']}, harness all gold shown (ideal) "
        f"{_f(100 * r['harness']['ideal']['shown_all_gold'])} %, gold hits plain bm25s had only at score 0: "
        f"{r['zero_score_gold']}, question top-{top_k} gold found by one only (steper, plain): "
        f"{r['question_topk_only']['steper']}, {r['question_topk_only']['plain_bm25s']}; bm25s + PyStemmer "
        f"control, queries with steper's top-{top_k} titles: {r['stemmed_bm25s_control'][f'same_top{top_k}_titles']}"
        f" of {r['stemmed_bm25s_control']['queries']}"
        for r in results)]  # fmt: skip
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import bm25s
    import numpy

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    return {"cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(),
            "bm25s": bm25s.__version__, "PyStemmer": version("PyStemmer"), "numpy": numpy.__version__}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--real-dir", default=str(REPO.parent / "shared" / "data" / "real"),
                   help="folder of the real rows (default: ../shared/data/real from the repo root)")  # fmt: skip
    p.add_argument(
        "--datasets", default=",".join(DEFAULT_DATASETS), help=f"comma list of {', '.join(DATASETS)}"
    )
    p.add_argument("--ks", default="2,4,8,15", help="k of the question-only recall@k")
    p.add_argument("--top-k", type=int, default=4, help="retriever.top_k of the loop")
    p.add_argument("--max-steps", type=int, default=5, help="framework.max_steps of the loop")
    p.add_argument(
        "--examples", type=int, default=8, help="missed gold paragraphs kept per dataset in the JSON"
    )
    p.add_argument(
        "--keep", default=None, help="work folder to keep (harness outputs, caches); default: a temp dir"
    )
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    args.ks = [int(k) for k in str(args.ks).split(",") if k.strip()]
    keys = [k.strip() for k in args.datasets.split(",") if k.strip()]
    bad = [k for k in keys if k not in DATASETS]
    if bad:
        p.error(f"unknown dataset(s) {bad}; choose from {', '.join(DATASETS)}")

    t0 = time.perf_counter()
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="real_retrieval_")
    work = Path(args.keep) if args.keep else Path(tmp.name)  # type: ignore[union-attr]
    try:
        results = []
        for k in keys:
            print(f"[{time.perf_counter() - t0:6.1f}s] {k}", file=sys.stderr, flush=True)
            results.append(run_dataset(DATASETS[k], args, work))
    finally:
        if tmp is not None:
            tmp.cleanup()
    report = {"machine": machine(), "settings": {"top_k": args.top_k, "max_steps": args.max_steps, "ks": args.ks,
              "real_dir": str(Path(args.real_dir).resolve())}, "seconds": round(time.perf_counter() - t0, 1),
              "results": results, "published": PUBLISHED}  # fmt: skip
    print(markdown(results, args.ks, args.top_k, args.max_steps))
    print(f"\n{report['seconds']} s on {report['machine']['cpus']} CPUs ({report['machine']['cpu']})")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
