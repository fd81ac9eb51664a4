"""Uncertainty of the report's numbers, from runs: the CI of a table cell, and the paired
differences between the methods the paper compares (`steper.report.stats` does the statistics).

**A cell's CI.** One seed: the bootstrap 95% CI over its test questions (the per-question scores of
its predictions file). Several seeds: the t-interval of the mean over seeds (each seed one
replication; the questions are the same, so this is the spread of training, not of the question
sample).

**Paired differences.** Within one model, dataset and evaluation (mode, sweep variant), for:

- StepER (each weighting) − Vanilla-KD, on EM, F1 and Acc (Table 1's comparison);
- StepER adaptive − uniform, adaptive − first, adaptive − last, on Acc (Table 2's).

Per seed that both runs have: the mean difference on the questions both answered (n, said in the
table), a paired bootstrap CI over those questions, and an exact paired test (McNemar for EM / Acc,
the sign test for F1).

Over several seeds the summary row has two intervals, one per source of noise, because neither
covers the other: the seeds are trained on the same test questions, so their spread says nothing
about which questions happened to be sampled, and a question bootstrap says nothing about how
much another training seed would move the difference.

- difference: the mean of the per-seed differences;
- CI (questions): the bootstrap 95% CI over questions of each question's difference averaged
  over the seeds that paired it (a question's seeds stay together when it is resampled);
- CI (seeds): the 95% t-interval of the per-seed differences;
- the exact test pooled over all question × seed pairs.

The verdict names the higher one only when every interval excludes 0 and p < 0.05; otherwise it
is "inside the noise". The p-values are per comparison, not corrected for the number of
comparisons.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from steper.constants import METRICS
from steper.report.records import RunRecord, where
from steper.report.rows import (
    dataset_label,
    dataset_order,
    model_rank,
    student_label,
    vanilla_qualified,
    weighting_rank,
)
from steper.report.stats import (
    ALPHA,
    Interval,
    common_questions,
    covers_zero,
    mean_interval,
    paired_difference,
    pooled_test,
    seed_interval,
    significant,
)
from steper.report.table import FlatTable, Stat

PERCENT = 100.0  # per-question scores are 0-1, the tables are in percent
METRIC_LABELS = {"em": "EM", "f1": "F1", "acc": "Acc"}
NOISE = "inside the noise"
MAX_LISTED = 5  # runs named in one note line


def _pct(ci: Interval | None) -> Interval | None:
    return None if ci is None else (ci[0] * PERCENT, ci[1] * PERCENT)


def run_interval(r: RunRecord, metric: str) -> Interval | None:
    """The bootstrap 95% CI (percent) of one run's metric over its test questions; None without
    per-question scores."""
    scores = r.scores.get(metric)
    return _pct(mean_interval(list(scores.values()))) if scores else None


def cell_stat(runs: Iterable[RunRecord], metric: str) -> Stat | None:
    """A table cell with its CI: one seed's bootstrap CI over questions, or the t-interval over
    several seeds; None when no run reports the metric."""
    rs = [r for r in runs if metric in r.metrics]
    if not rs:
        return None
    values = [r.metrics[metric] for r in rs]
    ci = run_interval(rs[0], metric) if len(rs) == 1 else seed_interval(values).ci
    return Stat(values, ci=ci)


# ----------------------------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class PairRow:
    """One paired difference (percent points, first − second), per seed or over seeds."""

    first: str
    second: str
    model: str
    dataset: str
    metric: str
    seeds: list[str]
    questions: list[int]  # per seed
    difference: float
    ci: Interval | None  # bootstrap over questions (of the seed-averaged differences for a summary)
    seed_ci: Interval | None  # t-interval over seeds (summary rows only)
    test: str
    p: float
    first_higher: int  # questions (× seeds) where the first scored higher
    second_higher: int
    comparison: str = ""  # the row's name, `first − second` unless shorter

    @property
    def name(self) -> str:
        return self.comparison or f"{self.first} − {self.second}"

    @property
    def verdict(self) -> str:
        if self.ci is None:
            return "too few to tell"
        if not significant(self.ci, self.p, ALPHA) or (
            self.seed_ci is not None and covers_zero(self.seed_ci)
        ):
            return NOISE
        return f"{self.first} higher" if self.difference > 0 else f"{self.second} higher"


def _seed_key(seed: object) -> tuple[int, float, str]:
    return (0, float(seed), "") if isinstance(seed, int | float) else (1, 0.0, str(seed))


def _seed_text(seed: object) -> str:
    return "–" if seed is None else str(seed)


def _pairs(labels: dict[str, RunRecord]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(first, second, metrics) for every comparison the paper makes among these row labels."""
    steper = sorted(
        (lab for lab, r in labels.items() if r.method == "steper"),
        key=lambda lab: weighting_rank(labels[lab].weighting),
    )
    vanilla = sorted(lab for lab, r in labels.items() if r.method == "vanilla")
    out = [(s, v, METRICS) for s in steper for v in vanilla]
    adaptive = [s for s in steper if labels[s].weighting == "adaptive"]
    for a in adaptive:
        for other in ("uniform", "first", "last"):
            out += [(a, s, ("acc",)) for s in steper if labels[s].weighting == other]
    return out


def _names(first: str, second: str, by_label: dict[str, dict[object, RunRecord]]) -> tuple[str, str, str]:
    """(comparison, first's name, second's name) as the table shows them: two StepER weightings
    of one evaluation read `StepER adaptive − uniform`, with verdicts `adaptive higher`."""
    a, b = (next(iter(by_label[lab].values())) for lab in (first, second))
    if a.method == b.method == "steper" and a.suffix == b.suffix and a.weighting and b.weighting:
        return f"StepER {a.weighting} − {b.weighting}{a.suffix}", a.weighting, b.weighting
    return f"{first} − {second}", first, second


def _groups(runs: list[RunRecord]) -> dict[tuple, dict[str, dict[object, RunRecord]]]:
    """Finished students by (model, dataset, evaluation suffix) → row label → seed → run."""
    qualified = vanilla_qualified(runs)
    groups: dict[tuple, dict[str, dict[object, RunRecord]]] = defaultdict(lambda: defaultdict(dict))
    for r in runs:
        if r.ok and r.dataset and r.role == "student" and r.method in ("steper", "vanilla"):
            groups[(r.model, r.dataset, r.suffix)][student_label(r, qualified)][r.seed] = r
    return groups


def _compare(
    names: tuple[str, str],
    sides: tuple[dict[object, RunRecord], dict[object, RunRecord]],
    metric: str,
    what: str,
    notes: list[str],
) -> tuple[list[PairRow], PairRow | None]:
    """Per-seed rows and the summary row (None when nothing could be paired) of one comparison:
    `names` / `sides` = (first, second) row labels and their runs by seed; `what` names the
    comparison in notes (the same for each metric, so a note is said once)."""
    first, second = sides
    model, dataset = next(iter(first.values())).model or "?", next(iter(first.values())).dataset or "?"
    seeds = sorted(set(first) & set(second), key=_seed_key)
    lonely = sorted(set(first) ^ set(second), key=_seed_key)
    if lonely:
        notes.append(f"{what}: seeds {', '.join(map(_seed_text, lonely))} have no partner run; not paired")
    rows: list[PairRow] = []
    aligned: list[tuple[list[float], list[float]]] = []
    by_question: dict[str, list[float]] = defaultdict(list)  # qid -> its difference in each seed
    for seed in seeds:
        fs, ss = first[seed].scores.get(metric), second[seed].scores.get(metric)
        if not fs or not ss:  # said once per run in paired_rows (or a problem line of the card)
            continue
        res = paired_difference(ss, fs)  # stats' b − a = first − second
        if res is None:
            notes.append(f"{what} · seed {_seed_text(seed)}: the two runs share no question id; not paired")
            continue
        if res.n < max(len(fs), len(ss)):
            notes.append(
                f"{what} · seed {_seed_text(seed)}: paired on the {res.n} questions both answered "
                f"({names[0]} {len(fs)}, {names[1]} {len(ss)})"
            )
        qids = common_questions(ss, fs)
        aligned.append(([ss[q] for q in qids], [fs[q] for q in qids]))
        for q in qids:
            by_question[q].append(fs[q] - ss[q])
        rows.append(
            PairRow(
                *names,
                model,
                dataset,
                metric,
                seeds=[_seed_text(seed)],
                questions=[res.n],
                difference=res.difference * PERCENT,
                ci=_pct(res.ci),
                seed_ci=None,
                test=res.test,
                p=res.p,
                first_higher=res.b_better,
                second_higher=res.a_better,
            )
        )
    if len(rows) < 2:
        return rows, (rows[0] if rows else None)
    over_seeds = seed_interval([row.difference for row in rows])
    question_ci = mean_interval([sum(ds) / len(ds) for _, ds in sorted(by_question.items())])
    test, p, first_higher, second_higher = pooled_test(aligned)
    return rows, PairRow(
        *names,
        model,
        dataset,
        metric,
        seeds=[s for row in rows for s in row.seeds],
        questions=[q for row in rows for q in row.questions],
        difference=over_seeds.mean,
        ci=_pct(question_ci),
        seed_ci=over_seeds.ci,
        test=f"{test}, pooled",
        p=p,
        first_higher=first_higher,
        second_higher=second_higher,
    )


def paired_rows(runs: list[RunRecord]) -> tuple[list[PairRow], list[PairRow], list[str]]:
    """(summary rows, per-seed rows of comparisons with several seeds, notes) for every comparison
    the paper makes among `runs` (duplicates already resolved)."""
    summaries: list[PairRow] = []
    per_seed: list[PairRow] = []
    notes: list[str] = []
    groups = _groups(runs)
    unscored: list[str] = []
    order = sorted(groups, key=lambda k: (model_rank(k[0]), dataset_order([k[1]]), k[1], k[2]))
    for key in order:
        by_label = groups[key]
        firsts = {lab: next(iter(seeds.values())) for lab, seeds in by_label.items()}
        pairs = _pairs(firsts)
        compared = {lab for f, s, _ in pairs for lab in (f, s)}
        unscored += [where(r) for lab in compared for r in by_label[lab].values() if not r.scores]
        for first, second, metrics in pairs:
            comparison, first_name, second_name = _names(first, second, by_label)
            what = f"{comparison} · {key[0] or '?'} · {dataset_label(key[1])}"
            for m in metrics:
                sides = (by_label[first], by_label[second])
                rows, summary = _compare((first_name, second_name), sides, m, what, notes)
                rows = [dataclasses.replace(row, comparison=comparison) for row in rows]
                if summary is not None:
                    summaries.append(dataclasses.replace(summary, comparison=comparison))
                if len(rows) > 1:
                    per_seed += rows
    if unscored:
        shown = ", ".join(unscored[:MAX_LISTED]) + (
            f" and {len(unscored) - MAX_LISTED} more" if len(unscored) > MAX_LISTED else ""
        )
        notes.append(
            f"{len(unscored)} compared runs have no per-question scores (a predictions.jsonl with qid "
            f"and em/f1/acc), so no paired difference: {shown}"
        )
    return summaries, per_seed, list(dict.fromkeys(notes))


# ---------------------------------------------------------------------------------------- tables


def p_text(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _signed(x: float, digits: int) -> str:
    return f"{x:+.{digits}f}".replace("-", "−")


def _ci_text(ci: Interval | None) -> str:
    return "—" if ci is None else f"[{_signed(ci[0], 1)}, {_signed(ci[1], 1)}]"


def _questions_text(qs: list[int]) -> str:
    lo, hi = min(qs), max(qs)
    n = f"{lo}" if lo == hi else f"{lo}–{hi}"
    return n if len(qs) == 1 else f"{n} × {len(qs)}"


def _csv(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


def _table(name: str, title: str, rows: list[PairRow], per_seed: bool) -> FlatTable:
    keys = ["comparison", "model", "dataset", "metric"] + (["seed"] if per_seed else [])
    if per_seed:
        header = ["n", "difference", "95% CI", "discordant (1st / 2nd)", "test", "p", "verdict"]
        names = ["questions", "difference", "ci_low", "ci_high", "first_higher", "second_higher"]
    else:
        header = ["seeds", "n", "difference", "CI (questions)", "CI (seeds)"]
        header += ["discordant (1st / 2nd)", "test", "p", "verdict"]
        names = ["seeds", "questions", "difference", "ci_low", "ci_high", "seeds_ci_low", "seeds_ci_high"]
        names += ["first_higher", "second_higher"]
    table = FlatTable(
        name=name,
        title=title,
        key_header=keys,
        value_header=header,
        value_names=[*names, "test", "p", "verdict"],
        # the terminal gets the numbers and the verdict; how they were computed is in report.md
        terminal_hide=("seeds", "discordant (1st / 2nd)", "test"),
    )
    for row in rows:
        k = [row.name, row.model, dataset_label(row.dataset), METRIC_LABELS[row.metric]]
        lo, hi = row.ci if row.ci else (None, None)
        numbers = [str(sum(row.questions)), _csv(row.difference), _csv(lo), _csv(hi)]
        cells = [_questions_text(row.questions), _signed(row.difference, 2), _ci_text(row.ci)]
        if per_seed:
            k.append(row.seeds[0])
        else:
            slo, shi = row.seed_ci if row.seed_ci else (None, None)
            numbers = [", ".join(row.seeds), *numbers, _csv(slo), _csv(shi)]
            cells = [", ".join(row.seeds), *cells, _ci_text(row.seed_ci) if len(row.seeds) > 1 else ""]
        discordant = [str(row.first_higher), str(row.second_higher)]
        tail = [row.test, p_text(row.p), row.verdict]
        table.rows.append((k, [*cells, " / ".join(discordant), *tail]))
        table.csv_body.append([*k, *numbers, *discordant, row.test, _csv(row.p), row.verdict])
    return table


def paired_tables(runs: list[RunRecord]) -> tuple[FlatTable, FlatTable]:
    """The "Paired differences" table (one row per comparison and metric: the only seed, or the
    summary over seeds) and the per-seed rows behind its summaries."""
    summaries, per_seed, notes = paired_rows(runs)
    title = "Paired differences (percent points, first − second, on the same test questions; 95% CIs)"
    summary = _table("paired", title, summaries, per_seed=False)
    summary.notes = notes
    seeds = _table("paired_seeds", "Paired differences per seed", per_seed, per_seed=True)
    return summary, seeds
