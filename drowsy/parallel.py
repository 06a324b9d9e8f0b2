"""Work over chunks in worker processes, for the writers that render or re-encode thousands of images
(`drowsy.synth`, `drowsy.data.resize`).

Workers are spawned, not forked: a fork copies OpenCV's thread pool mid-use and can hang the child.
Each runs one OpenCV thread; the parallelism is theirs.
"""

import contextlib
import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import cv2

from drowsy.progress import progress as progress_bar


def map_chunks(work, tasks: list[tuple], total: int, workers: int, progress: bool, desc: str) -> list:
    """`work(*task)` for every task, each returning a list, in `workers` processes (here when 1, or for a
    single task: starting processes would cost more); the lists joined in task order. A progress bar
    counts their items, `total` in all."""
    pool = (
        ProcessPoolExecutor(
            min(workers, len(tasks)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=cv2.setNumThreads,
            initargs=(1,),
        )
        if workers > 1 and len(tasks) > 1
        else None
    )
    results: list = []
    with pool or contextlib.nullcontext(), progress_bar(total=total, desc=desc, unit="img", enabled=progress) as bar:
        for chunk in (pool.map if pool else map)(functools.partial(_call, work), tasks):
            results.extend(chunk)
            bar.update(len(chunk))
    return results


def _call(work, task: tuple) -> list:
    return work(*task)
