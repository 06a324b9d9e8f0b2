"""The embedded synthetic dataset: grey (IR-like) in-cabin driver scenes with exact boxes.

The competition data is not public, so this module writes the same on-disk layout
(`OUT/images/*.jpg` + `OUT/labels.json`) from drawn scenes: one driver with eyes open or closed,
mouth open, closed or hidden (face mask, hand), sometimes a phone or a cigarette, in front of
cabin clutter (seat, window, pillar, belt) under a lighting gradient, blur and sensor noise.

Per-image class counts follow the raw train table of the original solution (`CLASS_RATES`), so
the imbalance the diet set fights is really there. Every part is a polygon in the head's frame,
so its box is the exact extent of the drawn geometry after rotation, clipped to the image.

Coordinates: pixel centres sit at integer xy while drawing; boxes are xyxy in pixel *edges*
(pixel i spans [i, i + 1]), so a box covering the whole image is [0, 0, W, H].
"""

from drowsy.synth.aihub_tree import write_aihub_tree
from drowsy.synth.dataset import JPEG_QUALITY, image_name, write_dataset
from drowsy.synth.render import OWNERS, draw_scene, render_scene
from drowsy.synth.scene import CLASS_RATES, SceneState, sample_scene

__all__ = ["CLASS_RATES", "JPEG_QUALITY", "OWNERS", "SceneState", "draw_scene", "image_name", "render_scene",
           "sample_scene", "write_aihub_tree", "write_dataset"]
