"""A monocular video to a subject folder: face tracking, smoothing, crop, masks, split by time.

- Expression: MediaPipe's 52 blendshape coefficients (space ``arkit52``, their names as labels).
- Head pose: MediaPipe's facial transformation matrix (converted from cm to metres), relative
  to its canonical face mesh, which becomes the template (head space = canonical face space).
- Camera: one fixed pinhole camera at the origin, OpenGL axes, identity camera-to-world. Its
  intrinsics are those MediaPipe assumes when it solves the pose: vertical field of view 63
  degrees, principal point at the image centre (the pose reprojects the canonical mesh onto
  the landmarks only under these; tests check it), then scaled and shifted by the crop.
- Crop: one square box for the whole clip around the union of the face landmarks, enlarged
  by ``crop_scale`` to take in hair and neck, so the camera is the same in every frame.
- Masks (``masks``): MediaPipe's selfie segmenter (``eavatar.data.segmenter``, the person with
  hair, neck and what the crop holds of the shoulders), its edge refined by closed-form matting
  in a band of ``matting_band`` px; the face's landmark hull is always person. Or OpenCV GrabCut
  per frame, seeded from the landmarks (no model; it loses hair against a light wall), its
  contour smoothed and the alpha feathered (``mask_smoothing``).
- Region maps: face, mouth, eyes and brows from the landmarks' contours, the rest of the mask
  as hair (hair, ears, neck), so evaluation scores the mouth and the eyes apart.
- Frames without a face are dropped and listed in the report; the last ``test_fraction`` of
  the clip (by time) is the test split.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from eavatar.data.subject import write_transforms
from eavatar.data.synthetic import REGION_LABELS  # one label convention for every subject (docs/subject-format.md)
from eavatar.errors import EAvatarError
from eavatar.render.camera import OPENGL_TO_OPENCV

CHIN = 152  # MediaPipe's landmark at the bottom of the chin
MEDIAPIPE_VERTICAL_FOV_DEG = 63.0  # MediaPipe face geometry's default perspective camera
CM_TO_M = 0.01
MASKERS = ("segmenter", "grabcut")


class VideoError(EAvatarError, ValueError):
    """A video that cannot become a subject (unreadable, empty, no face), naming the file."""


@dataclass
class VideoConfig:
    """How a video becomes a subject (params.yaml `prepare`)."""

    resolution: int = 256
    """Side of the square output images, pixels."""
    every: int = 1
    """Keep every n-th frame of the video."""
    max_frames: int = 0
    """Stop after this many kept frames (0: all)."""
    crop_scale: float = 1.9
    """Side of the crop box over the size of the face landmarks' bounding box (takes in hair and neck)."""
    smoothing: int = 5
    """Window (kept frames, odd) of the centred moving average over head pose and expression; 1: none."""
    test_fraction: float = 0.2
    """The last part of the clip, by time, held out for test."""
    masks: str = "segmenter"
    """segmenter: MediaPipe's selfie segmenter + closed-form matting; grabcut: OpenCV GrabCut seeded from the landmarks (no model file)."""
    matting_band: int = 3
    """segmenter: half-width (px) of the trimap's unknown band around the segmenter's edge that matting resolves; 0: the segmenter's mask as is."""
    grabcut_iterations: int = 3
    """grabcut: refinement iterations per frame."""
    mask_smoothing: float = 1.5
    """grabcut: sigma (px) that smooths GrabCut's jagged contour and feathers the alpha over about that width; 0: raw GrabCut."""
    mask_area_tolerance: float = 0.07
    """Drop a frame whose mask area differs by more than this (relative) from the running median over 31 frames; 0: keep all."""

    def __post_init__(self) -> None:
        if self.resolution < 16 or self.every < 1 or self.max_frames < 0 or self.crop_scale <= 0:
            raise ValueError(f"prepare: resolution >= 16, every >= 1, max_frames >= 0, crop_scale > 0 (got {asdict(self)})")
        if not 0 < self.test_fraction < 1 or self.smoothing < 1 or self.smoothing % 2 == 0 or self.mask_smoothing < 0 or self.mask_area_tolerance < 0:
            raise ValueError(f"prepare: test_fraction in (0, 1), an odd smoothing >= 1, mask_smoothing >= 0 and mask_area_tolerance >= 0 (got {asdict(self)})")
        if self.masks not in MASKERS or self.matting_band < 0:
            raise ValueError(f"prepare: masks is one of {', '.join(MASKERS)} and matting_band >= 0 (got masks={self.masks!r}, matting_band={self.matting_band})")


def read_frames(path: Path, cfg: VideoConfig) -> tuple[np.ndarray, float]:
    """Kept frames [T, H, W, 3] uint8 and the video's frame rate; VideoError when unreadable or empty."""
    import imageio.v3 as iio

    if not path.is_file():
        raise VideoError(f"{path}: no such video file")
    try:
        fps = float(iio.immeta(path, plugin="pyav").get("fps") or 25.0)
        frames = []
        for i, frame in enumerate(iio.imiter(path, plugin="pyav")):
            if i % cfg.every == 0:
                frames.append(frame[..., :3])
                if cfg.max_frames and len(frames) >= cfg.max_frames:
                    break
    except Exception as err:  # noqa: BLE001 - any decoder failure is the file's fault; say which file
        raise VideoError(f"{path}: cannot decode the video ({type(err).__name__}: {err})") from None
    if not frames:
        raise VideoError(f"{path}: the video has no frames")
    return np.stack(frames), fps


def track_frames(frames: np.ndarray, fps: float, every: int):
    """(kept indices, tracks, blendshape labels, dropped indices); frames without a face are dropped."""
    from eavatar.data.face_tracker import FaceTracker

    kept, tracks, dropped = [], [], []
    with FaceTracker() as tracker:
        for i, frame in enumerate(frames):
            track = tracker.track(frame, round(1000 * i * every / fps))
            (dropped if track is None else kept).append(i)
            if track is not None:
                tracks.append(track)
        labels = tracker.labels
    return kept, tracks, labels, dropped


def smooth(values: np.ndarray, window: int) -> np.ndarray:  # [T, ...] -> [T, ...]
    """Centred moving average over time, the window shrinking at the ends."""
    if window <= 1:
        return values
    half = window // 2
    return np.stack([values[max(t - half, 0) : t + half + 1].mean(axis=0) for t in range(len(values))])


def smooth_poses(transforms: np.ndarray, window: int) -> np.ndarray:  # [T, 4, 4] -> [T, 4, 4]
    """Moving average of translations, and of rotations as the chordal mean (scipy Rotation.mean)."""
    from scipy.spatial.transform import Rotation

    out = transforms.copy()
    out[:, :3, 3] = smooth(transforms[:, :3, 3], window)
    half = window // 2
    rots = Rotation.from_matrix(transforms[:, :3, :3])
    for t in range(len(transforms)):
        out[t, :3, :3] = rots[max(t - half, 0) : t + half + 1].mean().as_matrix()
    return out


def mediapipe_focal(height: int) -> float:
    """Focal length (px) of the pinhole camera MediaPipe solves the head pose under, for an image ``height`` px tall."""
    return (height / 2) / np.tan(np.radians(MEDIAPIPE_VERTICAL_FOV_DEG) / 2)


def fit_head_poses(landmarks: np.ndarray, initial: np.ndarray, vertices: np.ndarray, rigid: np.ndarray, width: int, height: int) -> np.ndarray:
    """Head poses [T, 4, 4] (camera-from-canonical-face, cm, OpenGL axes) fitted to the rigid landmarks.

    MediaPipe's facial transformation matrix is a 3D Procrustes fit to all landmarks with their
    estimated depths, so opening the mouth or raising the brows tilts it: on d3 it differs from
    a fit to the upper face by 6.8 degrees (median), and leaves 2.3 px of frame-to-frame
    residual on the upper face at 256 px, against 0.8 px here (docs/video.md). Each frame is
    refined by OpenCV's iterative PnP on ``rigid`` landmarks [478, 3] (normalised image
    coordinates) of the canonical ``vertices`` [468, 3] cm, from MediaPipe's pose, under the
    intrinsics MediaPipe assumes.
    """
    import cv2

    focal = mediapipe_focal(height)
    camera = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
    gl_to_cv = OPENGL_TO_OPENCV[:3, :3].numpy()
    points = vertices[rigid].astype(np.float64)
    poses = initial.astype(np.float64).copy()
    for t, pose in enumerate(initial.astype(np.float64)):
        pixels = landmarks[t, rigid, :2] * [width, height]
        rvec, tvec = cv2.Rodrigues(gl_to_cv @ pose[:3, :3])[0], (gl_to_cv @ pose[:3, 3]).reshape(3, 1)
        ok, rvec, tvec = cv2.solvePnP(points, pixels, camera, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE)
        if ok and tvec[2, 0] > 0:  # in front of the camera; else keep MediaPipe's
            poses[t, :3, :3] = gl_to_cv @ cv2.Rodrigues(rvec)[0]
            poses[t, :3, 3] = gl_to_cv @ tvec[:, 0]
    return poses


def crop_box(landmarks: np.ndarray, width: int, height: int, scale: float) -> tuple[int, int, int]:
    """(x0, y0, side) of one square box around all frames' landmarks [T, 478, 3], inside the image."""
    xs, ys = landmarks[..., 0] * width, landmarks[..., 1] * height
    cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    side = int(round(min(scale * max(xs.max() - xs.min(), ys.max() - ys.min()), width, height)))
    x0 = int(round(np.clip(cx - side / 2, 0, width - side)))
    y0 = int(round(np.clip(cy - side / 2 + 0.05 * side, 0, height - side)))  # a little lower: neck over forehead room
    return x0, y0, side


def grabcut_mask(rgb: np.ndarray, landmarks_px: np.ndarray, iterations: int) -> np.ndarray:
    """[H, W] uint8 {0, 255} person mask of one frame, GrabCut seeded from the face landmarks [478, 2] px.

    Background seeds are the top corners and thin strips down both sides to the chin: with the
    corners alone GrabCut took a lighter patch of wall beside the head into the person in 21
    of d3's frames (and dropped most of the hair in two of them).
    """
    import cv2

    h, w = rgb.shape[:2]
    seed = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    hull = cv2.convexHull(landmarks_px.astype(np.int32))
    (fx, fy), (fw, fh) = landmarks_px.mean(axis=0), np.ptp(landmarks_px, axis=0)
    cv2.ellipse(seed, (int(fx), int(fy - 0.1 * fh)), (int(0.75 * fw), int(0.8 * fh)), 0, 0, 360, cv2.GC_PR_FGD, -1)  # head and hair
    cv2.rectangle(seed, (int(fx - 0.35 * fw), int(fy)), (int(fx + 0.35 * fw), h), cv2.GC_PR_FGD, -1)  # neck
    cv2.fillConvexPoly(seed, hull, cv2.GC_FGD)
    corner, strip, chin = max(h // 12, 2), max(w // 64, 2), int(np.clip(landmarks_px[CHIN, 1], 0, h))
    seed[:corner, :corner] = seed[:corner, -corner:] = cv2.GC_BGD
    seed[:chin, :strip] = seed[:chin, -strip:] = cv2.GC_BGD  # the sides above the chin: wall, not hair
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means start draws from OpenCV's global RNG: without a seed a frame's mask depends on the frames before it
    cv2.grabCut(np.ascontiguousarray(rgb[..., ::-1]), seed, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    return face_component(np.isin(seed, (cv2.GC_FGD, cv2.GC_PR_FGD)), landmarks_px) * 255


def face_component(person: np.ndarray, landmarks_px: np.ndarray) -> np.ndarray:
    """[H, W] uint8 {0, 1}: the connected part of the bool mask ``person`` that holds the face
    (the landmarks' mean), else its largest part: specks of wall taken for person go."""
    import cv2

    h, w = person.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats(person.astype(np.uint8))
    if count <= 2:
        return person.astype(np.uint8)
    fx, fy = landmarks_px.mean(axis=0)
    face = labels[int(np.clip(fy, 0, h - 1)), int(np.clip(fx, 0, w - 1))]
    return (labels == (face if face else 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])))).astype(np.uint8)


def segmenter_mask(segmenter, rgb: np.ndarray, landmarks_px: np.ndarray, band: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask, alpha), both [H, W] uint8, of one frame: the segmenter's person (its confidence at
    one half, the face's landmark hull added, the part holding the face), its edge resolved by
    closed-form matting over ``band`` px each side; the mask is the alpha at one half."""
    import cv2

    from eavatar.data.segmenter import matte

    person = (segmenter.confidence(rgb) >= 0.5).astype(np.uint8)
    cv2.fillConvexPoly(person, cv2.convexHull(np.round(landmarks_px).astype(np.int32)), 1)
    alpha = matte(rgb, face_component(person > 0, landmarks_px), band)
    mask = face_component(alpha >= 0.5, landmarks_px)
    alpha = np.where(cv2.dilate(mask, np.ones((2 * band + 3, 2 * band + 3), np.uint8)) > 0, alpha, 0.0)  # no stray alpha away from the kept part
    return mask * 255, np.round(alpha * 255).astype(np.uint8)


def refine_mask(mask: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(mask, alpha), both [H, W] uint8, from a {0, 255} GrabCut mask.

    GrabCut's contour zig-zags by a pixel or two, differently in every frame; an avatar cannot
    learn that noise, and at 256 px the band it leaves held most of the training error (docs/video.md).
    The mask is the blurred mask thresholded at one half (a smooth contour, same area); the
    alpha feathers that contour over about ``sigma`` pixels, as a rendered edge is soft.
    """
    import cv2

    if sigma <= 0:
        return mask, mask
    blurred = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigma)
    smooth = (blurred >= 0.5).astype(np.float32)
    alpha = cv2.GaussianBlur(smooth, (0, 0), sigma / 2)
    return (smooth * 255).astype(np.uint8), np.round(alpha * 255).astype(np.uint8)


def face_regions(mask: np.ndarray, landmarks_px: np.ndarray, parts: dict[str, list[np.ndarray]]) -> np.ndarray:
    """[H, W] uint8 region labels (REGION_LABELS) of one frame from its mask and landmarks [478, 2] px.

    Inside the mask: the face oval is skin, then brows, eyes and mouth (each the convex hull of
    its contour landmarks, lips taking in the mouth's interior) over it; the rest is hair.
    """
    import cv2

    regions = np.where(mask > 127, REGION_LABELS["hair"], REGION_LABELS["background"]).astype(np.uint8)
    for name, label in (("face", "skin"), ("brows", "brows"), ("eyes", "eyes"), ("mouth", "mouth")):
        part = np.zeros_like(regions)
        for indices in parts[name]:
            cv2.fillConvexPoly(part, cv2.convexHull(np.round(landmarks_px[indices]).astype(np.int32)), 1)
        regions[(part > 0) & (mask > 127)] = REGION_LABELS[label]
    return regions


def prepare_video(video: str | Path, out: str | Path, cfg: VideoConfig) -> dict:
    """Write the subject folder of ``video`` at ``out`` (atomically) and return the report
    (the folder's ``prepare_report.json`` plus ``seconds`` and ``frames_per_second``)."""
    from eavatar.data.face_tracker import canonical_face_mesh, find_face_landmarker, rigid_landmarks

    video, out = Path(video), Path(out)
    model = find_face_landmarker()  # fail before any work when a model is missing
    if cfg.masks == "segmenter":
        from eavatar.data.segmenter import find_segmenter

        find_segmenter()
    start = time.perf_counter()
    frames, fps = read_frames(video, cfg)
    kept, tracks, labels, dropped = track_frames(frames, fps, cfg.every)
    if len(kept) < 2:
        raise VideoError(f"{video}: a face was found in {len(kept)} of {len(frames)} frames; need at least 2")
    h, w = frames.shape[1:3]
    landmarks = np.stack([t.landmarks for t in tracks])
    expressions = np.clip(smooth(np.stack([t.blendshapes for t in tracks]), cfg.smoothing), 0.0, 1.0)
    vertices, faces = canonical_face_mesh(model)
    poses = fit_head_poses(landmarks, np.stack([t.transform for t in tracks]), vertices, rigid_landmarks(vertices, faces), w, h)
    poses = smooth_poses(poses, cfg.smoothing)
    poses[:, :3, 3] *= CM_TO_M
    x0, y0, side = crop_box(landmarks, w, h, cfg.crop_scale)
    k = cfg.resolution / side
    focal = mediapipe_focal(h) * k
    cx, cy = (w / 2 - x0) * k, (h / 2 - y0) * k

    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        bad_masks = write_subject(tmp, video, frames, kept, tracks, labels, expressions, poses, (x0, y0, side, k), (focal, cx, cy), fps, (vertices, faces), cfg)
        report = {
            "video": str(video),
            "frames_read": int(len(frames)),
            "frames_kept": len(kept) - len(bad_masks),
            "dropped_no_face": [int(i * cfg.every) for i in dropped],
            "dropped_bad_mask": bad_masks,
        }
        # the folder holds what the clip and params determine, so a re-run leaves it byte-identical
        # (and DVC's hash of it, which everything downstream depends on); the timing is returned only
        (tmp / "prepare_report.json").write_text(json.dumps(report, indent=1))
        seconds = time.perf_counter() - start
        report.update(seconds=seconds, frames_per_second=len(frames) / seconds)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written is left behind
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return report


def head_template(face_vertices: np.ndarray, face_faces: np.ndarray):  # cm -> trimesh.Trimesh in metres
    """MediaPipe's canonical face with a generic skull-and-hair shell and a neck behind it.

    The face mesh covers the face only; Gaussians seeded from it alone would have to grow
    into hair, ears and neck by densification, which a CPU budget never finishes. The shell
    (an ellipsoid sized from the face: 1.05x its half-width, 1.25x its half-height, centred
    a face-depth behind it) and a neck cylinder only place the first Gaussians; training
    moves, prunes and recolours them. Shell faces in front of the face, and the back of the
    head, which a monocular camera does not see, are dropped.
    """
    import trimesh

    lo, hi = face_vertices.min(axis=0), face_vertices.max(axis=0)
    half = (hi - lo) / 2
    centre = np.array([0.0, (lo[1] + hi[1]) / 2 + 0.15 * half[1], lo[2] - 0.2 * (hi[2] - lo[2])])
    shell = trimesh.creation.icosphere(subdivisions=3)
    shell.apply_scale([1.05 * half[0], 1.25 * half[1], 1.0 * half[0] * 1.25])
    shell.apply_translation(centre)
    c = shell.triangles_center
    around = (c[:, 2] < lo[2] + 0.3 * (hi[2] - lo[2])) | (np.abs(c[:, 0]) > 0.85 * half[0]) | (c[:, 1] > hi[1] - 0.1 * half[1])
    seen = c[:, 2] > centre[2] - 0.5 * half[0]  # a monocular camera sees the front of the head only
    shell.update_faces(around & seen)
    shell.remove_unreferenced_vertices()
    neck = trimesh.creation.cylinder(radius=0.6 * half[0], height=1.2 * half[1], sections=24)
    neck.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    neck.apply_translation([0.0, lo[1] - 0.4 * half[1], centre[2]])
    mesh = trimesh.util.concatenate([trimesh.Trimesh(face_vertices, face_faces, process=False), shell, neck])
    mesh.apply_scale(CM_TO_M)
    return mesh


def mask_outliers(areas: np.ndarray, tolerance: float, window: int = 31) -> np.ndarray:  # [T] -> [T] bool
    """Frames whose mask area leaves the running median of ``window`` frames by more than
    ``tolerance`` (relative): where GrabCut dropped part of the hair or took in some wall. A head
    does not change its area by that much within a second; on d3 these are the failures seen,
    on d10 there are none."""
    from scipy.ndimage import median_filter

    if tolerance <= 0:
        return np.zeros(len(areas), dtype=bool)
    reference = median_filter(areas, size=min(window, len(areas)), mode="nearest")
    return np.abs(areas / reference - 1.0) > tolerance


def write_subject(tmp: Path, video: Path, frames, kept, tracks, labels, expressions, poses, crop, intrinsics, fps: float, face_mesh: tuple[np.ndarray, np.ndarray], cfg: VideoConfig) -> list[int]:
    """The subject folder's files under ``tmp``: cropped RGBA frames, masks, region maps, template,
    transforms.json (``face_mesh``: the bundle's canonical face, cm). Returns the video frames
    dropped for their masks (``mask_outliers``).

    The split is by time over every tracked frame; a dropped frame leaves a gap in the timesteps.
    """
    import cv2
    import imageio.v3 as iio

    from eavatar.data.face_tracker import landmark_regions

    x0, y0, side, k = crop
    focal, cx, cy = intrinsics
    h, w = frames.shape[1:3]
    parts = landmark_regions()
    for folder in ("images", "masks", "regions"):
        (tmp / folder).mkdir(parents=True)
    head_template(*face_mesh).export(tmp / "template.ply")
    crops = []
    with ExitStack() as stack:
        if cfg.masks == "segmenter":
            from eavatar.data.segmenter import PersonSegmenter

            segmenter = stack.enter_context(PersonSegmenter())
            mask_of = lambda image, lm_px: segmenter_mask(segmenter, image, lm_px, cfg.matting_band)  # noqa: E731
        else:
            mask_of = lambda image, lm_px: refine_mask(grabcut_mask(image, lm_px, cfg.grabcut_iterations), cfg.mask_smoothing)  # noqa: E731
        for i, track in zip(kept, tracks):
            image = cv2.resize(frames[i, y0 : y0 + side, x0 : x0 + side], (cfg.resolution, cfg.resolution), interpolation=cv2.INTER_AREA)
            lm_px = np.stack([(track.landmarks[:, 0] * w - x0) * k, (track.landmarks[:, 1] * h - y0) * k], axis=1)
            crops.append((image, lm_px, *mask_of(image, lm_px)))
    outliers = mask_outliers(np.array([(mask > 127).mean() for _, _, mask, _ in crops]), cfg.mask_area_tolerance)
    n_train = len(crops) - max(1, int(round(cfg.test_fraction * len(crops))))
    records, splits = [], {"train": [], "test": []}
    for n, (i, (image, lm_px, mask, alpha)) in enumerate(zip(kept, crops)):
        if outliers[n]:
            continue
        stem = f"{n:05d}.png"
        iio.imwrite(tmp / "images" / stem, np.dstack([image, alpha]))  # RGBA: the pipeline composites over its background
        iio.imwrite(tmp / "masks" / stem, mask)
        iio.imwrite(tmp / "regions" / stem, face_regions(mask, lm_px, parts))
        splits["train" if n < n_train else "test"].append(len(records))
        records.append(
            {
                "file_path": f"images/{stem}",
                "fg_mask_path": f"masks/{stem}",
                "region_path": f"regions/{stem}",
                "transform_matrix": np.eye(4).tolist(),
                "timestep_index": n,
                "camera_index": 0,
                "sequence": video.stem,
                "expression": np.round(expressions[n], 6).tolist(),
                "head_pose": np.round(poses[n], 8).tolist(),
                "landmarks": np.round(lm_px, 2).tolist(),
                "video_frame": int(i * cfg.every),
            }
        )
    if not splits["train"] or not splits["test"]:
        raise VideoError(f"{video}: after dropping {int(outliers.sum())} frames with broken masks, the train or the test split is empty")
    transforms = {
        "format_version": 1,
        "subject": video.stem,
        "fl_x": focal, "fl_y": focal, "cx": cx, "cy": cy, "w": cfg.resolution, "h": cfg.resolution,
        "expression_space": {"name": "arkit52", "labels": labels},
        "template_mesh": "template.ply",
        "region_labels": REGION_LABELS,
        "splits": {name: {"frames": frames_} for name, frames_ in splits.items()},
        "source": {"video": str(video), "fps": fps, "config": asdict(cfg), "crop": [x0, y0, side], "tracker": "mediapipe face_landmarker"},
        "frames": records,
    }  # fmt: skip
    write_transforms(tmp, transforms)
    return [int(i * cfg.every) for n, i in enumerate(kept) if outliers[n]]
