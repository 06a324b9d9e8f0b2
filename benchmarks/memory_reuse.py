"""Page faults per CPU training step with glibc's default allocator settings and with
`drowsy.device.reuse_freed_memory` (the setting the training loop applies), each in a fresh process:
three steps of yolov5n at the demo's batch and size (16 x 320 px, bf16 autocast, channels_last) after
two warm-up steps. The setting should cut the faults by far more than 4x (2026-11: ~2,400 per step
with the defaults, ~1 with it; 245 against 202 ms per step).

    python benchmarks/memory_reuse.py
"""

import subprocess
import sys

STEPS = """
import resource, sys, time
import torch
from drowsy import CLASSES
from drowsy.device import reuse_freed_memory
from drowsy.models.yolo import build_model
torch.manual_seed(0)
if sys.argv[1] == "tuned" and not reuse_freed_memory():
    raise SystemExit("no glibc mallopt here: the setting changes nothing")
model = build_model("yolov5n", num_classes=len(CLASSES), in_channels=1).to(memory_format=torch.channels_last)
images = torch.rand(16, 1, 320, 320).contiguous(memory_format=torch.channels_last)
def step():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = sum(output.float().square().mean() for output in model(images))
    loss.backward()
step(); step()
before, started = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
for _ in range(3):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3, (time.perf_counter() - started) / 3 * 1000)
"""


def main() -> None:
    results = {}
    for mode in ("default", "tuned"):
        out = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True).stdout
        results[mode] = tuple(float(v) for v in out.split())
        print(f"{mode:>7}: {results[mode][0]:,.0f} page faults per step, {results[mode][1]:.0f} ms per step")
    print(f"faults, default / tuned: {results['default'][0] / max(results['tuned'][0], 1):.0f}x")


if __name__ == "__main__":
    main()
