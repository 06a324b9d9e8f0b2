"""Data: from the raw labels on disk to augmented training batches.

Reading and checking (`labels`: competition labels, manifests, every defect named; `image_header`:
image size, channels and EXIF orientation from the file's header, without decoding; `aihub`: the
public AIHub tree as downloaded; `meta`: what a path and a label file tell), preparing (`prepare`:
the split, the diet set, manifests, report.json; `exports`: YOLO and COCO exports; `resize`: the
one-time copy of large images at the training size), and loading (`geometry`: letterbox geometry; `augment`: mosaic,
affine, brightness, flip; `image_cache`: decoded images in shared memory; `dataset`: the dataset,
the epoch-parts sampler, the loader). Raw data is read-only: never copied or re-encoded.
"""
