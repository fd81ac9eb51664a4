"""Progress of one long phase (corpus, tokenize, index): paragraphs done, paragraphs/s and ETA.

On a terminal it is a rich progress bar on stderr. Elsewhere (a log file, `nohup`, a Hydra job)
a live bar renders nothing until the end, so a plain line is logged every `every_s` seconds
instead. The ETA comes from `work` (paragraphs, bytes of input read, score entries written: whatever
the phase knows the total of); the rate is always in paragraphs/s.
"""

from __future__ import annotations

import sys
import time

__all__ = ["PhaseProgress"]


def _fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class PhaseProgress:
    """`with PhaseProgress("tokenize", total=n) as bar: bar.update(work_done, paragraphs_done)`."""

    def __init__(self, phase: str, total: float | None, *, enabled: bool = True, every_s: float = 15.0):
        self.phase = phase
        self.total = total
        self.enabled = enabled
        self.every_s = every_s
        self.work = 0.0
        self.paragraphs = 0
        self._t0 = time.perf_counter()
        self._last_line = self._t0
        self._bar = None
        self._task = None
        self._console = None

    # -------------------------------------------------------------------- lifecycle
    def __enter__(self) -> PhaseProgress:
        self._t0 = self._last_line = time.perf_counter()
        if not self.enabled:
            return self
        from rich.console import Console

        self._console = Console(stderr=True)
        if self._console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn(f"[bold]{self.phase}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("{task.fields[paragraphs]:,} paragraphs"),
                TextColumn("{task.fields[rate]:,.0f} paragraphs/s"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                console=self._console,
            )
            self._task = self._bar.add_task(self.phase, total=self.total, paragraphs=0, rate=0.0)
            self._bar.start()
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
        if self.enabled and exc_type is None:
            line = f"{self.phase}: {self.paragraphs:,} paragraphs in {_fmt_s(self.elapsed)} ({self.rate:,.0f} paragraphs/s)"
            if self._bar is not None:
                self._console.log(line)
            else:  # a log file: one unwrapped line, like the periodic ones
                print(line, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------------ state
    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    @property
    def rate(self) -> float:
        return self.paragraphs / max(self.elapsed, 1e-9)

    def eta(self) -> float | None:
        """Seconds left, from the share of `work` done so far (None while unknown)."""
        if not self.total or self.work <= 0:
            return None
        return self.elapsed * max(self.total - self.work, 0.0) / self.work

    def update(self, work: float, paragraphs: int) -> None:
        """Set the absolute progress: `work` out of `total`, and `paragraphs` handled so far."""
        self.work, self.paragraphs = float(work), int(paragraphs)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=self.work, paragraphs=self.paragraphs, rate=self.rate)
            return
        now = time.perf_counter()
        if now - self._last_line >= self.every_s:
            self._last_line = now
            eta = self.eta()
            share = f", {100 * self.work / self.total:.0f}%" if self.total else ""
            line = (
                f"{self.phase}: {self.paragraphs:,} paragraphs{share}, {self.rate:,.0f} paragraphs/s, "
                f"elapsed {_fmt_s(self.elapsed)}" + (f", ETA {_fmt_s(eta)}" if eta is not None else "")
            )
            print(line, file=sys.stderr, flush=True)
