"""E-divisive means (Matteson & James 2014; MongoDB's and Apache Otava's change-point method), as
`loadtest.regression` uses it: the energy statistic of every split at once, a permutation test
that stops as soon as its p-value cannot reach the limit, and the latest change points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_PERMUTATION_BATCH = 50


@dataclass(frozen=True)
class ChangePoint:
    index: int  # first index of the new segment
    statistic: float
    p_value: float


def energy_statistics(values: np.ndarray, *, min_size: int = 2) -> np.ndarray:
    """Q(τ) of e-divisive means (α = 1) for every split τ of each row of `values` (shape (k, n)).

    Q(τ) = τ(n−τ)/n · [2/(τ(n−τ)) Σ|xᵢ−yⱼ| − Σ_{i<k}|xᵢ−xₖ|/C(τ,2) − Σ_{j<k}|yⱼ−yₖ|/C(n−τ,2)],
    all splits at once from prefix sums of the distance matrix's upper triangle (O(n²) per row).
    Splits leaving fewer than `min_size` points on a side are −inf.
    """
    n = values.shape[1]
    distances = np.triu(np.abs(values[:, :, None] - values[:, None, :]), 1)
    column_sums = distances.sum(axis=1)  # Σ_{i<τ} d(i, τ)
    row_sums = distances.sum(axis=2)  # Σ_{k>j} d(j, k)
    total = row_sums.sum(axis=1, keepdims=True)
    taus = np.arange(n)
    within_left = np.cumsum(column_sums, axis=1) - column_sums  # pairs inside [0, τ)
    within_right = np.cumsum(row_sums[:, ::-1], axis=1)[:, ::-1]  # pairs inside [τ, n)
    between = total - within_left - within_right
    left, right = taus, n - taus
    with np.errstate(divide="ignore", invalid="ignore"):
        pairs_left = np.where(left > 1, left * (left - 1) / 2, np.inf)
        pairs_right = np.where(right > 1, right * (right - 1) / 2, np.inf)
        energy = 2 * between / (left * right) - within_left / pairs_left - within_right / pairs_right
        statistics = left * right / n * energy
    valid = (taus >= min_size) & (right >= min_size)
    return np.where(valid, statistics, -np.inf)


def best_split(
    values: np.ndarray,
    *,
    permutations: int,
    rng: np.random.Generator,
    min_size: int = 2,
    p_value_limit: float = 1.0,
) -> ChangePoint | None:
    """The split maximising Q, with the permutation test's p-value; None if the series is too short.

    Permutations run in batches and stop once the p-value can no longer reach `p_value_limit`: most
    series have no change, and for them a quarter of the permutations settles it. The p-value of a
    test stopped early is estimated from the permutations it ran (and lies above the limit).
    """
    if values.size < 2 * min_size:
        return None
    observed = energy_statistics(values[None, :], min_size=min_size)[0]
    index = int(np.argmax(observed))
    exceeding = done = 0
    while done < permutations:
        batch = min(_PERMUTATION_BATCH, permutations - done)
        shuffled = rng.permuted(np.broadcast_to(values, (batch, values.size)), axis=1)
        exceeding += int(
            np.count_nonzero(energy_statistics(shuffled, min_size=min_size).max(axis=1) >= observed[index])
        )
        done += batch
        if (1 + exceeding) / (permutations + 1) > p_value_limit:
            break
    return ChangePoint(index=index, statistic=float(observed[index]), p_value=(1 + exceeding) / (done + 1))


def latest_change_points(
    values: np.ndarray, *, p_value: float, permutations: int, seed: int = 0, min_size: int = 2
) -> list[ChangePoint]:
    """Significant change points, oldest first, found by splitting again right of each one: what
    the verdict needs is the latest change, and the segment just before it."""
    rng = np.random.default_rng(seed)
    found: list[ChangePoint] = []
    start = 0
    while (
        split := best_split(
            values[start:], permutations=permutations, rng=rng, min_size=min_size, p_value_limit=p_value
        )
    ) and split.p_value <= p_value:
        found.append(ChangePoint(start + split.index, split.statistic, split.p_value))
        start += split.index
    return found
