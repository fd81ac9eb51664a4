"""BM25 speed and memory: steper's BM25Retriever (bm25s) vs rank_bm25's BM25Okapi, on a synthetic corpus.

A seeded random word model: a Zipf-like vocabulary of made-up words (plus common English function
words at the top), paragraphs of 60-100 words with 2-3 word titles. Each query is drawn from one
paragraph (title words + a few of its words), so recall@k of that paragraph is a sanity check.

    .venv/bin/python benchmarks/bm25_bench.py                      # 100k paragraphs, 1,000 queries
    .venv/bin/python benchmarks/bm25_bench.py --paragraphs 20000 --out bench.json

rank_bm25 scores every document in Python for every query, so it is timed on a subsample of the
queries (--rank-bm25-queries) and its throughput extrapolated; the output says so.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from steper.data.schema import Paragraph  # noqa: E402
from steper.retrieval import BM25Retriever  # noqa: E402

FUNCTION_WORDS = "the of and in to a is was by for on with as at from his her that it an which".split()
SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + [
    "ar",
    "el",
    "in",
    "on",
    "us",
    "or",
    "an",
]


# ------------------------------------------------------------------ synthetic data
def make_vocab(rng: np.random.Generator, size: int) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < size:
        n = int(rng.integers(2, 5))
        words["".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), n))] = None
    return list(words)


def make_corpus(n_paragraphs: int, vocab_size: int, seed: int) -> tuple[list[Paragraph], np.ndarray]:
    rng = np.random.default_rng(seed)
    vocab = np.array(FUNCTION_WORDS + make_vocab(rng, vocab_size), dtype=object)
    ranks = np.arange(1, len(vocab) + 1)
    p = 1.0 / (ranks + 2.7) ** 1.07  # Zipf-Mandelbrot
    p /= p.sum()
    lengths = rng.integers(60, 101, n_paragraphs)
    words = vocab[rng.choice(len(vocab), size=int(lengths.sum()), p=p)]
    # Titles: 2-3 words from the rarer half of the vocabulary (names).
    rare = np.arange(len(vocab) // 2, len(vocab))
    title_len = rng.integers(2, 4, n_paragraphs)
    title_words = vocab[rng.choice(rare, size=int(title_len.sum()))]
    paragraphs, offsets = [], np.concatenate([[0], np.cumsum(lengths)])
    t_off = np.concatenate([[0], np.cumsum(title_len)])
    for i in range(n_paragraphs):
        title = " ".join(title_words[t_off[i] : t_off[i + 1]]).title()
        text = " ".join(words[offsets[i] : offsets[i + 1]]) + "."
        paragraphs.append(Paragraph(title=title, text=f"{title} {text}", pid=f"p{i}"))
    return paragraphs, vocab


def make_queries(paragraphs: list[Paragraph], n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(seed + 1)
    targets = rng.choice(len(paragraphs), size=n, replace=False)
    queries = []
    for t in targets:
        p = paragraphs[t]
        body = p.text.rstrip(".").split()[len(p.title.split()) :]
        picked = rng.choice(body, size=int(rng.integers(3, 7)), replace=False)
        queries.append(" ".join([*p.title.split()[:2], *picked]))
    return queries, [int(t) for t in targets]


# -------------------------------------------------------------------- measuring
class PeakRSS:
    """Peak resident memory above the level at entry, sampled every few milliseconds (psutil)."""

    def __init__(self, interval: float = 0.005):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.delta_mb = (self.peak - self.start) / 2**20


class _NoPeak:
    delta_mb = float("nan")

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def peak_rss():
    try:
        return PeakRSS()
    except ImportError:
        return _NoPeak()


def dir_size_mb(path: Path, pattern: str = "*") -> float:
    return sum(f.stat().st_size for f in path.glob(pattern) if f.is_file()) / 2**20


def recall_at(results: list[list[Paragraph]], targets: list[int], paragraphs: list[Paragraph]) -> float:
    hits = sum(paragraphs[t].pid in {p.pid for p in res} for res, t in zip(results, targets))
    return hits / len(targets)


# -------------------------------------------------------------------------- run
def bench_steper(paragraphs, queries, targets, k, n_threads_list, workdir: Path) -> dict:
    out: dict = {}
    with peak_rss() as mem:
        t0 = time.perf_counter()
        retriever = BM25Retriever.build(paragraphs)
        out["index_s"] = time.perf_counter() - t0
    out["index_peak_rss_mb"] = mem.delta_mb
    out["vocab_terms"] = len(retriever._bm25.vocab_dict)

    for n_threads in n_threads_list:
        retriever.retrieve(queries[:10], k=k, n_threads=n_threads)  # warm-up
        with peak_rss() as mem:
            t0 = time.perf_counter()
            res = retriever.retrieve(queries, k=k, n_threads=n_threads)
            dt = time.perf_counter() - t0
        out[f"qps_threads{n_threads}"] = len(queries) / dt
        out[f"retrieve_peak_rss_mb_threads{n_threads}"] = mem.delta_mb
    out[f"recall@{k}"] = recall_at(res, targets, paragraphs)

    # Single queries, one call each (how a loop that does not batch would use it).
    t0 = time.perf_counter()
    for q in queries[:200]:
        retriever.retrieve([q], k=k)
    out["qps_one_by_one"] = 200 / (time.perf_counter() - t0)

    d = workdir / "idx"
    t0 = time.perf_counter()
    retriever.save(d)
    out["save_s"] = time.perf_counter() - t0
    out["disk_index_mb"] = dir_size_mb(d, "*.index.*")
    out["disk_paragraphs_mb"] = dir_size_mb(d, "paragraphs.*")
    out["disk_total_mb"] = dir_size_mb(d)
    del retriever
    gc.collect()
    with peak_rss() as mem:
        t0 = time.perf_counter()
        loaded = BM25Retriever.load(d)
        out["load_s"] = time.perf_counter() - t0
    out["load_peak_rss_mb"] = mem.delta_mb
    t0 = time.perf_counter()
    res2 = loaded.retrieve(queries, k=k)
    out["qps_after_load"] = len(queries) / (time.perf_counter() - t0)
    out["load_identical"] = [[p.pid for p in r] for r in res2] == [[p.pid for p in r] for r in res]
    out["_top1"] = [r[0].pid if r else None for r in res]
    return out


def bench_rank_bm25(paragraphs, queries, targets, k, n_sub: int) -> dict | None:
    try:
        from rank_bm25 import BM25Okapi
    except ImportError:
        return None
    tok = BM25Retriever.build(paragraphs[:1]).tokenizer  # same tokenization as steper's index
    out: dict = {}
    with peak_rss() as mem:
        t0 = time.perf_counter()
        tokenized = [tok.words(f"{p.title} {p.text}") for p in paragraphs]
        model = BM25Okapi(tokenized)
        out["index_s"] = time.perf_counter() - t0
    out["index_peak_rss_mb"] = mem.delta_mb
    sub = queries[:n_sub]
    t0 = time.perf_counter()
    top1 = []
    hits = 0
    for q, t in zip(sub, targets):
        scores = model.get_scores(tok.words(q))
        top = np.argsort(-scores, kind="stable")[:k]
        top1.append(paragraphs[int(top[0])].pid)
        hits += t in set(top.tolist())
    dt = time.perf_counter() - t0
    out["queries_timed"] = len(sub)
    out["qps_extrapolated"] = len(sub) / dt
    out["est_s_all_queries"] = dt / len(sub) * len(queries)
    out[f"recall@{k}_subsample"] = hits / len(sub)
    out["_top1"] = top1
    return out


def _run_phase(phase: str, args: argparse.Namespace) -> dict | None:
    """Run one library's measurements in a fresh interpreter, so their memory numbers do not mix."""
    with tempfile.TemporaryDirectory(prefix="bm25_bench_") as tmp:
        res_file = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, "--_phase", phase, "--_result", str(res_file)]
        for name in ("paragraphs", "queries", "vocab", "k", "seed", "threads", "rank_bm25_queries"):
            cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        proc = subprocess.run(cmd, env={**os.environ, "TQDM_DISABLE": "1"})
        if proc.returncode != 0:
            raise SystemExit(f"benchmark phase {phase!r} failed (exit {proc.returncode})")
        return json.loads(res_file.read_text())


def _phase_main(args: argparse.Namespace) -> None:
    paragraphs, _ = make_corpus(args.paragraphs, args.vocab, args.seed)
    queries, targets = make_queries(paragraphs, args.queries, args.seed)
    n_threads_list = [int(x) for x in args.threads.split(",") if x.strip()]
    if args._phase == "steper":
        with tempfile.TemporaryDirectory(prefix="bm25_bench_") as tmp:
            res = bench_steper(paragraphs, queries, targets, args.k, n_threads_list, Path(tmp))
    else:
        res = bench_rank_bm25(paragraphs, queries, targets, args.k, args.rank_bm25_queries)
    if res is not None:
        res["process_max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args._result).write_text(json.dumps(res))


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paragraphs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--vocab", type=int, default=30_000, help="made-up words in the vocabulary")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads", default="0,-1", help="n_threads values to time (0 = sequential, -1 = all CPUs)"
    )
    ap.add_argument(
        "--rank-bm25-queries", type=int, default=20, help="queries timed for rank_bm25 (0 = skip)"
    )
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--_phase", choices=["steper", "rank_bm25"], help=argparse.SUPPRESS)
    ap.add_argument("--_result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._phase:
        _phase_main(args)
        return None
    n_threads_list = [int(x) for x in args.threads.split(",") if x.strip()]

    t0 = time.perf_counter()
    paragraphs, _ = make_corpus(args.paragraphs, args.vocab, args.seed)
    queries, _ = make_queries(paragraphs, args.queries, args.seed)
    gen_s = time.perf_counter() - t0
    n_words = sum(len(p.text.split()) for p in paragraphs)
    del paragraphs
    print(
        f"corpus: {args.paragraphs:,} paragraphs, {n_words:,} words, {args.vocab:,}-word vocabulary "
        f"(generated in {gen_s:.1f}s); {len(queries):,} queries; k={args.k}; {os.cpu_count()} CPUs",
        flush=True,
    )
    s = _run_phase("steper", args)
    try:
        import rank_bm25  # noqa: F401

        have_rank = True
    except ImportError:
        have_rank = False
    rank_res = _run_phase("rank_bm25", args) if have_rank and args.rank_bm25_queries > 0 else None

    rows = [("index build (s)", f"{s['index_s']:.2f}", "")]
    rows.append(("index build peak RSS above baseline (MB)", f"{s['index_peak_rss_mb']:.0f}", ""))
    for n in n_threads_list:
        rows.append((f"queries/s, batched, n_threads={n}", f"{s[f'qps_threads{n}']:,.0f}", ""))
    rows.append(("queries/s, one call per query", f"{s['qps_one_by_one']:,.0f}", ""))
    rows.append((f"recall@{args.k} of the source paragraph", f"{s[f'recall@{args.k}']:.3f}", ""))
    rows.append(
        ("on disk (MB): index / paragraphs", f"{s['disk_index_mb']:.1f} / {s['disk_paragraphs_mb']:.1f}", "")
    )
    rows.append(("save / load (s)", f"{s['save_s']:.2f} / {s['load_s']:.2f}", ""))
    rows.append(("load peak RSS above baseline (MB)", f"{s['load_peak_rss_mb']:.0f}", ""))
    rows.append(("queries/s after load (lazy paragraphs)", f"{s['qps_after_load']:,.0f}", ""))
    rows.append(("results identical after load", str(s["load_identical"]), ""))
    rows.append(("process max RSS (MB)", f"{s['process_max_rss_mb']:.0f}", ""))
    agree = None
    if rank_res is not None:
        r = rank_res
        n_sub = r["queries_timed"]
        agree = sum(a == b for a, b in zip(s["_top1"][:n_sub], r["_top1"])) / n_sub
        best_qps = max(s[f"qps_threads{n}"] for n in n_threads_list)
        rows[0] = (rows[0][0], rows[0][1], f"{r['index_s']:.2f} (incl. tokenizing)")
        rows[1] = (rows[1][0], rows[1][1], f"{r['index_peak_rss_mb']:.0f}")
        rows[2] = (
            rows[2][0],
            rows[2][1],
            f"{r['qps_extrapolated']:.2f} (est. from {n_sub} queries: "
            f"{r['est_s_all_queries']:,.0f}s for all {len(queries):,}; {best_qps / r['qps_extrapolated']:,.0f}x slower)",
        )
        rows.append((rows[-1][0], rows[-1][1], f"{r['process_max_rss_mb']:.0f}"))
        del rows[-2]
        rows.append((f"top-1 agreement with rank_bm25 ({n_sub} queries)", f"{agree:.2f}", ""))
    print()
    w = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    print(f"{'':{w}}  {'steper (bm25s)':>{w2}}  {'rank_bm25 BM25Okapi' if rank_res else ''}")
    for name, a, b in rows:
        print(f"{name:{w}}  {a:>{w2}}  {b}")
    if rank_res is None and args.rank_bm25_queries > 0:
        print("\nrank_bm25 is not installed (pip install rank-bm25): comparison skipped")
    elif rank_res is not None:
        print(
            f"\nrank_bm25's queries/s is EXTRAPOLATED from {rank_res['queries_timed']} of the {len(queries)} queries "
            "(it scores every document in Python for each query term). Its IDF (Okapi, epsilon floor) differs "
            "from bm25s's lucene variant, so rankings agree mostly, not exactly. Each library ran in its own "
            "process; RSS is measured above the level after generating the corpus."
        )

    import bm25s

    result = {
        "config": {k_: v for k_, v in vars(args).items() if not k_.startswith("_")}
        | {"out": str(args.out) if args.out else None},
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "bm25s": getattr(bm25s, "__version__", "?"),
            "numpy": np.__version__,
        },
        "corpus": {
            "paragraphs": args.paragraphs,
            "words": n_words,
            "queries": len(queries),
            "generate_s": gen_s,
        },
        "steper_bm25s": {k_: v for k_, v in s.items() if not k_.startswith("_")},
        "rank_bm25": {k_: v for k_, v in rank_res.items() if not k_.startswith("_")} if rank_res else None,
        "top1_agreement": agree,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
