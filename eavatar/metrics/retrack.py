"""Expression accuracy by re-tracking: the Face Landmarker on the render and on the ground truth.

For subjects in the ``arkit52`` space (videos) there is no ground-truth geometry, but there is
the tracker that made the expression codes. Each rendered frame and its ground truth are
tracked on their own (MediaPipe's Face Landmarker in image mode: no temporal state links two
frames), and compared, in the spirit of the AED / AKD metrics of reenactment papers:

* ``aed``: mean absolute difference of the blendshape coefficients (MediaPipe's 52 outputs
  less ``_neutral``, which is no expression), in coefficient units [0, 1];
* ``akd``: mean distance of the 478 landmarks (x, y in pixels) divided by the ground truth's
  inter-ocular distance (outer eye corners, landmarks 33 and 263); ``mouth_akd``,
  ``eyes_akd``, ``brows_akd`` over those parts' contour landmarks.

The same measures between consecutive ground-truth frames (``aed_gt``, ``akd_gt``) say how
much the expression moves from one frame to the next; ``aed_rel`` = mean aed / mean aed_gt
(likewise ``akd_rel``) puts the avatar's error in those units (1: as far off as the previous
frame is). Given the same avatar rendered at the neutral code (same pose and camera),
``aed_neutral`` is that render's error and ``aed_vs_neutral`` = aed / aed_neutral the share of
it left: 1 for an avatar that ignores the expression, 0.5 when it reproduces half the signal. A frame where either tracking fails has no value and is counted, never dropped
silently. docs/metrics.md has the details.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from eavatar.data.face_tracker import FaceTrack, FaceTracker, landmark_regions

#: MediaPipe's outer eye corners (the subject's right, then left): the inter-ocular distance.
EYE_CORNERS = (33, 263)
#: Landmark parts reported besides all landmarks: ``{part}_akd``.
AKD_PARTS = ("mouth", "eyes", "brows")
#: Blendshape outputs that are not expressions.
NOT_EXPRESSIONS = ("_neutral",)
#: Keys of a per-frame row (None where tracking failed), then the tracking status.
ROW_KEYS = ("aed", "akd", *(f"{p}_akd" for p in AKD_PARTS), "aed_gt", "akd_gt", "aed_neutral", "akd_neutral")


def expression_distance(
    track: FaceTrack,  # the render's (or any frame's) tracking
    reference: FaceTrack,  # the ground truth's: its inter-ocular distance is the unit
    size: tuple[int, int],  # (width, height) of both images, px
    labels: list[str] | None = None,  # blendshape names (FaceTracker.labels); "_neutral" is left out
) -> dict[str, float]:
    """AED- and AKD-like distances of two trackings of images of one size.

    Returns:
        {"aed": mean |blendshape difference|, "akd": mean landmark distance / inter-ocular
        distance, "mouth_akd", "eyes_akd", "brows_akd"}; all 0 for a frame against itself.

    >>> expression_distance(t, t, (256, 256))["akd"]  # 0.0
    """
    keep = np.ones(len(reference.blendshapes), dtype=bool)
    if labels is not None:
        keep &= ~np.isin(labels, NOT_EXPRESSIONS)
    scale = np.asarray(size, dtype=np.float64)
    a, b = track.landmarks[:, :2] * scale, reference.landmarks[:, :2] * scale  # [478, 2] px
    iod = float(np.linalg.norm(b[EYE_CORNERS[0]] - b[EYE_CORNERS[1]]))
    dist = np.linalg.norm(a - b, axis=1) / max(iod, 1e-9)
    out = {"aed": float(np.abs(track.blendshapes - reference.blendshapes)[keep].mean()), "akd": float(dist.mean())}
    for part, indices in _part_indices().items():
        out[f"{part}_akd"] = float(dist[indices].mean())
    return out


@lru_cache(maxsize=1)
def _part_indices() -> dict[str, np.ndarray]:
    parts = landmark_regions()
    return {part: np.concatenate(parts[part]) for part in AKD_PARTS}


@dataclass
class RetrackMeter:
    """Re-tracking of a stream of (render, ground truth) frames, fed in time order per (sequence, camera).

    Keeps only the latest ground-truth tracking of each (sequence, camera) for the
    consecutive-frame normaliser, so a long split never sits in memory.
    """

    tracker: FaceTracker  # in image mode (video=False)
    rows: list[dict] = field(default_factory=list)
    latest: dict[tuple[str, int], tuple[int, FaceTrack | None]] = field(default_factory=dict)

    def add(self, sequence: str, camera: int, timestep: int, pred: np.ndarray, gt: np.ndarray, neutral: np.ndarray | None = None) -> dict:
        """pred, gt (and the avatar at the neutral code, ``neutral``) [H, W, 3] uint8 of one frame
        -> its row: ROW_KEYS (None where not measurable) and ``retrack``: "ok", "render_failed",
        "gt_failed" or "both_failed" (of pred and gt)."""
        key = (sequence, int(camera))
        t_pred, t_gt = self.tracker.track(pred), self.tracker.track(gt)
        size = (gt.shape[1], gt.shape[0])
        row: dict = dict.fromkeys(ROW_KEYS)
        if t_pred is not None and t_gt is not None:
            row.update(expression_distance(t_pred, t_gt, size, self.tracker.labels))
        t_neutral = self.tracker.track(neutral) if neutral is not None and t_gt is not None else None
        if t_neutral is not None:
            d = expression_distance(t_neutral, t_gt, size, self.tracker.labels)
            row["aed_neutral"], row["akd_neutral"] = d["aed"], d["akd"]
        prev = self.latest.get(key)
        if prev is not None and prev[0] == timestep - 1 and prev[1] is not None and t_gt is not None:
            d = expression_distance(prev[1], t_gt, size, self.tracker.labels)
            row["aed_gt"], row["akd_gt"] = d["aed"], d["akd"]
        self.latest[key] = (int(timestep), t_gt)
        row["retrack"] = {(True, True): "ok", (False, True): "render_failed", (True, False): "gt_failed"}.get(
            (t_pred is not None, t_gt is not None), "both_failed"
        )
        self.rows.append(row)
        return row


def summarise_retrack(rows: list[dict]) -> dict[str, float | int | None]:
    """Means of per-frame rows (those with a value) and the failure counts.

    Returns:
        ``retrack_frames`` (frames compared), ``retrack_failed_render`` / ``retrack_failed_gt``
        (frames whose render / ground truth had no face found; a frame may count in both),
        the means of ROW_KEYS, ``aed_rel`` = aed / aed_gt and ``akd_rel`` = akd / akd_gt (None
        without consecutive ground-truth pairs), ``aed_vs_neutral`` = aed / aed_neutral over the
        frames that have both (None without neutral renders).
    """
    status = [r.get("retrack") for r in rows]
    out: dict[str, float | int | None] = {
        "retrack_frames": sum(s == "ok" for s in status),
        "retrack_failed_render": sum(s in ("render_failed", "both_failed") for s in status),
        "retrack_failed_gt": sum(s in ("gt_failed", "both_failed") for s in status),
    }
    for key in ROW_KEYS:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    for key in ("aed", "akd"):
        num, den = out[key], out[f"{key}_gt"]
        out[f"{key}_rel"] = num / den if num is not None and den else None
    both = np.array([(r["aed"], r["aed_neutral"]) for r in rows if r.get("aed") is not None and r.get("aed_neutral") is not None]).reshape(-1, 2)
    aed, neutral = both.mean(axis=0) if len(both) else (None, None)
    out["aed_vs_neutral"] = float(aed / neutral) if neutral else None
    return out
