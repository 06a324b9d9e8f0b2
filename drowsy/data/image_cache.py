"""The image cache: decoded, resized images in one shared-memory buffer that every loader worker and
every rank of a node maps instead of copying; and the shared memory it and the loader's batches need.

`cache_if_it_fits` decides against a budget and the free shared memory, `fill_cache` makes and fills
one (each rank of a node its share), `check_shared_memory` stops a run whose loader workers would die
of a bus error for want of /dev/shm.
"""

import mmap
import os
import tempfile
import weakref
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import reduction
from multiprocessing.context import get_spawning_popen
from pathlib import Path

import numpy as np

from drowsy.distributed import SINGLE_PROCESS, Process, all_agree, node_shared_file, together
from drowsy.errors import DrowsyError
from drowsy.progress import log
from drowsy.progress import progress as progress_bar

SHARED_MEMORY = Path("/dev/shm")  # the image cache and the workers' batches (Docker: 64 MB unless --shm-size)


class ImageCache:
    """Decoded, resized images of one dataset in a single shared-memory buffer, one slot per image.

    The buffer is a file in shared memory (`distributed.node_shared_file`: unlinked as soon as it is open,
    so nothing outlives the processes using it), mapped by every process that uses it: a loader worker
    receives its descriptor when it starts (`__reduce__`, over the same socket torch passes shared tensors
    through) and maps the same pages, and under torchrun so does every rank of the node. The cache costs
    its size once for the whole node, whatever the number of workers and ranks; its pages count once in
    the tree's PSS.
    """

    def __init__(self, shapes: list[tuple[int, int]], fd: int):
        """shapes: (h, w) of each image; fd: a file of at least `nbytes` bytes (kept open, closed with the cache)."""
        self.shapes = np.asarray(shapes, np.int64).reshape(-1, 2)  # [n, 2] (h, w)
        self.offsets = np.concatenate([[0], np.cumsum(self.shapes[:, 0] * self.shapes[:, 1])])
        self._fd = fd
        weakref.finalize(self, os.close, fd)
        self.buffer = np.frombuffer(mmap.mmap(fd, max(self.nbytes, 1)), np.uint8, count=self.nbytes)

    @property
    def nbytes(self) -> int:
        return int(self.offsets[-1])

    def slot(self, index: int) -> np.ndarray:
        """uint8 [h, w]: the image's place in the buffer (a view: writing it fills the cache)."""
        return self.buffer[self.offsets[index] : self.offsets[index + 1]].reshape(self.shapes[index])

    def __reduce__(self):
        # only to a process being started (a loader worker): elsewhere DupFd would keep a copy of the
        # descriptor, and with it the whole cache, until someone unpickled it
        if get_spawning_popen() is None:
            raise TypeError("an ImageCache is handed only to processes as they start (loader workers)")
        return _reopened_cache, (self.shapes, reduction.DupFd(self._fd))


def _reopened_cache(shapes: np.ndarray, fd) -> ImageCache:
    """The cache in the process that unpickled it: the same file, mapped again."""
    return ImageCache(shapes, fd.detach())


def shared_memory_free() -> int | None:
    """Bytes free for shared memory (`SHARED_MEMORY`), None where there is no such folder."""
    if not SHARED_MEMORY.is_dir():
        return None
    stats = os.statvfs(SHARED_MEMORY)
    return stats.f_bavail * stats.f_frsize


PREFETCH_FACTOR = 2  # batches each loader worker keeps ready (DataLoader's default)


def check_shared_memory(workers: int, batch: int, img_size: int, channels: int, ranks: int = 1) -> None:
    """Loader workers hand their batches over in shared memory: with too little of it (Docker's default
    64 MB /dev/shm) the first batch kills a worker with a bus error. Stop before, with one line. `ranks`:
    the training processes of this node, each with its own workers, all in the node's one /dev/shm."""
    need = ranks * workers * PREFETCH_FACTOR * batch * channels * img_size * img_size  # uint8 images
    free = shared_memory_free()
    if workers > 0 and free is not None and free < need:
        whose = f"{ranks} ranks x {workers}" if ranks > 1 else f"{workers}"
        raise DrowsyError(
            f"workers: {whose} loader workers need about {need / 2**20:,.0f} MB of shared memory for "
            f"their batches ({batch} x {img_size} px, {PREFETCH_FACTOR} ready each), {SHARED_MEMORY} "
            f"has {free / 2**20:,.0f} MB free: in Docker run with --shm-size=16g or --ipc=host, "
            "or set workers lower"
        )


def cache_if_it_fits(datasets: list, budget_gb: float, process: Process = SINGLE_PROCESS) -> bool:
    """Cache every dataset's images (`drowsy.data.dataset.DetectionDataset.cache_images`) when together they fit in
    `budget_gb` and in the free shared memory; else leave them streamed from disk. Says which, in one
    line, with the sizes. Under torchrun every rank calls it: the node's ranks make one cache (the
    budget is the node's), and all ranks take the same decision. Returns whether they were cached."""
    need = sum(d.cache_bytes() for d in datasets)
    free = shared_memory_free()
    sizes = f"{need / 2**30:.2f} GB for {sum(len(d) for d in datasets):,} images, budget {budget_gb:g} GB (cache_gb)"
    if not hasattr(reduction, "DupFd"):  # Windows: no descriptor passing to the workers
        verdict = f"image cache: {sizes}: needs POSIX shared files (not on Windows), images are streamed from disk"
    elif need > budget_gb * 2**30:
        verdict = f"image cache: {sizes}: too large, images are streamed from disk"
    elif free is not None and need > free:
        verdict = (
            f"image cache: {sizes}, but only {free / 2**30:.2f} GB free in {SHARED_MEMORY}: images are "
            "streamed from disk (in Docker, give the container more: --shm-size=16g or --ipc=host)"
        )
    else:
        verdict = ""
    if not all_agree(process, not verdict):
        log(
            verdict
            or f"image cache: {sizes}: another rank cannot make it (its log says why), images are streamed from disk"
        )
        return False
    for dataset in datasets:
        dataset.cache_images(progress=False, process=process)
    shared_by = f" and the {process.local_world_size} ranks of this node" if process.local_world_size > 1 else ""
    log(f"image cache: {sizes}: in shared memory, one copy for every loader worker{shared_by}")
    return True


def fill_cache(
    shapes: list[tuple[int, int]], decode, process: Process = SINGLE_PROCESS, progress: bool = True
) -> ImageCache:
    """A new cache of images with `shapes` ((h, w) each), slot i filled with `decode(i)` (uint8 [h, w]).

    Under torchrun every rank of a node calls it with the same shapes: they make one cache, each rank
    decoding every `local_world_size`-th image, and all wait until every share is in (or all stop with
    one line each: a bad image is one rank's).
    """
    folder = SHARED_MEMORY if SHARED_MEMORY.is_dir() else Path(tempfile.gettempdir())
    size = max(int(sum(h * w for h, w in shapes)), 1)  # mmap maps at least a byte
    cache = ImageCache(shapes, node_shared_file(process, folder, size))

    def fill(index: int) -> None:
        cache.slot(index)[:] = decode(index)

    def fill_share() -> None:
        share = range(process.local_rank, len(shapes), process.local_world_size)
        threads = min(8, os.cpu_count() or 1)  # cv2 releases the GIL while decoding and resizing
        with ThreadPoolExecutor(threads) as pool:
            for _ in progress_bar(
                pool.map(fill, share), total=len(share), desc="cache images", unit="img", enabled=progress
            ):
                pass

    together(process, fill_share)
    return cache
