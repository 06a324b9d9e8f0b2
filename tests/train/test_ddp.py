"""Multi-process training: 2 CPU processes (gloo) run the real `drowsy train` command under torchrun.

Rank 0 alone writes checkpoints, so a small script (written into tmp_path, not part of the package)
runs `drowsy.cli.main(["train", ...])` with three engine names wrapped to record what each rank did,
then saves that rank's weights, the indices its sampler gave and the checkpoints it wrote.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from drowsy.data.dataset import EpochPartsSampler

WORLD_SIZE = 2
EPOCHS, RESUMED_EPOCHS = 2, 3
# 32 training images / 4 parts = 8 per epoch: 4 per rank, 2 batches of 2; one optimizer step per batch.
TRAIN_OPTIONS = dict(
    model="yolov5n",
    img_size=64,
    batch=2,
    nominal_batch=4,
    epoch_parts=4,
    device="cpu",
    workers=0,
    cache="true",
    val_every=100,
    val_images=2,
    seed=5,
)

RANK_SCRIPT = textwrap.dedent('''
    """Run `drowsy train` on this rank, then save what it did to DUMP_DIR/rank<RANK>.pt."""
    import copy
    import os
    import sys
    from pathlib import Path

    import torch

    from drowsy import cli
    from drowsy.train import engine
    from drowsy.train import run as train_run

    dump_dir, argv = Path(sys.argv[1]), sys.argv[2:]
    record = {"sampled": {}, "sampler_rank": [], "saved": []}


    class RecordingEMA(train_run.ModelEMA):
        """Created once per run, after autoanchor and before the first step: keeps the model."""

        def __init__(self, model, updates=0):
            super().__init__(model, updates)
            self.model = model
            record["initial"] = copy.deepcopy(model.state_dict())
            record["ema_instance"] = self


    class RecordingSampler(train_run.EpochPartsSampler):
        def __iter__(self):
            indices = list(super().__iter__())
            record["sampled"][self.epoch] = indices
            record["sampler_rank"].append((self.rank, self.world_size))
            return iter(indices)


    def recording_save(checkpoint, path):
        record["saved"].append(Path(path).name)
        save(checkpoint, path)


    save = engine.save_checkpoint
    train_run.ModelEMA, train_run.EpochPartsSampler = RecordingEMA, RecordingSampler
    engine.save_checkpoint = recording_save
    code = cli.main(["train", *argv, "--quiet"])
    ema = record.pop("ema_instance")
    record.update(model=ema.model.state_dict(), ema=ema.ema.state_dict(), code=code)
    torch.save(record, dump_dir / f"rank{os.environ['RANK']}.pt")
    sys.exit(code)
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(script, dump_dir, options: dict) -> list[dict]:
    """Run the rank script on WORLD_SIZE CPU processes; returns each rank's record, rank order."""
    dump_dir.mkdir()
    argv = [arg for key, value in options.items() for arg in (f"--{key.replace('_', '-')}", str(value))]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={WORLD_SIZE}",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        str(script),
        str(dump_dir),
        *argv,
    ]
    # one thread per rank: two ranks already fill a small machine
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, f"torchrun failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return [torch.load(dump_dir / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]


@pytest.fixture(scope="module")
def ddp_runs(tiny_dataset, tmp_path_factory):
    """A 2-epoch DDP run, then a resumed DDP run to 3 epochs in the same run_dir."""
    root = tmp_path_factory.mktemp("ddp")
    script = root / "rank_train.py"
    script.write_text(RANK_SCRIPT)
    options = dict(
        TRAIN_OPTIONS,
        train_manifest=tiny_dataset / "train.json",
        val_manifest=tiny_dataset / "val.json",
        run_dir=root / "run",
    )
    first = torchrun(script, root / "first", dict(options, epochs=EPOCHS))
    metrics_after_first = (root / "run" / "metrics.jsonl").read_text()
    resumed = torchrun(script, root / "resumed", dict(options, epochs=RESUMED_EPOCHS, resume="true"))
    train_images = len(json.loads((tiny_dataset / "train.json").read_text())["annotations"])
    return {
        "run_dir": root / "run",
        "first": first,
        "resumed": resumed,
        "metrics_after_first": metrics_after_first,
        "train_images": train_images,
    }


def parameter_names(state: dict) -> list[str]:
    """Entries that are parameters: BatchNorm running statistics are buffers, updated by each rank's
    own batch in its forward pass (DDP broadcasts rank 0's before each forward), so they may differ."""
    return [
        k
        for k in state
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked")) and k not in ("anchors", "strides")
    ]


def assert_ranks_identical(records: list[dict], key: str) -> None:
    names = parameter_names(records[0][key])
    assert names
    for name in names:
        assert torch.equal(records[0][key][name], records[1][key][name]), f"{key}.{name} differs between ranks"
    for name in ("anchors", "strides"):
        assert torch.equal(records[0][key][name], records[1][key][name])


@pytest.mark.parametrize("epoch_parts", [1, 3])
def test_sampler_ranks_take_disjoint_slices_of_one_draw(epoch_parts):
    whole = EpochPartsSampler(25, epoch_parts, seed=7)
    whole.set_epoch(2)
    drawn = list(whole)
    slices = []
    for rank in range(WORLD_SIZE):
        sampler = EpochPartsSampler(25, epoch_parts, seed=7, rank=rank, world_size=WORLD_SIZE)
        sampler.set_epoch(2)
        slices.append(list(sampler))
    assert len(slices[0]) == len(slices[1])  # DDP needs equal step counts on every rank
    joined = slices[0] + slices[1]
    assert joined[: len(drawn)] == drawn  # together exactly the one-process draw, in order ...
    assert joined[len(drawn) :] == drawn[: len(joined) - len(drawn)]  # ... padded by wrapping around
    if epoch_parts == 1:  # a permutation: every image once, on one rank only (but for the padding)
        assert set(joined) == set(range(25)) and len(set(slices[0]) & set(slices[1])) == len(joined) - 25


def test_ranks_hold_identical_weights_after_training(ddp_runs):
    first = ddp_runs["first"]
    assert [r["code"] for r in first] == [0, 0]
    assert_ranks_identical(first, "initial")  # same seed, same autoanchor result
    assert_ranks_identical(first, "model")
    assert_ranks_identical(first, "ema")
    names = parameter_names(first[0]["model"])
    unchanged = [k for k in names if torch.equal(first[0]["model"][k], first[0]["initial"][k])]
    assert unchanged == []  # every parameter was trained


def test_ranks_train_on_disjoint_slices_of_each_epoch(ddp_runs):
    first = ddp_runs["first"]
    assert [set(r["sampler_rank"]) for r in first] == [{(0, WORLD_SIZE)}, {(1, WORLD_SIZE)}]
    for epoch in range(EPOCHS):
        whole = EpochPartsSampler(ddp_runs["train_images"], TRAIN_OPTIONS["epoch_parts"], seed=TRAIN_OPTIONS["seed"])
        whole.set_epoch(epoch)
        assert first[0]["sampled"][epoch] + first[1]["sampled"][epoch] == list(whole)
        assert len(first[0]["sampled"][epoch]) == 4


def test_only_rank_zero_writes_checkpoints_and_metrics(ddp_runs):
    first = ddp_runs["first"]
    assert first[1]["saved"] == []
    assert first[0]["saved"].count("last.pt") == EPOCHS
    rows = [json.loads(line) for line in ddp_runs["metrics_after_first"].splitlines()]
    assert [row["epoch"] for row in rows] == list(range(EPOCHS))  # one line per epoch, not one per rank
    assert all(row["images"] == 8 for row in rows)  # both ranks' images counted
    run_info = json.loads((ddp_runs["run_dir"] / "config.json").read_text())
    assert run_info["world_size"] == WORLD_SIZE and run_info["accumulate"] == 1


def test_resume_under_ddp_continues_to_more_epochs(ddp_runs):
    first, resumed = ddp_runs["first"], ddp_runs["resumed"]
    assert [r["code"] for r in resumed] == [0, 0]
    for rank in range(WORLD_SIZE):  # every rank starts from last.pt, i.e. rank 0's weights after epoch 2
        for name in parameter_names(first[0]["model"]):
            assert torch.equal(resumed[rank]["initial"][name], first[0]["model"][name]), name
        assert list(resumed[rank]["sampled"]) == [EPOCHS]  # only the new epoch is trained
    assert_ranks_identical(resumed, "model")
    assert_ranks_identical(resumed, "ema")
    assert resumed[1]["saved"] == []
    checkpoint = torch.load(ddp_runs["run_dir"] / "last.pt", weights_only=True)
    assert checkpoint["epoch"] == RESUMED_EPOCHS
    assert all(torch.equal(checkpoint["model"][k], resumed[0]["model"][k]) for k in checkpoint["model"])
    rows = [json.loads(line) for line in (ddp_runs["run_dir"] / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == list(range(RESUMED_EPOCHS))
    assert "mAP75" in rows[-1]  # the final epoch was validated on rank 0


CACHE_SCRIPT = textwrap.dedent('''
    """Cache the training images of a manifest on this rank (one node), then save to DUMP_DIR/rank<RANK>.pt
    what it decoded, what the cache holds and how its pages are shared."""
    import argparse
    import os
    import sys
    from pathlib import Path

    import torch

    from drowsy.data import image_cache
    from drowsy.data.dataset import DetectionDataset
    from drowsy.distributed import barrier, joined
    from drowsy.errors import DrowsyError
    from drowsy.data.labels import load_manifest

    parser = argparse.ArgumentParser()
    parser.add_argument("--manifest")
    parser.add_argument("--no-shared-memory-on-rank", type=int, default=-1)
    parser.add_argument("--bad-image", type=int, default=-1)
    args = parser.parse_args(sys.argv[2:])
    rank = int(os.environ["RANK"])
    if rank == args.no_shared_memory_on_rank:
        image_cache.shared_memory_free = lambda: 0
    decoded = []
    decode = DetectionDataset._decode_resized

    def recording_decode(self, index):
        if index == args.bad_image:
            raise DrowsyError(f"image {index}: cannot read image")
        decoded.append(index)
        return decode(self, index)

    DetectionDataset._decode_resized = recording_decode
    manifest = load_manifest(args.manifest)
    dataset = DetectionDataset(manifest.image_root, manifest.records, 320)
    with joined("cpu") as process:
        try:
            cached = image_cache.cache_if_it_fits([dataset], budget_gb=1.0, process=process)
        except DrowsyError as error:
            cached, record = False, {"error": str(error)}
        else:
            record = {"cached": cached, "decoded": sorted(decoded), "pages": {}}
        if cached:
            record["slots"] = [torch.from_numpy(dataset._cache.slot(i).copy()) for i in range(len(dataset))]
            barrier(process)  # both ranks have now read every page of the cache
            for line in Path("/proc/self/smaps").read_text().splitlines():
                if "-" in line.split()[0]:  # a mapping's first line: address range, ..., path
                    header = line
                elif "/drowsy-" in header and line.split()[0] in ("Rss:", "Pss:"):
                    record["pages"][line.split()[0]] = int(line.split()[1])  # kB
                    record["mapped_file"] = header.split(maxsplit=5)[5]
            barrier(process)  # neither unmaps the cache (by exiting) before the other has read its pages
    torch.save(record, Path(sys.argv[1]) / f"rank{rank}.pt")
''')


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="page sharing is read from /proc/self/smaps (Linux)")
def test_the_ranks_of_a_node_share_one_image_cache_each_decoding_half(tiny_dataset, tmp_path):
    from drowsy.data.dataset import DetectionDataset
    from drowsy.data.labels import load_manifest

    script = tmp_path / "rank_cache.py"
    script.write_text(CACHE_SCRIPT)
    ranks = torchrun(script, tmp_path / "dump", {"manifest": tiny_dataset / "train.json"})
    manifest = load_manifest(tiny_dataset / "train.json")
    plain = DetectionDataset(manifest.image_root, manifest.records, 320)
    assert [r["cached"] for r in ranks] == [True, True]
    assert ranks[0]["decoded"] == list(range(0, len(plain), 2)) and ranks[1]["decoded"] == list(range(1, len(plain), 2))
    for rank in ranks:  # each sees every image, half of them decoded by the other rank
        for index, slot in enumerate(rank["slots"]):
            assert torch.equal(slot, torch.from_numpy(plain._decode_resized(index))), index
        # one copy for the node: every page is mapped by both ranks, so each counts half of it
        assert rank["pages"]["Rss:"] >= plain.cache_bytes() // 1024
        assert abs(2 * rank["pages"]["Pss:"] - rank["pages"]["Rss:"]) <= 8, rank["pages"]
        assert rank["mapped_file"].endswith(" (deleted)")  # unlinked once both had opened it
        assert not Path(rank["mapped_file"].removesuffix(" (deleted)")).exists()


def test_ranks_stream_from_disk_together_when_one_has_no_room_for_the_cache(tiny_dataset, tmp_path):
    script = tmp_path / "rank_cache.py"
    script.write_text(CACHE_SCRIPT)
    ranks = torchrun(
        script, tmp_path / "dump", {"manifest": tiny_dataset / "train.json", "no_shared_memory_on_rank": 1}
    )
    assert [(r["cached"], r["decoded"]) for r in ranks] == [(False, []), (False, [])]


def test_an_image_that_fails_on_one_rank_stops_both_with_one_line_each(tiny_dataset, tmp_path):
    script = tmp_path / "rank_cache.py"
    script.write_text(CACHE_SCRIPT)
    ranks = torchrun(script, tmp_path / "dump", {"manifest": tiny_dataset / "train.json", "bad_image": 3})
    # image 3 is rank 1's to decode: rank 0 must not wait for it in the barrier
    assert [r["error"] for r in ranks] == [
        "stopped: another rank failed (its own line says why)",
        "image 3: cannot read image",
    ]


def train_config_json(tiny_dataset, tmp_path, **overrides) -> str:
    """TRAIN_OPTIONS on the tiny dataset, run in tmp_path/run, as the TrainConfig JSON the rank scripts take."""
    paths = {name: str(tiny_dataset / f"{name[:-9]}.json") for name in ("train_manifest", "val_manifest")}
    return json.dumps(dict(TRAIN_OPTIONS, **paths, run_dir=str(tmp_path / "run"), **overrides))


def run_ranks(script, *args, timeout: float = 120) -> tuple[list[int], list[str], list[str]]:
    """Start `script` with `args` as the WORLD_SIZE ranks of a gloo group (no torchrun: each rank's exit code
    and output are its own); returns (exit codes, stdouts, stderrs) in rank order."""
    port = free_port()
    ranks = [
        subprocess.Popen(
            [sys.executable, str(script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "OMP_NUM_THREADS": "1",
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(WORLD_SIZE),
                "LOCAL_WORLD_SIZE": str(WORLD_SIZE),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
            },
        )
        for rank in range(WORLD_SIZE)
    ]
    outputs = [rank.communicate(timeout=timeout) for rank in ranks]
    return [rank.returncode for rank in ranks], [out for out, _ in outputs], [err for _, err in outputs]


POISONED_SCRIPT = textwrap.dedent('''
    """Train with a loss that is NaN on rank 1 only; print the one-line error and exit 2, as the CLI does."""
    import json
    import os
    import sys

    from drowsy.train.engine import train
    from drowsy.errors import DrowsyError
    from drowsy.train.loss import YoloLoss
    from drowsy.config import TrainConfig


    def poisoned_on_rank_1(model, hyp):
        loss = YoloLoss(model, hyp)

        def call(logits, targets):
            value, parts = loss(logits, targets)
            return (value * float("nan") if os.environ["RANK"] == "1" else value), parts
        return call


    try:
        train(TrainConfig(**json.loads(sys.argv[1])), progress=False, loss_factory=poisoned_on_rank_1)
    except DrowsyError as error:
        print(f"drowsy: error: {error}", file=sys.stderr)
        sys.exit(2)
''')


def test_a_non_finite_loss_on_one_rank_stops_every_rank(tiny_dataset, tmp_path):
    script = tmp_path / "poisoned.py"
    script.write_text(POISONED_SCRIPT)
    # without the shared verdict rank 0 would wait in the gradient all-reduce for the 3 h group timeout
    codes, _, errors = run_ranks(script, train_config_json(tiny_dataset, tmp_path, cache=False, epochs=1))
    assert codes == [2, 2], errors
    last_lines = [e.strip().splitlines()[-1] for e in errors]
    assert last_lines[0].startswith("drowsy: error: non-finite loss on another rank at epoch 1, batch 1"), errors[0]
    assert last_lines[1].startswith("drowsy: error: non-finite loss on rank 1 at epoch 1, batch 1"), errors[1]


STOPPED_SCRIPT = textwrap.dedent('''
    """Train; rank 1 alone is sent SIGTERM during its second batch. Print the summary as JSON."""
    import json
    import os
    import signal
    import sys

    from drowsy.config import TrainConfig
    from drowsy.train.engine import train
    from drowsy.train.loss import YoloLoss


    def signalled_on_rank_1(model, hyp):
        loss, calls = YoloLoss(model, hyp), []

        def call(logits, targets):
            calls.append(1)
            if os.environ["RANK"] == "1" and len(calls) == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return loss(logits, targets)
        return call


    summary = train(TrainConfig(**json.loads(sys.argv[1])), progress=False, loss_factory=signalled_on_rank_1)
    print(json.dumps({"stopped": summary["stopped"], "epochs_done": summary["epochs_done"]}))
''')


def test_a_stop_asked_on_one_rank_stops_every_rank_at_the_same_step_and_rank_0_saves(tiny_dataset, tmp_path):
    script = tmp_path / "stopped.py"
    script.write_text(STOPPED_SCRIPT)
    # a rank that stopped alone would leave the other waiting in the next gradient all-reduce (the timeout)
    codes, outputs, errors = run_ranks(script, train_config_json(tiny_dataset, tmp_path, epochs=2))
    assert codes == [0, 0], errors
    assert [json.loads(out.strip().splitlines()[-1]) for out in outputs] == [{"stopped": True, "epochs_done": 0}] * 2
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert (saved["epoch"], saved["batches_done"]) == (0, 2)  # the step of rank 1's second batch, on both ranks
    assert "resume with resume=True" in outputs[0] and "resume with" not in outputs[1]


NO_SYNC_SCRIPT = textwrap.dedent('''
    """Two micro-batches on a small DDP model, gradients all-reduced at the last only (gradient_sync) or at
    both; print the final gradients and how many all-reduces each way made, as JSON."""
    import json

    import torch
    import torch.distributed as dist
    from torch import nn

    from drowsy.train.engine import gradient_sync

    dist.init_process_group("gloo")
    rank = dist.get_rank()


    def accumulated(skip_early_syncs: bool) -> tuple[list, int]:
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)))
        reductions = []

        def counting_allreduce(state, bucket):
            reductions.append(1)
            tensor = bucket.buffer().div_(dist.get_world_size())
            return dist.all_reduce(tensor, async_op=True).get_future().then(lambda future: future.value()[0])

        model.register_comm_hook(None, counting_allreduce)
        generator = torch.Generator().manual_seed(10 + rank)  # each rank its own data
        for micro_batch in range(2):
            boundary = micro_batch == 1
            with gradient_sync(model, boundary or not skip_early_syncs):
                model(torch.randn(4, 6, generator=generator)).square().sum().backward()
        return [p.grad.tolist() for p in model.parameters()], len(reductions)


    print(json.dumps({"no_sync": accumulated(True), "every_step": accumulated(False)}))
    dist.destroy_process_group()
''')


def test_no_sync_before_the_optimizer_step_gives_the_gradients_of_syncing_every_micro_batch(tmp_path):
    script = tmp_path / "no_sync.py"
    script.write_text(NO_SYNC_SCRIPT)
    codes, outputs, errors = run_ranks(script)
    assert codes == [0, 0], errors
    ranks = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    for rank in ranks:
        (quiet, quiet_reductions), (chatty, chatty_reductions) = rank["no_sync"], rank["every_step"]
        assert quiet_reductions == 1 and chatty_reductions == 2  # one bucket: once per optimizer step, not per batch
        for a, b in zip(quiet, chatty):
            torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=1e-6, atol=1e-7)
    assert ranks[0]["no_sync"][0] == ranks[1]["no_sync"][0]  # every rank holds the same averaged gradient
