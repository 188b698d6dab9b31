"""Whether a held-out frame's expression lies inside what training covered.

An expression-conditioned avatar interpolates between the codes it was trained on; a test code
far from all of them measures extrapolation (a clip whose last 20% shows a new expression).
Each evaluated frame gets ``code_distance``, the Euclidean distance of its expression code to the
nearest training code. What counts as near comes from training itself: for each training
instant, the distance to the nearest training instant *outside its own stretch of time*
(``window`` timesteps either side in its sequence, about a second of video), since its
neighbours in time are near copies of it. A test frame is ``in_range`` when its distance is at
most the median of those: no farther from the training codes than a typical training moment is
from the rest of training. (The 95th percentile was tried first: on talking-head clips a few
training moments are far from all others, and it called every test frame of d3 in range,
whose test part opens the mouth as its training part never does.)
"""

from __future__ import annotations

import numpy as np

WINDOW = 25  # timesteps each side that count as the same moment (1 s at 25 fps)
PERCENTILE = 50.0  # the median spacing of training moments


def training_instants(subject) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(codes [M, d], sequences, timesteps [M]) of the training split, one row per (sequence,
    timestep): every camera of an instant shows the same code."""
    seen: dict[tuple[str, int], int] = {}
    for i in subject.split("train"):
        seen.setdefault((subject.sequences[i], int(subject.timesteps[i])), int(i))
    rows = list(seen.values())
    return subject.expressions[rows].astype(np.float64), [subject.sequences[i] for i in rows], subject.timesteps[rows].astype(np.int64)


def nearest_distances(queries: np.ndarray, codes: np.ndarray, excluded=None, chunk: int = 2048) -> np.ndarray:
    """[Q] distance of each query code [Q, d] to its nearest code [M, d], skipping the pairs where
    ``excluded(query_rows, ) -> [q, M] bool`` is true (inf when all are)."""
    out = np.empty(len(queries))
    sq = (codes**2).sum(axis=1)
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        d2 = np.maximum((q**2).sum(axis=1)[:, None] + sq[None, :] - 2.0 * q @ codes.T, 0.0)
        if excluded is not None:
            d2[excluded(slice(start, start + len(q)))] = np.inf
        out[start : start + len(q)] = np.sqrt(d2.min(axis=1))
    return out


class ExpressionCoverage:
    """The training codes of a subject and the in-range threshold derived from them."""

    def __init__(self, subject, window: int = WINDOW, percentile: float = PERCENTILE):
        self.codes, sequences, timesteps = training_instants(subject)
        if len(self.codes) < 2:
            self.threshold = None  # one training instant: no spread to measure against
            return
        seq = np.unique(sequences, return_inverse=True)[1]

        def same_moment(rows: slice) -> np.ndarray:
            return (seq[rows, None] == seq[None, :]) & (np.abs(timesteps[rows, None] - timesteps[None, :]) <= window)

        own = nearest_distances(self.codes, self.codes, same_moment)
        own = own[np.isfinite(own)]
        self.threshold = float(np.percentile(own, percentile)) if len(own) else None

    def distances(self, codes: np.ndarray) -> np.ndarray:
        """[Q] distance of each code [Q, d] to the nearest training code."""
        return nearest_distances(np.asarray(codes, dtype=np.float64), self.codes)

    def in_range(self, distance: float) -> bool | None:
        return None if self.threshold is None else bool(distance <= self.threshold)
