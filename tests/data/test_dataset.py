"""The detection dataset: letterboxed and augmented items, the epoch-parts sampler, the loader and its
workers, and the image cache (one shared-memory copy, made only when it fits)."""

import pickle

import cv2
import numpy as np
import pytest
import torch

from drowsy import memory
from drowsy.data.dataset import DetectionDataset, EpochPartsSampler, build_loader, collate
from drowsy.data.geometry import Letterbox
from drowsy.data.image_cache import cache_if_it_fits, check_shared_memory
from drowsy.errors import DrowsyError
from drowsy.infer.postprocess import to_candidates, xywh_to_xyxy

SIZE = 64
HYP = {"mosaic": 1.0, "translate": 0.1, "scale": 0.5, "hsv_v": 0.4, "fliplr": 0.5}
OBJECT_SHADE = 250  # objects are the only pixels this bright; the background is 40


def write_image(path, image):
    """cv2.imwrite cannot write non-ASCII paths on every platform; encode + tofile can."""
    ok, encoded = cv2.imencode(path.suffix, image)
    assert ok
    encoded.tofile(path)


@pytest.fixture
def records(tmp_path):
    """Eight lossless images 80x48 (non-ASCII names), each with one or two bright boxes."""
    rng = np.random.default_rng(0)
    records = []
    for i in range(8):
        image = np.full((48, 80), 40, np.uint8)
        objects = []
        for name in ("face", "phone")[: 1 + i % 2]:
            x, y = int(rng.integers(0, 60)), int(rng.integers(0, 30))
            image[y : y + 16, x : x + 18] = OBJECT_SHADE
            objects.append({"class": name, "position": [x, y, x + 18, y + 16]})
        file_name = f"운전자_{i}.png"
        write_image(tmp_path / file_name, image)
        records.append({"file_name": file_name, "width": 80, "height": 48, "objects": objects})
    return records


def batches(loader, epoch):
    loader.dataset.set_epoch(epoch)
    loader.sampler.set_epoch(epoch)
    return list(loader)


def assert_same_batches(first, second):
    assert len(first) == len(second)
    for (images_a, targets_a, metas_a), (images_b, targets_b, metas_b) in zip(first, second):
        torch.testing.assert_close(images_a, images_b, rtol=0, atol=0)
        torch.testing.assert_close(targets_a, targets_b, rtol=0, atol=0)
        assert metas_a == metas_b


def test_validation_item_is_the_letterboxed_image_with_its_boxes(tmp_path, records):
    dataset = DetectionDataset(tmp_path, records, SIZE)
    image, targets, meta = dataset[1]
    assert image.shape == (1, SIZE, SIZE) and image.dtype == torch.uint8
    assert meta == {"file_name": "운전자_1.png", "original_hw": (48, 80), "ratio": 0.8, "pad": (0, 13)}
    assert targets[:, 0].tolist() == [4.0, 5.0]  # face, phone
    decoded = torch.cat((targets[:, 1:], torch.ones(len(targets), 2)), dim=1)[None]  # (cx, cy, w, h, obj, cls)
    [candidates] = to_candidates(decoded, [Letterbox(meta["ratio"], meta["pad"])], [meta["original_hw"]], conf=0.5)
    original = xywh_to_xyxy(candidates[:, :4])
    expected = [obj["position"] for obj in records[1]["objects"]]
    torch.testing.assert_close(original, torch.tensor(expected, dtype=torch.float32))


def test_in_channels_3_replicates_gray(tmp_path, records):
    gray = DetectionDataset(tmp_path, records, SIZE, HYP, augment=True)
    color = DetectionDataset(tmp_path, records, SIZE, HYP, augment=True, in_channels=3)
    gray_image, gray_targets, _ = gray[2]
    color_image, color_targets, _ = color[2]
    assert gray_image.shape == (1, SIZE, SIZE) and color_image.shape == (3, SIZE, SIZE)
    for channel in color_image:
        torch.testing.assert_close(channel, gray_image[0], rtol=0, atol=0)
    torch.testing.assert_close(color_targets, gray_targets)
    images, _, _ = collate([color[0], color[1]])
    assert images.shape == (2, 3, SIZE, SIZE) and images.is_contiguous()


def test_augmented_boxes_cover_their_objects(tmp_path, records):
    dataset = DetectionDataset(tmp_path, records, SIZE, HYP, augment=True)
    seen = 0
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            image, targets, _ = dataset[index]
            assert image.shape == (1, SIZE, SIZE)
            for _, cx, cy, w, h in targets.tolist():
                # the box centre is on its object (bright, also after a brightness gain of 0.6)
                assert image[0, int(cy), int(cx)] > 140
                low, high = -1e-4, SIZE + 1e-4  # float32 rounding of the xyxy -> cxcywh conversion
                assert low <= cx - w / 2 and cx + w / 2 <= high and low <= cy - h / 2 and cy + h / 2 <= high
                seen += 1
    assert seen > 20


def test_item_depends_only_on_seed_epoch_and_index(tmp_path, records):
    dataset = DetectionDataset(tmp_path, records, SIZE, HYP, augment=True, seed=3)
    twin = DetectionDataset(tmp_path, records, SIZE, HYP, augment=True, seed=3)
    other_seed = DetectionDataset(tmp_path, records, SIZE, HYP, augment=True, seed=4)
    torch.testing.assert_close(dataset[5][0], twin[5][0], rtol=0, atol=0)
    assert not torch.equal(dataset[5][0], other_seed[5][0])
    epoch_0 = [dataset[i][0] for i in range(len(dataset))]
    dataset.set_epoch(1)
    assert any(not torch.equal(a, dataset[i][0]) for i, a in enumerate(epoch_0))
    dataset.set_epoch(0)
    assert all(torch.equal(a, dataset[i][0]) for i, a in enumerate(epoch_0))


def test_loader_batches_do_not_depend_on_worker_count(tmp_path, records):
    dataset = DetectionDataset(tmp_path, records, SIZE, HYP, augment=True)
    in_main = build_loader(dataset, 3, workers=0, sampler=EpochPartsSampler(len(dataset), 2))
    in_workers = build_loader(dataset, 3, workers=2, sampler=EpochPartsSampler(len(dataset), 2))
    # epoch 1 after epoch 0: set_epoch must reach the persistent workers
    for epoch in (0, 1):
        assert_same_batches(batches(in_main, epoch), batches(in_workers, epoch))


def test_cache_gives_the_same_items(tmp_path, records):
    plain = DetectionDataset(tmp_path, records, SIZE, HYP, augment=True)
    cached = DetectionDataset(tmp_path, records, SIZE, HYP, augment=True)
    megabytes = cached.cache_images(progress=False)
    assert megabytes == pytest.approx(len(records) * 64 * 38 / 2**20)
    for index in range(len(records)):
        torch.testing.assert_close(plain[index][0], cached[index][0], rtol=0, atol=0)
        torch.testing.assert_close(plain[index][1], cached[index][1])


def test_the_image_cache_goes_to_starting_processes_only(tmp_path, records):
    cached = DetectionDataset(tmp_path, records, SIZE)
    cached.cache_images(progress=False)
    with pytest.raises(TypeError, match="only to processes as they start"):
        pickle.dumps(cached)  # a copy of its descriptor would hold the whole cache until unpickled
    pickle.dumps(DetectionDataset(tmp_path, records, SIZE))  # streamed: nothing to hold


def test_boxes_wh_scales_boxes_to_img_size(tmp_path, records):
    wh = DetectionDataset(tmp_path, records, SIZE).boxes_wh()
    assert wh.shape == (12, 2) and wh.dtype == np.float32
    np.testing.assert_allclose(wh, np.tile([[18 * 0.8, 16 * 0.8]], (12, 1)))


def test_collate_numbers_targets_by_image():
    def item(n):
        targets = torch.arange(n * 5, dtype=torch.float32).reshape(n, 5)
        return torch.zeros(1, 8, 8, dtype=torch.uint8), targets, {"n": n}

    images, targets, metas = collate([item(2), item(0), item(3)])
    assert images.shape == (3, 1, 8, 8)
    assert targets.shape == (5, 6)
    assert targets[:, 0].tolist() == [0, 0, 2, 2, 2]
    torch.testing.assert_close(targets[2:, 1:], item(3)[1])
    assert [meta["n"] for meta in metas] == [2, 0, 3]


def test_corrupt_image_raises_an_error_naming_the_file(tmp_path, records):
    (tmp_path / records[3]["file_name"]).write_bytes(b"not an image at all")
    dataset = DetectionDataset(tmp_path, records, SIZE, HYP, augment=True)
    with pytest.raises(DrowsyError, match="운전자_3.png"):
        DetectionDataset(tmp_path, records, SIZE)[3]
    with pytest.raises(DrowsyError, match="운전자_3.png"):
        dataset.cache_images(progress=False)


def test_missing_image_and_wrong_size_are_errors(tmp_path, records):
    (tmp_path / records[0]["file_name"]).unlink()
    records[1]["width"] = 81
    dataset = DetectionDataset(tmp_path, records, SIZE)
    with pytest.raises(DrowsyError, match="운전자_0.png"):
        dataset[0]
    with pytest.raises(DrowsyError, match="운전자_1.png.*'width'"):
        dataset[1]


def test_malformed_records_and_unsupported_hyp_are_errors(tmp_path, records):
    records[2]["objects"][0]["class"] = "smoking"
    with pytest.raises(DrowsyError, match=r"record 2 \(운전자_2.png\): field 'class'"):
        DetectionDataset(tmp_path, records, SIZE)
    with pytest.raises(DrowsyError, match="field 'mixup'"):
        DetectionDataset(tmp_path, records[:2], SIZE, {**HYP, "mixup": 0.5}, augment=True)


def test_sampler_draws_a_part_with_replacement_per_epoch():
    sampler = EpochPartsSampler(100, epoch_parts=4, seed=1)
    epoch_0 = list(sampler)
    assert len(sampler) == len(epoch_0) == 25
    assert all(0 <= i < 100 for i in epoch_0)
    assert epoch_0 == list(EpochPartsSampler(100, epoch_parts=4, seed=1))
    sampler.set_epoch(1)
    assert list(sampler) != epoch_0
    # with replacement: over many draws some index repeats within an epoch
    big = list(EpochPartsSampler(1000, epoch_parts=2, seed=0))
    assert len(big) == 500 and len(set(big)) < 500


def test_sampler_with_one_part_is_a_permutation():
    sampler = EpochPartsSampler(50, seed=2)
    orders = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
        assert sorted(orders[-1]) == list(range(50))
    assert orders[0] != orders[1]


def test_sampler_splits_evenly_and_disjointly_across_ranks():
    ranks = [EpochPartsSampler(50, seed=0, rank=r, world_size=3) for r in range(3)]
    parts = [list(sampler) for sampler in ranks]
    assert [len(part) for part in parts] == [17, 17, 17] == [len(sampler) for sampler in ranks]
    joined = parts[0] + parts[1] + parts[2]
    assert set(joined) == set(range(50))  # every index once, plus one wrapped-around pad
    assert joined[:50] == list(EpochPartsSampler(50, seed=0))
    parted = [list(EpochPartsSampler(101, epoch_parts=10, seed=0, rank=r, world_size=4)) for r in range(4)]
    assert [len(part) for part in parted] == [3, 3, 3, 3]
    assert sum(parted, []) == (list(EpochPartsSampler(101, epoch_parts=10, seed=0)) * 2)[:12]


@pytest.mark.skipif(not memory.available(), reason="PSS needs /proc/PID/smaps_rollup (Linux)")
def test_the_image_cache_is_one_copy_for_every_loader_worker(tmp_path):
    # 64 images of 800x1280 at img_size 1280 (no resize): a 64 MB cache; a copy per worker, as the
    # cache pickled with the dataset used to be, would add 128 MB more with 2 workers
    image = np.tile(np.arange(800, dtype=np.uint8), (1280, 1))
    write_image(tmp_path / "frame.png", image)
    records = [{"file_name": "frame.png", "width": 800, "height": 1280, "objects": []} for _ in range(64)]

    def tree_pss_while_loading(cache: bool) -> int:
        dataset = DetectionDataset(tmp_path, records, 1280, cache=cache)
        loader = build_loader(dataset, batch_size=2, workers=2)
        batches = iter(loader)
        for _ in range(8):  # every worker has loaded (and touched its share of) the cache
            next(batches)
        pss = memory.tree_pss()
        del batches, loader
        return pss

    cache_bytes = DetectionDataset(tmp_path, records, 1280).cache_bytes()
    assert cache_bytes == 64 * 800 * 1280
    extra = tree_pss_while_loading(cache=True) - tree_pss_while_loading(cache=False)
    assert extra < 1.5 * cache_bytes, (extra / 2**20, cache_bytes / 2**20)


def test_a_cache_over_budget_or_over_shared_memory_is_not_made(tmp_path, records, monkeypatch, capsys):
    datasets = [DetectionDataset(tmp_path, records, SIZE), DetectionDataset(tmp_path, records[:2], SIZE)]
    need = sum(d.cache_bytes() for d in datasets)
    assert need == 10 * 64 * 38  # 80x48 -> 64x38 (long side 64)
    assert not cache_if_it_fits(datasets, budget_gb=(need - 1) / 2**30)
    assert "too large, images are streamed from disk" in capsys.readouterr().out
    monkeypatch.setattr("drowsy.data.image_cache.shared_memory_free", lambda: need - 1)
    assert not cache_if_it_fits(datasets, budget_gb=1.0)
    assert "--shm-size" in capsys.readouterr().out and all(d._cache is None for d in datasets)
    monkeypatch.setattr("drowsy.data.image_cache.shared_memory_free", lambda: need)
    assert cache_if_it_fits(datasets, budget_gb=need / 2**30)
    assert all(d._cache.nbytes == d.cache_bytes() for d in datasets)
    torch.testing.assert_close(datasets[1][1][0], DetectionDataset(tmp_path, records, SIZE)[1][0], rtol=0, atol=0)


def test_too_little_shared_memory_for_the_workers_batches_is_one_line(monkeypatch):
    monkeypatch.setattr("drowsy.data.image_cache.shared_memory_free", lambda: 64 * 2**20)  # Docker's default /dev/shm
    with pytest.raises(
        DrowsyError,
        match=r"^workers: 8 loader workers need about 800 MB .* --shm-size=16g or "
        r"--ipc=host, or set workers lower$",
    ):
        check_shared_memory(workers=8, batch=32, img_size=1280, channels=1)
    check_shared_memory(workers=0, batch=32, img_size=1280, channels=1)  # no workers, no shared batches
    check_shared_memory(workers=1, batch=16, img_size=1280, channels=1)  # 50 MB fit
    with pytest.raises(DrowsyError, match=r"^workers: 8 ranks x 1 loader workers need about 400 MB "):
        check_shared_memory(workers=1, batch=16, img_size=1280, channels=1, ranks=8)  # one /dev/shm per node
