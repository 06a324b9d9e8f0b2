"""The landmark peer's perception: MediaPipe Face Mesh on each frame of a clip -> eye aspect ratio,
mouth aspect ratio and head pose per frame, written as JSON for `drowsy.eval.monitor_benchmark.landmark_events`.

Runs in its own virtual environment (numpy, OpenCV and mediapipe==0.10.21, the last release whose
wheel ships the face-mesh model, so it runs offline; it needs numpy<2 and protobuf<5), never in the
package's: benchmarks/monitor_events.py creates that environment and calls this script once per clip.

    <peer-venv>/bin/python benchmarks/facemesh_peer.py CLIP.mp4 OUT.json

The measures follow the open-source Driver-State-Detection project (e-candeloro), written anew here:
- eye aspect ratio (EAR) per eye = (|top1 - bottom1| + |top2 - bottom2|) / (2 |corner - corner|) over the
  mesh's points 33/133, 160/144, 158/153 (one eye) and 362/263, 385/380, 387/373 (the other), the mean
  of both eyes, in pixels (that project measures in coordinates normalised by the frame's width and
  height, which stretches a landscape frame's EAR by width / height);
- head pose from six mesh points (nose tip 1, chin 152, outer eye corners 33 and 263, mouth corners 61
  and 291) against a generic 3-D face model, by cv2.solvePnP with a pinhole camera (focal length =
  frame width, principal point = frame centre): yaw (+ = towards the image's right) and pitch (+ = down)
  in degrees;
- mouth aspect ratio (MAR) = inner-lip opening (13/14) / mouth width (61/291), for yawns (that project
  has no yawn rule; MAR rules are the common landmark practice);
- iris offset (the mesh's refined iris points, `refine_landmarks=True`): per eye, the iris centre (468,
  473) from the midpoint of the eye's corners along the line between them, in eye widths (+ = towards
  the image's right), the mean of both eyes; drowsy's `gaze.eye_angle` turns it into the eyes' own yaw
  (eyes-only glances).
Only numpy and cv2 at import: the geometry is tested from the package's environment
(tests/eval/test_monitor_benchmark.py); mediapipe is imported by `main`.
"""

import json
import sys

import cv2
import numpy as np

EYES = ((33, 133, 160, 144, 158, 153), (362, 263, 385, 380, 387, 373))  # corner, corner, (top, bottom) x 2
MOUTH = (61, 291, 13, 14)  # corners, inner upper lip, inner lower lip
POSE_POINTS = (1, 152, 33, 263, 61, 291)
IRISES = ((468, 33, 133), (473, 362, 263))  # iris centre, the eye's two corners
# A generic face (millimetres; x to the image's right, y up, z towards the camera), nose tip at the origin:
# the six POSE_POINTS in order. Widely used approximate anthropometric values.
FACE_MODEL = np.array(
    [
        (0.0, 0.0, 0.0),
        (0.0, -63.6, -12.5),
        (-43.3, 32.7, -26.0),
        (43.3, 32.7, -26.0),
        (-28.9, -28.9, -24.1),
        (28.9, -28.9, -24.1),
    ]
)


def eye_aspect_ratio(points: np.ndarray) -> float:
    """Mean EAR of both eyes; points: [n, 2] mesh landmarks in pixels."""
    ratios = []
    for corner_a, corner_b, top1, bottom1, top2, bottom2 in EYES:
        opening = np.linalg.norm(points[top1] - points[bottom1]) + np.linalg.norm(points[top2] - points[bottom2])
        ratios.append(opening / (2 * max(np.linalg.norm(points[corner_a] - points[corner_b]), 1e-6)))
    return float(np.mean(ratios))


def mouth_aspect_ratio(points: np.ndarray) -> float:
    left, right, upper, lower = MOUTH
    return float(
        np.linalg.norm(points[upper] - points[lower]) / max(np.linalg.norm(points[left] - points[right]), 1e-6)
    )


def iris_offset(points: np.ndarray) -> float:
    """Mean over both eyes of the iris centre's offset from the midpoint of the eye's corners, along the
    line from its left to its right corner in the image, in eye widths; points: [478, 2] pixels."""
    offsets = []
    for iris, corner_a, corner_b in IRISES:
        left, right = sorted((points[corner_a], points[corner_b]), key=lambda p: p[0])
        axis = right - left
        width = max(float(np.linalg.norm(axis)), 1e-6)
        offsets.append(float(np.dot(points[iris] - (left + right) / 2, axis / width) / width))
    return float(np.mean(offsets))


def head_pose(points: np.ndarray, width: int, height: int) -> tuple[float, float]:
    """(yaw, pitch) in degrees of the face whose mesh landmarks (pixels) are `points`."""
    camera = np.array([[width, 0.0, width / 2], [0.0, width, height / 2], [0.0, 0.0, 1.0]])
    image = np.ascontiguousarray(points[list(POSE_POINTS)], dtype=np.float64)
    # the model's y and z point up and towards the camera; the camera's y and z point down and away from it
    model = FACE_MODEL * np.array([1.0, -1.0, -1.0])
    ok, rotation, _ = cv2.solvePnP(model, image, camera, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise ValueError("solvePnP found no pose")
    matrix, _ = cv2.Rodrigues(rotation)
    forward = matrix @ np.array([0.0, 0.0, -1.0])  # where the face points, in camera coordinates
    yaw = np.degrees(np.arctan2(forward[0], -forward[2]))
    pitch = np.degrees(np.arctan2(forward[1], np.hypot(forward[0], forward[2])))
    return float(yaw), float(pitch)


def measure(points: np.ndarray, width: int, height: int) -> dict:
    yaw, pitch = head_pose(points, width, height)
    return {
        "ear": eye_aspect_ratio(points),
        "mar": mouth_aspect_ratio(points),
        "yaw": yaw,
        "pitch": pitch,
        "iris": iris_offset(points),
    }


def main(clip: str, out: str) -> None:
    import mediapipe as mp

    capture = cv2.VideoCapture(clip)
    if not capture.isOpened():
        raise SystemExit(f"{clip}: cannot be read as a video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 15.0
    frames = []
    with mp.solutions.face_mesh.FaceMesh(
        max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.5, min_tracking_confidence=0.5
    ) as mesh:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            height, width = frame.shape[:2]
            found = mesh.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)).multi_face_landmarks
            if not found:
                frames.append(None)
                continue
            points = np.array([(p.x * width, p.y * height) for p in found[0].landmark])
            frames.append(measure(points, width, height))
    capture.release()
    with open(out, "w") as file:
        json.dump({"clip": clip, "fps": fps, "mediapipe": mp.__version__, "frames": frames}, file)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: facemesh_peer.py CLIP.mp4 OUT.json")
    main(sys.argv[1], sys.argv[2])
