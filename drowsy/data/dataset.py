"""Training and validation data: a detection dataset over manifest records, its sampler and loader.

Images are decoded as grayscale and resized so the long side is `img_size`, from disk for every item or
once, into a `drowsy.data.image_cache.ImageCache`: one shared-memory buffer that every loader worker
maps instead of copying; training items get mosaic, random affine, brightness
and flip augmentation (drowsy.data.augment), validation items only a letterbox.

Per-item randomness is seeded by (seed, epoch, index), so an item is the same whichever worker
loads it and however many workers there are.
"""

import math
import random
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from drowsy import CLASS_IDS, CLASSES
from drowsy.config import COPY_PASTE_CLASSES
from drowsy.data.augment import (
    PASTE_SPOTS,
    augment_value,
    copy_paste,
    crop_with_background,
    flip_lr,
    mosaic4,
    random_affine,
)
from drowsy.data.geometry import letterbox_boxes, letterbox_geometry, pad_to, resize_long_side, resized_hw
from drowsy.data.image_cache import ImageCache, fill_cache
from drowsy.distributed import SINGLE_PROCESS, Process
from drowsy.errors import DrowsyError
from drowsy.files import read_gray
from drowsy.progress import log

# Augmentation hyperparameters this dataset reads, and their "off" values (used when hyp omits one).
AUGMENT_OFF = {
    "degrees": 0.0,
    "translate": 0.0,
    "scale": 0.0,
    "shear": 0.0,
    "perspective": 0.0,
    "hsv_v": 0.0,
    "fliplr": 0.0,
    "mosaic": 0.0,
    "copy_paste": 0.0,
}
# Hyperparameters that exist in YOLOv5 hyp files but that this pipeline does not implement:
# hue and saturation mean nothing for grayscale images, and the recipe never uses up-down flips or mixup.
UNSUPPORTED = ("hsv_h", "hsv_s", "flipud", "mixup")


def _augment_hyp(hyp: dict | None) -> dict:
    hyp = hyp or {}
    for key in UNSUPPORTED:
        if hyp.get(key, 0):
            raise DrowsyError(f"hyp: field '{key}': {hyp[key]} is not supported by the data pipeline (use 0)")
    values = {key: float(hyp.get(key, off)) for key, off in AUGMENT_OFF.items()}
    pasted = [
        name.strip() for name in str(hyp.get("copy_paste_classes", COPY_PASTE_CLASSES)).split(",") if name.strip()
    ]
    for name in pasted:
        if name not in PASTE_SPOTS:
            raise DrowsyError(
                f"hyp: field 'copy_paste_classes': {name!r} cannot be pasted (one of {', '.join(PASTE_SPOTS)})"
            )
    return values | {"copy_paste_classes": pasted}


def _mixed_seed(*numbers: int) -> int:
    """One well-mixed 32-bit seed from several integers (plain sums would make (0, 1) == (1, 0))."""
    return int(np.random.SeedSequence(numbers).generate_state(1)[0])


def _flatten_objects(records: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All records' objects as flat arrays, so workers share a few numpy buffers instead of touching
    (and, through reference counts, copying) millions of small Python objects.

    Returns boxes [M, 4] float32 xyxy original pixels, classes [M] int64, offsets [N + 1] int64
    (record i owns rows offsets[i]:offsets[i + 1]).
    """
    boxes, classes, counts = [], [], []
    for index, record in enumerate(records):
        where = f"record {index} ({record['file_name']})"
        for obj in record["objects"]:
            position, name = obj.get("position"), obj.get("class")
            if name not in CLASS_IDS:
                raise DrowsyError(f"{where}: field 'class': unknown class {name!r}")
            if not isinstance(position, (list, tuple)) or len(position) != 4:
                raise DrowsyError(f"{where}: field 'position': expected [x1, y1, x2, y2], got {position!r}")
            boxes.append(position)
            classes.append(CLASS_IDS[name])
        counts.append(len(record["objects"]))
    box_array = np.array(boxes, np.float32).reshape(-1, 4)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return box_array, np.array(classes, np.int64), offsets


def _targets(boxes: np.ndarray, classes: np.ndarray) -> torch.Tensor:
    """boxes [n, 4] xyxy + classes [n] -> float32 [n, 5] (class_id, cx, cy, w, h), pixels."""
    targets = np.empty((len(boxes), 5), np.float32)
    targets[:, 0] = classes
    targets[:, 1:3] = (boxes[:, :2] + boxes[:, 2:]) / 2
    targets[:, 3:5] = boxes[:, 2:] - boxes[:, :2]
    return torch.from_numpy(targets)


class DetectionDataset(Dataset):
    """Detection items from manifest records.

    records: manifest annotations, each {"file_name", "width", "height",
    "objects": [{"class": name, "position": [x1, y1, x2, y2]}]} in original pixels.
    img_size: side S of the square network image (even when augmenting: mosaic halves 2S).
    hyp: YOLOv5-style hyperparameters; read here: mosaic, degrees, translate, scale, shear,
    perspective, hsv_v, fliplr, copy_paste and copy_paste_classes (missing ones are off; copy-paste goes
    after the mosaic, before the affine warp, so the pasted boxes move with the rest).
    augment: False gives the validation view (letterbox only).

    Item: (image uint8 [C, S, S], targets float32 [n, 5] = (class_id, cx, cy, w, h) pixels of the
    network image, meta {"file_name", "original_hw": (h, w), "ratio", "pad": (left, top)}).
    meta's ratio and pad are those of the plain letterbox (network = original * ratio + pad), the
    mapping validation inverts; augmented items are not invertible.
    """

    def __init__(
        self,
        image_root: Path,
        records: list[dict],
        img_size: int,
        hyp: dict | None = None,
        augment: bool = False,
        in_channels: int = 1,
        cache: bool = False,
        seed: int = 0,
    ):
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        if augment and img_size % 2:
            raise ValueError(f"img_size must be even when augmenting (mosaic halves 2S), got {img_size}")
        self.image_root = Path(image_root)
        self.img_size = img_size
        self.hyp = _augment_hyp(hyp)
        self.augment = augment
        self.in_channels = in_channels
        self.seed = seed
        self.file_names = [record["file_name"] for record in records]
        self.original_hw = np.array([(record["height"], record["width"]) for record in records], np.int64)
        self._boxes, self._classes, self._offsets = _flatten_objects(records)
        # the objects copy-paste takes (rows of the flat arrays), when it is on
        pasted_ids = [CLASS_IDS[name] for name in self.hyp["copy_paste_classes"]] if self.hyp["copy_paste"] else []
        self._paste_rows = np.flatnonzero(np.isin(self._classes, pasted_ids))
        # Shared memory, so set_epoch in the main process reaches persistent workers too.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._cache: ImageCache | None = None
        if cache:
            self.cache_images()

    def __len__(self) -> int:
        return len(self.file_names)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose augmentation items get. Call before iterating the loader."""
        self._epoch.fill_(epoch)

    def _cache_shapes(self) -> list[tuple[int, int]]:
        """(h, w) of every image once resized, from the records' sizes (nothing decoded)."""
        return [resized_hw(hw, self.img_size) for hw in self.original_hw.tolist()]

    def cache_bytes(self) -> int:
        """Bytes `cache_images` will take."""
        return sum(h * w for h, w in self._cache_shapes())

    def cache_images(self, progress: bool = True, process: Process = SINGLE_PROCESS) -> float:
        """Decode and resize (long side = img_size) every image into an `ImageCache`. Returns its size in MB.

        Call in the main process before the loader starts its workers: they then map the same shared
        memory (the cache costs its size once, whatever the number of workers). Under torchrun every
        rank calls it: the ranks of a node make one cache, each decoding its share of the images.
        """
        cache = fill_cache(self._cache_shapes(), self._decode_resized, process, progress)
        self._cache = cache
        megabytes = cache.nbytes / 2**20
        if progress:
            log(f"image cache: {len(self)} images, {megabytes:.1f} MB")
        return megabytes

    def class_counts(self, num_classes: int) -> np.ndarray:
        """Objects of each class id over all records: int64 [num_classes]."""
        return np.bincount(self._classes, minlength=num_classes)

    def boxes_wh(self) -> np.ndarray:
        """Widths and heights of all boxes scaled like their images to img_size: float32 [M, 2] pixels."""
        ratios = self.img_size / self.original_hw.max(axis=1)
        per_box = np.repeat(ratios, np.diff(self._offsets))
        return ((self._boxes[:, 2:] - self._boxes[:, :2]) * per_box[:, None]).astype(np.float32)

    def __getitem__(self, index: int):
        index = range(len(self))[index]  # negative indices and bounds as for a list
        if self.augment:
            rng = np.random.default_rng([self.seed, int(self._epoch), index])
            image, boxes, classes = self._augmented(index, rng)
        else:
            image, boxes, classes = self._letterboxed(index)
        tensor = torch.from_numpy(image)[None]
        if self.in_channels == 3:
            tensor = tensor.expand(3, -1, -1)  # a view; collate's stack makes the real copy
        return tensor, _targets(boxes, classes), self._meta(index)

    def _hw(self, index: int) -> tuple[int, int]:
        h, w = self.original_hw[index]
        return int(h), int(w)

    def _meta(self, index: int) -> dict:
        hw = self._hw(index)
        geometry = letterbox_geometry(hw, self.img_size)
        return {"file_name": self.file_names[index], "original_hw": hw, "ratio": geometry.ratio, "pad": geometry.pad}

    def _objects(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        start, stop = self._offsets[index], self._offsets[index + 1]
        return self._boxes[start:stop], self._classes[start:stop]

    def _decode_resized(self, index: int) -> np.ndarray:
        path = self.image_root / self.file_names[index]
        image = read_gray(path)
        expected = self._hw(index)
        if image.shape != expected:
            raise DrowsyError(
                f"{path}: record {index}: field 'width'/'height': the manifest says "
                f"{expected[1]}x{expected[0]}, the image is {image.shape[1]}x{image.shape[0]}"
            )
        return resize_long_side(image, self.img_size)

    def _image(self, index: int) -> np.ndarray:
        """uint8 [h, w] with long side img_size; may be the cached array itself: do not modify."""
        return self._cache.slot(index) if self._cache is not None else self._decode_resized(index)

    def _resized(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`_image`, its boxes [n, 4] float32 xyxy in its pixels, and classes [n]."""
        boxes, classes = self._objects(index)
        return self._image(index), boxes * np.float32(self.img_size / max(self._hw(index))), classes

    def _letterboxed(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image = self._image(index)
        geometry = letterbox_geometry(self._hw(index), self.img_size)
        boxes, classes = self._objects(index)
        return pad_to(image, (self.img_size, self.img_size), geometry.pad), letterbox_boxes(boxes, geometry), classes

    def _paste_piece(self, row: int) -> tuple[np.ndarray, np.ndarray, str, float | None]:
        """Object `row` of the flat arrays as copy-paste takes it: its crop with local background from its image
        at training scale, its box in the crop, its class name, and its height over the height of the face it
        belongs to (the face whose centre is nearest; None in an image without a face)."""
        index = int(np.searchsorted(self._offsets, row, side="right") - 1)
        image, boxes, classes = self._resized(index)
        box = boxes[row - self._offsets[index]]
        crop, box_in_crop = crop_with_background(image, box)
        faces = boxes[classes == CLASS_IDS["face"]]
        relative = None
        if len(faces):
            centre = (box[:2] + box[2:]) / 2
            face_centres = (faces[:, :2] + faces[:, 2:]) / 2
            face = faces[np.argmin(np.abs(face_centres - centre).sum(axis=1))]
            relative = float((box[3] - box[1]) / max(face[3] - face[1], 1e-6))
        return crop, box_in_crop, CLASSES[int(self._classes[row])], relative

    def _augmented(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hyp = self.hyp
        if rng.random() < hyp["mosaic"]:
            parts = [self._resized(int(i)) for i in (index, *rng.integers(0, len(self), size=3))]
            image, boxes, classes = mosaic4(*zip(*parts), size=self.img_size, rng=rng)
            border = self.img_size // 2
        else:
            image, boxes, classes = self._letterboxed(index)
            border = 0
        if hyp["copy_paste"] and len(self._paste_rows) and rng.random() < hyp["copy_paste"]:
            piece = self._paste_piece(int(self._paste_rows[rng.integers(len(self._paste_rows))]))
            image, boxes, classes = copy_paste(image, boxes, classes, [piece], rng, CLASS_IDS)
        image, boxes, classes = random_affine(
            image,
            boxes,
            classes,
            rng,
            degrees=hyp["degrees"],
            translate=hyp["translate"],
            scale=hyp["scale"],
            shear=hyp["shear"],
            perspective=hyp["perspective"],
            border=border,
        )
        image = augment_value(image, hyp["hsv_v"], rng)
        if rng.random() < hyp["fliplr"]:
            image, boxes = flip_lr(image, boxes)
        return image, boxes, classes


def collate(batch: list[tuple]) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """Items -> (images uint8 [B, C, S, S], targets float32 [M, 6] = (batch_index, class_id, cx, cy,
    w, h) pixels, metas list of B dicts)."""
    images, targets, metas = zip(*batch)
    indexed = [torch.cat([torch.full((len(item), 1), float(i)), item], dim=1) for i, item in enumerate(targets)]
    return torch.stack(images), torch.cat(indexed), list(metas)


class EpochPartsSampler(Sampler[int]):
    """Indices for one "epoch part" of the recipe, split across DDP ranks.

    Each epoch draws ceil(dataset_len / epoch_parts) indices with replacement, as the winning recipe
    did (epoch_parts = 1: a plain shuffled pass without replacement), from a torch.Generator seeded
    by (seed, epoch). The draw is padded by wrapping around so it divides evenly, and rank r takes
    the r-th contiguous slice: ranks get disjoint slices of equal length (DDP needs equal step counts).
    """

    def __init__(self, dataset_len: int, epoch_parts: int = 1, seed: int = 0, rank: int = 0, world_size: int = 1):
        if dataset_len < 1 or epoch_parts < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need dataset_len >= 1, epoch_parts >= 1, 0 <= rank < world_size; got {dataset_len}, "
                f"{epoch_parts}, {rank}, {world_size}"
            )
        self.dataset_len = dataset_len
        self.epoch_parts = epoch_parts
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.per_epoch = math.ceil(dataset_len / epoch_parts)
        self.per_rank = math.ceil(self.per_epoch / world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self):
        generator = torch.Generator().manual_seed(_mixed_seed(self.seed, self.epoch))
        if self.epoch_parts == 1:
            drawn = torch.randperm(self.dataset_len, generator=generator)
        else:
            drawn = torch.randint(self.dataset_len, (self.per_epoch,), generator=generator)
        padded = drawn[torch.arange(self.per_rank * self.world_size) % len(drawn)]
        return iter(padded[self.rank * self.per_rank : (self.rank + 1) * self.per_rank].tolist())


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: seed numpy's and Python's global generators from the worker's torch
    seed, for any code that still uses them (this dataset does not: it seeds per item)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _init_worker(worker_id: int) -> None:
    seed_worker(worker_id)
    # One cv2 thread per worker: the workers are the parallelism, and more threads only contend.
    cv2.setNumThreads(1)


def build_loader(
    dataset: Dataset,
    batch_size: int,
    workers: int,
    sampler: Sampler | None = None,
    pin_memory: bool = False,
    persistent: bool = True,
) -> DataLoader:
    """A DataLoader with `collate`, seeded (`seed_worker`) single-threaded workers, and its own generator.

    Workers start from a fork server, not by forking this process: a process forked while OpenCV's or
    OpenMP's thread pool holds a lock hangs (seen here: cv2.setNumThreads blocking in a new worker). The
    dataset is pickled to each worker when it starts; its image cache and epoch counter are in shared
    memory, so they are mapped, not copied, and set_epoch still reaches the workers. `persistent`
    workers live across epochs (training); the others exist only while the loader is iterated
    (validation, a few seconds every few epochs: their memory is not held in between).
    """
    context = "forkserver" if workers > 0 else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        worker_init_fn=_init_worker,
        persistent_workers=persistent and workers > 0,
        generator=torch.Generator().manual_seed(0),  # order comes from the sampler; this seeds the workers
        multiprocessing_context=context,
    )
