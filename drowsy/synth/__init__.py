"""The embedded synthetic dataset: grey (IR-like) in-cabin driver scenes with exact boxes.

The real data is not public, so this package writes its on-disk layouts from drawn scenes: the
public AIHub tree (`write_aihub_tree`: subjects, recordings, one label JSON per image) or the
competition's (`write_dataset`: `OUT/images/*.jpg` + `OUT/labels.json`). A scene is one driver with
eyes open or closed, mouth open, closed or hidden (face mask, hand), sometimes glasses, a cap, a phone
or a cigarette, in front of cabin clutter (seat, window, pillar, belt) under a lighting gradient,
blur and sensor noise.

Per-image class counts follow the raw train table of the original solution (`CLASS_RATES`), so
the imbalance the diet set fights is really there. Every part is a polygon in the head's frame,
so its box is the exact extent of the drawn geometry after rotation, clipped to the image.

Coordinates: pixel centres sit at integer xy while drawing; boxes are xyxy in pixel *edges*
(pixel i spans [i, i + 1]), so a box covering the whole image is [0, 0, W, H].

Modules: `scene` (what a scene holds, sampled at the real class rates), `canvas` and `render` (drawing
it, with exact boxes), `aihub_tree` and `competition` (the two on-disk layouts), `demo_data` (the
embedded default: written on first use), `clips/` (animated video clips for the driver monitor).
"""
