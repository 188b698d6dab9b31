"""How noisy a tracker is, and a subject with that noise added where the truth is known.

Refinement of the tracking (eavatar.avatar.refinement) claims to move noisy codes and poses
back toward the truth. On a video the truth is unknown, so the claim is checked on the
synthetic subject: its training instants perturbed with noise of the size a tracker shows on
video (:func:`tracking_jitter`), the same for every camera of an instant, test frames exact
(:func:`perturb_training_instants`); training with and without refinement then says how far the
refined values move back (:func:`control_errors`) and what that buys on test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from eavatar.data.subject import Subject, load_subject, transforms_moved_to, write_transforms

#: For i.i.d. noise of std s, x_t - (x_t-1 + x_t+1) / 2 has std s * sqrt(1.5); MAD -> std for a Gaussian.
SECOND_DIFFERENCE_GAIN = float(np.sqrt(1.5))
MAD_TO_STD = 1.4826


@dataclass
class TrackingNoise:
    """Per-frame noise sizes (standard deviations)."""

    code: float  # expression coefficient units
    rotation_deg: float  # head rotation, degrees (angle of the error rotation)
    translation: float  # head translation, in head radii (the template mesh's)


def head_radius(subject: Subject) -> float:
    """The template mesh's largest distance from its centroid (world units), the head's size."""
    import trimesh

    if subject.template_mesh is None:
        raise ValueError(f"{subject.transforms_path}: template_mesh is needed for the head's size")
    vertices = np.asarray(trimesh.load(subject.template_mesh, force="mesh").vertices)
    return float(np.linalg.norm(vertices - vertices.mean(0), axis=1).max())


def _noise_std(residuals: np.ndarray) -> float:
    """Robust std of i.i.d. noise from second differences (motion, smooth in time, drops out)."""
    return float(MAD_TO_STD * np.median(np.abs(residuals - np.median(residuals))) / SECOND_DIFFERENCE_GAIN)


def tracking_jitter(subject: Subject) -> TrackingNoise:
    """The frame-to-frame jitter of a tracked subject's codes and head poses: the noise std that
    second differences in time show, robustly (median), so fast motion counts as little as it can;
    for the code the RMS over coefficients of each one's. Prepare the video with ``smoothing: 1``
    to see the tracker's own noise. A lower bound of the tracker's error: a slow bias has no jitter."""
    codes, rotations, translations = [], [], []
    for sequence in subject.sequence_names():
        for camera in subject.camera_ids():
            frames = subject.frames_of_sequence(sequence, camera)
            t = subject.timesteps[frames]
            keep = np.nonzero((t[1:-1] - t[:-2] == 1) & (t[2:] - t[1:-1] == 1))[0] + 1  # consecutive triples
            if not len(keep):
                continue
            e, P = subject.expressions[frames].astype(np.float64), subject.head_poses[frames].astype(np.float64)
            codes.append(e[keep] - (e[keep - 1] + e[keep + 1]) / 2)
            rotvec = Rotation.from_matrix(P[:, :3, :3]).as_rotvec()
            rotations.append((rotvec[keep] - (rotvec[keep - 1] + rotvec[keep + 1]) / 2).ravel())
            translations.append((P[keep, :3, 3] - (P[keep - 1, :3, 3] + P[keep + 1, :3, 3]) / 2).ravel())
    if not codes:
        raise ValueError(f"{subject.transforms_path}: no three consecutive timesteps of one camera to measure jitter on")
    per_axis_rotation = _noise_std(np.concatenate(rotations))
    per_axis_translation = _noise_std(np.concatenate(translations))
    per_coefficient = [_noise_std(column) for column in np.concatenate(codes).T]  # inactive coefficients barely move: not one pooled median
    return TrackingNoise(
        code=float(np.sqrt(np.mean(np.square(per_coefficient)))),
        rotation_deg=float(np.degrees(per_axis_rotation * np.sqrt(3))),  # the angle of a 3-axis error: sqrt(3) x one axis
        translation=float(per_axis_translation * np.sqrt(3) / head_radius(subject)),
    )


def perturb_training_instants(data: Path, out: Path, noise: TrackingNoise, seed: int = 0) -> Path:
    """``out``: ``data``'s subject with each training instant's code and head pose perturbed (the
    same for every camera of the instant) by Gaussian noise of ``noise``'s size; test frames and
    images untouched (paths point at ``data``'s files). The truth stays in ``data``."""
    subject = load_subject(data)
    rng = np.random.default_rng(seed)
    radius = head_radius(subject)
    meta = transforms_moved_to(subject, out)
    train = set(int(i) for i in subject.split("train"))
    draws: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for i, frame in enumerate(meta["frames"]):
        if i not in train:
            continue
        instant = (subject.sequences[i], int(subject.timesteps[i]))
        if instant not in draws:
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis)
            direction = rng.normal(size=3)
            draws[instant] = (
                rng.normal(0.0, noise.code, size=subject.d_exp),
                Rotation.from_rotvec(axis * np.radians(rng.normal(0.0, noise.rotation_deg))).as_matrix(),
                direction / np.linalg.norm(direction) * rng.normal(0.0, noise.translation) * radius,
            )
        dcode, dR, dt = draws[instant]
        pose = subject.head_poses[i].astype(np.float64)
        frame["expression"] = (subject.expressions[i] + dcode).tolist()
        frame["head_pose"] = np.block([[dR @ pose[:3, :3], (pose[:3, 3] + dt)[:, None]], [np.zeros((1, 3)), np.ones((1, 1))]]).tolist()
    meta["perturbed_from"] = {"subject": str(subject.root), "seed": seed, **asdict(noise)}
    path = write_transforms(out, meta)
    load_subject(out)
    return path


def control_errors(truth: Subject, expressions: np.ndarray, poses: np.ndarray, frames: np.ndarray) -> dict[str, float]:
    """RMS error of ``expressions`` [N, d] and ``poses`` [N, 4, 4] against ``truth``'s, over ``frames``:
    code (coefficient units), rotation (degrees), translation (head radii)."""
    frames = np.asarray(frames)
    code = expressions[frames] - truth.expressions[frames]
    relative = np.linalg.inv(truth.head_poses[frames].astype(np.float64)) @ poses[frames].astype(np.float64)
    angles = np.degrees(np.linalg.norm(Rotation.from_matrix(relative[:, :3, :3]).as_rotvec(), axis=1))
    shift = np.linalg.norm(poses[frames, :3, 3] - truth.head_poses[frames, :3, 3], axis=1) / head_radius(truth)
    return {
        "code_rms": float(np.sqrt(np.mean(code**2))),
        "rotation_rms_deg": float(np.sqrt(np.mean(angles**2))),
        "translation_rms": float(np.sqrt(np.mean(shift**2))),
    }
