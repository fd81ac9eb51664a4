"""BM25 at HotpotQA size: steper's streamed corpus + chunked index vs a plain in-memory bm25s build.

A seeded synthetic corpus shaped like the 2017 Wikipedia abstracts IRCoT indexes for HotpotQA
(titles of 1-5 words, texts of 20-120 words starting with the title, a Zipf-Mandelbrot vocabulary,
0.1 % exact duplicate lines for the dedup to drop) is written as a {title, text} JSONL. Then, each
in its own process (so memory numbers stay apart):

- steper build: `load_retriever(dataset=hotpot, corpus_path=<the JSONL>)`, the code path
  `evaluate.py dataset=hotpot dataset.corpus_path=...` takes: corpus store, tokenize, index, save.
- steper reload + queries: the same call again (now a reload), then 1,000 queries, top-10.
- plain bm25s: the same paragraphs (read from steper's corpus store, held in memory as a plain
  script would), the same tokens (`Bm25Tokenizer.encode_corpus`), `bm25s.BM25.index`, `save`,
  `bm25s.BM25.load`, `bm25s.BM25.retrieve` for the same 1,000 queries.

It checks that the two indexes are the same arrays and that the top-10 agree, and prints a table.

    .venv/bin/python benchmarks/bm25_scale.py --paragraphs 1000000 --out scale-1m.json
    .venv/bin/python benchmarks/bm25_scale.py --paragraphs 5233329 --out scale-5m.json

The plain build needs ≈ 3.2 GiB per million paragraphs (2.5 with --plain-stream); it waits
(polling every minute, up to an hour) until MemAvailable covers that plus 3 GiB, or is skipped
with --skip-plain.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GIB = 1024**3
FUNCTION_WORDS = (
    "the of and in to a is was by for on with as at from his her that it an which he she are were "
    "be has had its this first also their after one two new years born"
).split()
SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["ar", "el", "in", "on", "us", "or", "an"]
HOTPOT_ABSTRACTS = 5_233_329


# ------------------------------------------------------------------ synthetic abstracts
def make_vocab(rng: np.random.Generator, size: int) -> np.ndarray:
    words: dict[str, None] = dict.fromkeys(FUNCTION_WORDS)
    while len(words) < size:
        n = int(rng.integers(2, 6))
        words["".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), n))] = None
    return np.array(list(words), dtype=object)


def generate(path: Path, n: int, vocab_size: int, n_queries: int, seed: int, block: int = 100_000) -> None:
    """Write `n` distinct abstracts (+ 0.1 % repeated lines) to `path` and the queries beside it."""
    rng = np.random.default_rng(seed)
    vocab = make_vocab(rng, vocab_size)
    ranks = np.arange(1, len(vocab) + 1)
    p = 1.0 / (ranks + 2.7) ** 1.07  # Zipf-Mandelbrot
    cdf = np.cumsum(p / p.sum())
    rare = np.arange(len(vocab) // 4, len(vocab))  # title words: names, from the rarer words
    targets = set(rng.choice(n, size=n_queries, replace=False).tolist())
    queries: dict[int, str] = {}
    tmp = path.with_name(path.name + ".tmp")
    t0 = time.perf_counter()
    with open(tmp, "w", encoding="utf-8") as f:
        for start in range(0, n, block):
            m = min(block, n - start)
            tl = rng.integers(1, 6, m)
            xl = rng.integers(20, 121, m)
            tw = vocab[rng.choice(rare, size=int(tl.sum()))].tolist()
            # Inverse-CDF sampling: same distribution as rng.choice(p=...), much faster at this size.
            xw = vocab[np.minimum(np.searchsorted(cdf, rng.random(int(xl.sum()))), len(vocab) - 1)].tolist()
            dup = rng.random(m) < 0.001
            to, xo = 0, 0
            lines = []
            for i in range(m):
                title = " ".join(tw[to : to + tl[i]]).title()
                words = xw[xo : xo + xl[i]]
                to += tl[i]
                xo += xl[i]
                line = json.dumps({"title": title, "text": f"{title} {' '.join(words)}."}) + "\n"
                lines.append(line)
                if dup[i] and lines:
                    lines.append(lines[int(rng.integers(0, len(lines)))])  # an exact repeat of an earlier line
                if start + i in targets:
                    k = int(rng.integers(3, 7))
                    picks = rng.choice(len(words), size=min(k, len(words)), replace=False)
                    queries[start + i] = " ".join([*title.split()[:2], *(words[j] for j in sorted(picks))])
            f.writelines(lines)
            if start // block % 10 == 0:
                print(f"generate: {start + m:,}/{n:,} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
    os.replace(tmp, path)
    order = sorted(queries)
    qfile = path.with_name(path.stem + ".queries.json")
    qfile.write_text(json.dumps({"queries": [queries[i] for i in order], "targets": order}))


# ------------------------------------------------------------------ measurement helpers
def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_split() -> dict[str, int]:
    """Resident memory by kind: anonymous (the process's own) and file-backed (memory-mapped files,
    page cache that other processes share and the kernel can drop)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
    return out


def max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class RssSampler:
    """RSS every 0.25 s in a thread: the peak within any time window, after the fact."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self.t0, rss()))
            self._stop.wait(0.25)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, a: float = 0.0, b: float = float("inf")) -> int:
        return max((r for t, r in self.samples if a <= t <= b), default=0)


def dir_bytes(path: Path, exclude: tuple[str, ...] = ()) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file() and f.name not in exclude)


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_for_memory(need: int, poll_s: int = 60, max_wait_s: int = 3600) -> bool:
    waited = 0
    while mem_available() < need:
        if waited >= max_wait_s:
            return False
        print(
            f"waiting for memory: {mem_available() / GIB:.1f} GiB available, need {need / GIB:.1f} GiB",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(poll_s)
        waited += poll_s
    return True


def dataset_cfg(corpus: Path) -> dict:
    return {"name": "hotpot", "format": "hotpot", "corpus_path": str(corpus)}


def load_queries(corpus: Path) -> tuple[list[str], list[int]]:
    q = json.loads(corpus.with_name(corpus.stem + ".queries.json").read_text())
    return q["queries"], q["targets"]


# ------------------------------------------------------------------ the arms (subprocesses)
def arm_steper_build(corpus: Path, cache: Path) -> dict:
    from steper.retrieval import index_dir, load_retriever

    shutil.rmtree(cache, ignore_errors=True)
    sampler = RssSampler()
    t0 = time.perf_counter()
    r = load_retriever(dataset_cfg(corpus), {}, cache)
    wall = time.perf_counter() - t0
    sampler.stop()
    d = index_dir(dataset_cfg(corpus), {}, cache)
    meta = json.loads((d / "meta.json").read_text())
    corpus_meta = json.loads((d.parent / "corpus.meta.json").read_text())
    sec = {"corpus": corpus_meta["build_seconds"], **meta["build"]["seconds"]}
    edges, t = {}, 0.0
    for phase in ("corpus", "tokenize", "index", "save"):
        edges[phase] = (t, t + sec[phase])
        t += sec[phase]
    return {
        "paragraphs": len(r),
        "terms": meta["build"]["terms"],
        "entries": meta["build"]["entries"],
        "chunk_size": meta["build"]["chunk_size"],
        "wall_s": wall,
        "seconds": sec,
        "peak_rss": max_rss(),
        "phase_peak_rss": {p: sampler.peak(a - 0.5, b + 0.5) for p, (a, b) in edges.items()},
        "disk": {
            "corpus_store": dir_bytes(d.parent),
            "index_arrays": dir_bytes(d, exclude=("paragraphs.jsonl", "paragraphs.offsets.npy")),
            "paragraphs_hard_link": (d / "paragraphs.jsonl").stat().st_nlink > 1,
        },
        "index_dir": str(d),
    }


def _top(results_docs, results_scores) -> list[list[list]]:
    return [
        [[int(p.pid.split(":")[1]), s] for p, s in zip(docs, scores)]
        for docs, scores in zip(results_docs, results_scores)
    ]


def arm_steper_query(corpus: Path, cache: Path, out: Path) -> dict:
    from steper.retrieval import load_retriever

    queries, targets = load_queries(corpus)
    base = rss()
    t0 = time.perf_counter()
    r = load_retriever(dataset_cfg(corpus), {}, cache)  # a reload now: memory-mapped index + paragraphs
    load_s = time.perf_counter() - t0
    after_load = rss()
    split_load = rss_split()
    runs = []
    res = None
    for _ in range(2):  # first: cold pages of the memory-mapped index; second: warm
        t0 = time.perf_counter()
        res = r.retrieve_with_scores(queries, k=10, n_threads=0)
        runs.append(time.perf_counter() - t0)
    top = _top(*res)
    out.write_text(json.dumps(top))
    recall = float(np.mean([t in {d for d, _ in row} for t, row in zip(targets, top)]))
    return {
        "load_s": load_s,
        "rss_before": base,
        "rss_after_load": after_load,
        "rss_after_queries": rss(),
        "rss_split_after_load": split_load,
        "rss_split_after_queries": rss_split(),
        "queries": len(queries),
        "query_s": runs,
        "recall_at_10": recall,
    }


def arm_plain(corpus: Path, cache: Path, work: Path, stream: bool) -> dict:
    import bm25s

    from steper.data.corpus import ParagraphStore
    from steper.retrieval import Bm25Tokenizer, index_dir
    from steper.retrieval.bm25 import _resolve_stopwords

    d = index_dir(dataset_cfg(corpus), {}, cache)
    meta = json.loads((d / "meta.json").read_text())
    params = meta["params"]
    tok = Bm25Tokenizer(params["stemmer"], _resolve_stopwords(params["stopwords"]))
    store = ParagraphStore(d.parent / "corpus.jsonl")  # the same deduplicated paragraphs, same order
    sec: dict[str, float] = {}
    sampler = RssSampler()
    t0 = time.perf_counter()
    texts = (f"{p.title} {p.text}" for p in store)
    if not stream:
        texts = list(texts)  # a plain script holds its corpus
    sec["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids, vocab = tok.encode_corpus(texts)
    del texts
    sec["tokenize"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = bm25s.BM25(k1=params["k1"], b=params["b"], method=params["method"], backend="numpy")
    model.index((ids, vocab), create_empty_token=False, show_progress=False)
    del ids
    sec["index"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    shutil.rmtree(work, ignore_errors=True)
    model.save(work, show_progress=False)
    sec["save"] = time.perf_counter() - t0
    sampler.stop()
    return {"seconds": sec, "peak_rss": max_rss(), "disk": dir_bytes(work), "terms": len(vocab)}


def arm_plain_query(corpus: Path, cache: Path, work: Path, out: Path) -> dict:
    import bm25s

    from steper.retrieval import Bm25Tokenizer, index_dir
    from steper.retrieval.bm25 import _resolve_stopwords

    queries, _ = load_queries(corpus)
    params = json.loads((index_dir(dataset_cfg(corpus), {}, cache) / "meta.json").read_text())["params"]
    tok = Bm25Tokenizer(params["stemmer"], _resolve_stopwords(params["stopwords"]))
    base = rss()
    t0 = time.perf_counter()
    model = bm25s.BM25.load(work, show_progress=False)
    load_s = time.perf_counter() - t0
    after_load = rss()
    query_s, top = bm25s_top10(model, tok, queries, out)
    return {"load_s": load_s, "rss_before_load": base, "rss_after_load": after_load, "query_s": query_s,
            "rss_after_queries": rss()}  # fmt: skip


def bm25s_top10(model, tok, queries: list[str], out: Path) -> tuple[float, list]:
    """bm25s's own `retrieve` (top-10, one thread) of `queries`: (seconds, [[doc, score], ...] per
    query with score > 0), the lists also written to `out`."""
    q_ids = tok.encode_queries(queries, model.vocab_dict)
    t0 = time.perf_counter()
    docs, scores = model.retrieve(q_ids, k=10, show_progress=False, n_threads=0)
    query_s = time.perf_counter() - t0
    top = [
        [[int(dd), float(s)] for dd, s in zip(drow, srow) if s > 0] for drow, srow in zip(docs.tolist(), scores.tolist())
    ]
    out.write_text(json.dumps(top))
    return query_s, top


def arm_bm25s_on_steper(corpus: Path, cache: Path, out: Path) -> dict:
    """bm25s's own `load(mmap=True)` + `retrieve` over the index steper built: its layout is bm25s's,
    and its top-10 are bm25s's (a reference that needs no second build, for when a plain build
    does not fit in memory)."""
    import bm25s

    from steper.retrieval import Bm25Tokenizer, index_dir
    from steper.retrieval.bm25 import _resolve_stopwords

    queries, _ = load_queries(corpus)
    d = index_dir(dataset_cfg(corpus), {}, cache)
    params = json.loads((d / "meta.json").read_text())["params"]
    tok = Bm25Tokenizer(params["stemmer"], _resolve_stopwords(params["stopwords"]))
    t0 = time.perf_counter()
    model = bm25s.BM25.load(d, mmap=True, show_progress=False)
    load_s = time.perf_counter() - t0
    query_s, top = bm25s_top10(model, tok, queries, out)
    mine = json.loads((out.parent / "top-steper.json").read_text())
    return {"load_s": load_s, "query_s": query_s, "top10": compare_top(mine, top)}


# ------------------------------------------------------------------ comparisons
def same_arrays(a: Path, b: Path, block: int = 1 << 24) -> dict:
    """Are the two saved indexes the same arrays (compared block by block, memory-mapped)?"""
    out = {}
    for name in ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy"):
        x, y = np.load(a / name, mmap_mode="r"), np.load(b / name, mmap_mode="r")
        same = x.dtype == y.dtype and x.shape == y.shape
        for i in range(0, len(x) if same else 0, block):
            if not np.array_equal(x[i : i + block], y[i : i + block]):
                same = False
                break
        out[name] = same
    va = json.loads((a / "vocab.index.json").read_text())
    vb = json.loads((b / "vocab.index.json").read_text())
    out["vocab.index.json"] = va == vb
    return out


def compare_top(a: list, b: list) -> dict:
    """Top-10 agreement: `identical` (same documents, same order, same scores), `ties` (same scores,
    documents differ only in order within equal scores or at a tied 10th place), `different`."""
    counts = {"identical": 0, "ties": 0, "different": 0}
    for ra, rb in zip(a, b):
        if ra == rb:
            counts["identical"] += 1
            continue
        if [s for _, s in ra] != [s for _, s in rb]:
            counts["different"] += 1
            continue
        last = ra[-1][1] if ra else None
        sa = sorted((s, d) for d, s in ra if s != last)
        sb = sorted((s, d) for d, s in rb if s != last)
        counts["ties" if sa == sb else "different"] += 1
    return counts


# ------------------------------------------------------------------ orchestration
def run_arm(args: argparse.Namespace, arm: str, extra: list[str] = ()) -> dict:
    cmd = ["nice", "-n", str(args.nice), sys.executable, __file__, "--arm", arm, "--work", str(args.work),
           "--paragraphs", str(args.paragraphs), "--seed", str(args.seed), *extra]  # fmt: skip
    print(f"[{time.strftime('%H:%M:%S')}] {arm}: {' '.join(cmd[3:])}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{arm} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def paths(args: argparse.Namespace) -> tuple[Path, Path]:
    corpus = args.work / f"abstracts-{args.paragraphs}-s{args.seed}.jsonl"
    return corpus, args.work / f"cache-{args.paragraphs}-s{args.seed}"


def table(res: dict) -> str:
    s, q, p = res["steper_build"], res["steper_query"], res.get("plain")

    def g(x):
        return f"{x / GIB:.2f} GiB"

    sec = s["seconds"]
    lines = [
        "| | steper | plain bm25s |",
        "|---|---|---|",
        f"| paragraphs / terms / score entries | {s['paragraphs']:,} / {s['terms']:,} / {s['entries']:,} | "
        + (f"same / {p['terms']:,} / same |" if p else "– |"),
        f"| build: corpus store / load | {sec['corpus']:.0f} s | " + (f"{p['seconds']['load']:.0f} s |" if p else "– |"),
        f"| build: tokenize | {sec['tokenize']:.0f} s | " + (f"{p['seconds']['tokenize']:.0f} s |" if p else "– |"),
        f"| build: index | {sec['index']:.0f} s | " + (f"{p['seconds']['index']:.0f} s |" if p else "– |"),
        f"| build: save | {sec['save']:.0f} s | " + (f"{p['seconds']['save']:.0f} s |" if p else "– |"),
        f"| build: total | {s['wall_s']:.0f} s | " + (f"{sum(p['seconds'].values()):.0f} s |" if p else "– |"),
        f"| build peak RSS | {g(s['peak_rss'])} | " + (f"{g(p['peak_rss'])} |" if p else "– |"),
        "| build peak RSS by phase (corpus / tokenize / index / save) | "
        + " / ".join(g(s["phase_peak_rss"][k]) for k in ("corpus", "tokenize", "index", "save"))
        + " | – |",
        f"| disk: index arrays + vocab | {s['disk']['index_arrays'] / 1e9:.2f} GB | "
        + (f"{p['disk'] / 1e9:.2f} GB |" if p else "– |"),
        f"| disk: paragraph store (hard-linked into the index) | {s['disk']['corpus_store'] / 1e9:.2f} GB | – |",
        f"| reload time | {q['load_s']:.2f} s | " + (f"{p['load_s']:.2f} s |" if p and "load_s" in p else "– |"),
        f"| RSS after reload | {g(q['rss_after_load'])} | "
        + (f"{g(p['rss_after_load'])} |" if p and "rss_after_load" in p else "– |"),
        f"| 1,000 queries, top-10 (cold, warm) | {q['query_s'][0]:.1f} s, {q['query_s'][1]:.1f} s | "
        + (f"{p['query_s']:.1f} s |" if p and "query_s" in p else "– |"),
        f"| RSS after reload: anonymous / file-backed (memory-mapped) | {g(q['rss_split_after_load']['RssAnon'])} / "
        f"{g(q['rss_split_after_load']['RssFile'])} | – |",
        f"| RSS after the queries: anonymous / file-backed | {g(q['rss_split_after_queries']['RssAnon'])} / "
        f"{g(q['rss_split_after_queries']['RssFile'])} | – |",
        f"| RSS after the queries | {g(q['rss_after_queries'])} | "
        + (f"{g(p['rss_after_queries'])} |" if p and "rss_after_queries" in p else "– |"),
    ]
    if "compare" in res:
        c = res["compare"]
        lines.append(f"| same index arrays | {all(c['arrays'].values())} | |")
        if "top10" in c:
            t = c["top10"]
            lines.append(
                f"| top-10 agreement (identical / tie order / different) | {t['identical']} / {t['ties']} / {t['different']} | |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paragraphs", type=int, default=1_000_000, help=f"HotpotQA's dump: {HOTPOT_ABSTRACTS:,}")
    ap.add_argument("--vocab", type=int, default=300_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("bench-scale"), help="corpus, caches and plain index")
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--plain-stream", action="store_true", help="plain arm streams its texts (less memory)")
    ap.add_argument("--plain-no-query", action="store_true", help="plain arm: skip bm25s.retrieve")
    ap.add_argument(
        "--plain-gib-per-million", type=float, help="plain build memory (measured: 2.9 held, 2.45 streamed)"
    )
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--keep", action="store_true", help="keep the corpus, caches and indexes")
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--arm", choices=["steper-build", "steper-query", "plain", "plain-query", "bm25s-on-steper"], help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    args.work = args.work.resolve()
    corpus, cache = paths(args)
    if args.arm == "steper-build":
        print(json.dumps(arm_steper_build(corpus, cache)))
        return
    if args.arm == "steper-query":
        print(json.dumps(arm_steper_query(corpus, cache, args.work / "top-steper.json")))
        return
    if args.arm == "plain":
        print(json.dumps(arm_plain(corpus, cache, args.work / "plain-index", args.plain_stream)))
        return
    if args.arm == "bm25s-on-steper":
        print(json.dumps(arm_bm25s_on_steper(corpus, cache, args.work / "top-bm25s-on-steper.json")))
        return
    if args.arm == "plain-query":
        print(json.dumps(arm_plain_query(corpus, cache, args.work / "plain-index", args.work / "top-plain.json")))
        return

    args.work.mkdir(parents=True, exist_ok=True)
    res: dict = {
        "paragraphs": args.paragraphs,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    if not corpus.exists():
        t0 = time.perf_counter()
        generate(corpus, args.paragraphs, args.vocab, args.queries, args.seed)
        res["generate_s"] = time.perf_counter() - t0
    res["corpus_file_bytes"] = corpus.stat().st_size
    res["steper_build"] = run_arm(args, "steper-build")
    res["steper_query"] = run_arm(args, "steper-query")
    if not args.skip_plain:
        per_million = args.plain_gib_per_million or (2.5 if args.plain_stream else 3.2)
        need = int(per_million * GIB * args.paragraphs / 1e6) + 3 * GIB
        if wait_for_memory(need):
            res["plain"] = run_arm(args, "plain", ["--plain-stream"] if args.plain_stream else [])
            res["compare"] = {"arrays": same_arrays(Path(res["steper_build"]["index_dir"]), args.work / "plain-index")}
            if not args.plain_no_query:
                res["plain"].update(run_arm(args, "plain-query"))
                a = json.loads((args.work / "top-steper.json").read_text())
                b = json.loads((args.work / "top-plain.json").read_text())
                res["compare"]["top10"] = compare_top(a, b)
        else:
            res["plain"] = None
            print("plain bm25s skipped: not enough memory available", file=sys.stderr)
    print(table(res))
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))
    if not args.keep:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(args.work / "plain-index", ignore_errors=True)


if __name__ == "__main__":
    main()
