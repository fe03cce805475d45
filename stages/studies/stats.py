"""Seeds -> mean, spread and a 95% bootstrap interval; row vs reference -> a verdict beside the paper's.

Comparisons pair runs by seed (the same pretraining and finetuning seed), so the shared noise of a seed
cancels. With three seeds a bootstrap interval is coarse (3^3 resamples of the mean), which is why the
verdict also needs the paired differences to agree in sign; the intervals are reported as they are.
"""
from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass

RESAMPLES = 10_000
SEED = 0          # the bootstrap's own, so a collected table is the same every time it is collected


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    sd: float                       # sample standard deviation; 0 for one value
    lo: float                       # 95% bootstrap interval of the mean
    hi: float


def summarize(values: list[float]) -> Summary | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None
    lo, hi = bootstrap_interval(vals)
    return Summary(len(vals), statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0, lo, hi)


def bootstrap_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean over RESAMPLES resamples with replacement."""
    rng = random.Random(SEED)
    n = len(values)
    means = sorted(statistics.fmean(rng.choices(values, k=n)) for _ in range(RESAMPLES))
    tail = (1 - level) / 2
    return means[int(tail * (RESAMPLES - 1))], means[int((1 - tail) * (RESAMPLES - 1))]


def verdict(diffs: list[float], paper_diff: float | None) -> str:
    """Ours (paired row - reference differences over seeds) against the paper's difference.

    "agrees" / "opposite": our interval excludes 0, every seed's difference has the same sign, and that sign
    is the paper's / the other one; "within noise" otherwise; "no paper number" where the paper has none."""
    if paper_diff is None:
        return "no paper number"
    s = summarize(diffs)
    if s is None:
        return "no runs"
    same_sign = all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
    if s.n < 2 or not same_sign or s.lo <= 0 <= s.hi:
        return "within noise"
    if paper_diff == 0:
        return "paper: no difference"
    return "agrees" if (s.mean > 0) == (paper_diff > 0) else "opposite"
