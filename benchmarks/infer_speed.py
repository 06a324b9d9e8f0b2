"""CPU latency of one forward pass + decoding (what `Detector.decoded_predictions` does) per image.

yolov5n (1 input channel, 7 classes, randomly initialised: speed does not depend on the weights) at
the demo size, batch 1 and 8, for: PyTorch fp32 (NCHW and channels_last), PyTorch bf16 autocast
(channels_last) and ONNX Runtime (CPUExecutionProvider, the `drowsy export` graph). Letterboxing and
NMS are shared by every backend and left out. If the optional `ultralytics` package is importable,
its YOLOv5n-sized model (built from 'yolov5nu.yaml', no weights downloaded) is timed the same way.

    python benchmarks/infer_speed.py [--img 320] [--batches 1 8] [--seconds 3] [--threads N]
"""

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import torch

from drowsy import CLASSES
from drowsy.device import autocast
from drowsy.infer.export import export_onnx
from drowsy.infer.predict import Detector
from drowsy.models.checkpoint import save_checkpoint
from drowsy.models.yolo import build_model

MODEL = "yolov5n"
WARMUP_CALLS = 3


def ms_per_image(forward, images: torch.Tensor, seconds: float) -> float:
    """Mean milliseconds per image: warm up, then call `forward(images)` for about `seconds`."""
    for _ in range(WARMUP_CALLS):
        forward(images)
    calls, started = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - started < seconds:
        forward(images)
        calls += 1
    return (time.perf_counter() - started) / (calls * len(images)) * 1000


def torch_forward(model: torch.nn.Module, channels_last: bool, amp: bool):
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = copy.deepcopy(model).to(memory_format=memory_format)  # each backend its own layout
    device = torch.device("cpu")

    @torch.inference_mode()
    def forward(images: torch.Tensor) -> torch.Tensor:
        with autocast(device, amp):
            return model(images.contiguous(memory_format=memory_format))

    return forward


def drowsy_backends(folder: Path, img_size: int, threads: int) -> dict:
    """name -> forward function, for the drowsy model on every backend."""
    torch.manual_seed(0)
    model = build_model(MODEL, num_classes=len(CLASSES), in_channels=1)
    checkpoint = folder / f"{MODEL}.pt"
    save_checkpoint(
        {
            "ema": model.state_dict(),
            "model_config": MODEL,
            "num_classes": len(CLASSES),
            "in_channels": 1,
            "class_names": list(CLASSES),
            "config": {"img_size": img_size},
        },
        checkpoint,
    )
    decoding_model = Detector(checkpoint, device="cpu").model  # fused EMA model + decoding, as predict runs it
    onnx_path = export_onnx(checkpoint, folder / f"{MODEL}.onnx", img_size=img_size, dynamic=True)
    onnx_detector = Detector(onnx_path, onnx_threads=threads)
    return {
        "pytorch fp32 (NCHW)": torch_forward(decoding_model, channels_last=False, amp=False),
        "pytorch fp32 (channels_last)": torch_forward(decoding_model, channels_last=True, amp=False),
        "pytorch bf16 autocast (channels_last)": torch_forward(decoding_model, channels_last=True, amp=True),
        "onnxruntime fp32": onnx_detector.decoded_predictions,
    }


def ultralytics_model() -> torch.nn.Module | None:
    """ultralytics' YOLOv5n-sized model (1 input channel, drowsy's classes, random weights, BatchNorm fused),
    or None with a message when the optional package is missing."""
    try:
        from ultralytics.nn.tasks import DetectionModel
    except ImportError:
        print("ultralytics not installed (optional: pip install -e .[bench]); skipping its model")
        return None
    return DetectionModel("yolov5nu.yaml", ch=1, nc=len(CLASSES), verbose=False).fuse(verbose=False).eval()


def ultralytics_backends() -> dict:
    """The same timings for ultralytics' YOLOv5n-sized model, or {} when it is missing."""
    model = ultralytics_model()
    if model is None:
        return {}
    return {
        "ultralytics yolov5nu fp32 (NCHW)": torch_forward(model, channels_last=False, amp=False),
        "ultralytics yolov5nu bf16 autocast (channels_last)": torch_forward(model, channels_last=True, amp=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--img", type=int, default=320, help="square input size, pixels (default 320)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per measurement (default 3)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads of PyTorch and ONNX Runtime alike (default: PyTorch's default)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"{MODEL} at {args.img}x{args.img}, 1 channel; torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads (PyTorch and ONNX Runtime), {os.cpu_count()} CPUs; ms per image (forward + decode)"
    )
    with tempfile.TemporaryDirectory() as folder:
        backends = {**drowsy_backends(Path(folder), args.img, torch.get_num_threads()), **ultralytics_backends()}
        generator = torch.Generator().manual_seed(0)
        header = f"{'backend':<52}" + "".join(f"{f'batch {b}':>12}" for b in args.batches)
        print(header)
        for name, forward in backends.items():
            cells = []
            for batch in args.batches:
                images = torch.rand(batch, 1, args.img, args.img, generator=generator)
                cells.append(f"{ms_per_image(forward, images, args.seconds):>12.2f}")
            print(f"{name:<52}" + "".join(cells))


if __name__ == "__main__":
    main()
