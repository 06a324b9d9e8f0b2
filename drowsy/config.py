"""Every typed run configuration, and the mechanism they share.

- `Params`: the base of every configuration, a frozen dataclass that rejects unknown keys and wrong
  types in one line naming the source (a notebook's parameters, a preset, a YAML file);
- `TrainConfig`: everything one training run needs (`drowsy.train.engine.train`);
- `Hyp`: a hyperparameter file (data/hyp.*.yaml);
- `MonitorConfig`: the driver-state monitor's thresholds (data/monitor.yaml);
- `MonitorRun`: one run of the monitor (`drowsy.monitor.runner.run_monitor`): what it watches, how the
  detector runs, where the results go.

Each notebook's parameters are in `drowsy.notebooks`, built on `Params` and derived from `TrainConfig`
where the two share a field. A notebook's `parameters` cell holds one scalar per line; the cell after
it calls `SomeParams.from_namespace(globals())`. Presets and YAML files go through `from_dict`.
"""

import dataclasses
import inspect
import io
import textwrap
import tokenize
import types
import typing
from pathlib import Path

import yaml

from drowsy.errors import DrowsyError
from drowsy.paths import resolve


def _type_ok(value, annotation) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:  # an int is a fine float (papermill passes `-p lr 1` as int)
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or annotation)


@dataclasses.dataclass(frozen=True)
class Params:
    """Base of every typed configuration. Subclasses are plain frozen dataclasses with defaults."""

    @classmethod
    def from_dict(cls, values: dict, source: str = "parameters"):
        """Build from a mapping; unknown keys and wrong types end in one line naming `source`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise DrowsyError(f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        hints = typing.get_type_hints(cls)
        for name, value in values.items():
            if not _type_ok(value, hints[name]):
                raise DrowsyError(f"{source}: field '{name}' must be {_type_name(hints[name])}, got {value!r}")
        return cls(**values)

    @classmethod
    def from_namespace(cls, namespace: dict, source: str = "notebook parameters"):
        """Build from a notebook's globals: picks exactly this dataclass's fields."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in namespace]
        if missing:
            raise DrowsyError(f"{source}: missing parameter(s) {', '.join(missing)}")
        return cls.from_dict({n: namespace[n] for n in names}, source)

    @classmethod
    def from_yaml(cls, path: str | Path):
        path = resolve(path)
        return cls.from_dict(load_yaml(path), str(path))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _type_name(annotation) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def field_comments(cls) -> dict[str, str]:
    """name -> what a field of dataclass `cls` means and its unit: the comment on its line in the source of
    the class that declares it (`name: type = default  # comment`), or its `metadata["comment"]` where it is
    made in code. Shown in the notebooks' parameter cells and as the command line's --help."""
    comments = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass) and "__dataclass_fields__" in vars(klass):
            comments.update(_source_comments(klass))
    found = {field.name: field.metadata.get("comment", comments.get(field.name)) for field in dataclasses.fields(cls)}
    return {name: text for name, text in found.items() if text}


def _source_comments(cls) -> dict[str, str]:
    """name -> comment for each `name: type = default  # comment` line of `cls`'s own source ({} when it has
    none: a class made by dataclasses.make_dataclass)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments, field = {}, None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME and token.start[1] == 4 and field is None:
            field = token.string  # the first name on a line of the class body
        elif token.type == tokenize.COMMENT and field is not None:
            comments[field] = token.string.lstrip("#").strip()
        if token.type in (tokenize.NEWLINE, tokenize.NL):
            field = None
    return comments


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping; a missing file or a non-mapping is a one-line error."""
    path = resolve(path)
    try:
        values = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DrowsyError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise DrowsyError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise DrowsyError(f"{path}: expected a mapping of names to values")
    return values


@dataclasses.dataclass(frozen=True)
class TrainConfig(Params):
    """Everything one training run needs. Paths are relative to the repository root or absolute; the
    defaults are the demo's (data/presets/demo.yaml), the recipe's values are in data/presets/full.yaml."""

    train_manifest: str = "data/prepared/demo/diet.json"  # manifest to train on (from notebook 02)
    val_manifest: str = "data/prepared/demo/val.json"  # manifest to validate on
    run_dir: str = "weights/demo/baseline"  # last.pt, best.pt, metrics.jsonl, config.json go here
    model: str = ""  # variant or YAML path; "": yolov5n, or the weights' own; one of their layers converts them
    hyp: str = "data/hyp.scratch-demo.yaml"  # hyperparameter file (the recipe: data/hyp.scratch-p6.yaml)
    img_size: int = 256  # square network input, pixels
    batch: int = 16  # images per step (per process under DDP)
    nominal_batch: int = 16  # gradients accumulate to this many images per optimizer step (the recipe: 64)
    epochs: int = 25  # epochs (each draws len/epoch_parts images)
    epoch_parts: int = 1  # an epoch samples 1/epoch_parts of the set, with replacement
    weights: str = ""  # start from this checkpoint's EMA weights (fine-tuning); "" = from scratch
    freeze: str = ""  # comma-separated module-name prefixes to freeze, e.g. "backbone"
    device: str = "cpu"  # "auto", "cpu", "cuda", "cuda:1"
    workers: int = 1  # data-loading processes
    cache: bool = True  # keep decoded, resized images in shared memory (one copy for all loader workers)
    cache_gb: float = 8.0  # largest image cache; a set that needs more is streamed from disk
    amp: bool = True  # bf16 autocast on CPU, fp16/bf16 autocast on CUDA
    channels_last: bool = True  # NHWC convolutions (faster with oneDNN/AMX and tensor cores)
    autoanchor: bool = True  # recompute anchors by k-means when they fit the boxes badly
    val_every: int = 5  # validate every N epochs (and always after the last)
    val_images: int = 0  # validate on the first N val images (0 = all)
    val_subset: int = 0  # validations before the last use N of those, evenly spread (0: all); the last uses all
    checkpoint_every: int = 1  # write last.pt every N epochs (and on a stop signal, and after the last epoch)
    checkpoint_minutes: float = 0.0  # also when this many minutes have passed since the last one (0: off)
    seed: int = 0  # one seed for weights, sampling and augmentation
    deterministic: bool = True  # deterministic kernels (bit-identical on CPU; docs/training.md for GPU)
    compile: bool = False  # torch.compile the model (CUDA)
    sync_bn: bool = False  # SyncBatchNorm under DDP
    resume: bool = False  # continue <run_dir>/last.pt if it exists
    overwrite: bool = False  # train again from the start over a run already in <run_dir> (replaces its weights)

    def __post_init__(self):
        if self.checkpoint_every < 1 or min(self.val_subset, self.checkpoint_minutes, self.cache_gb) < 0:
            raise DrowsyError(
                f"parameters: checkpoint_every must be >= 1 and val_subset, checkpoint_minutes, cache_gb "
                f">= 0, got {self.checkpoint_every}, {self.val_subset}, {self.checkpoint_minutes}, "
                f"{self.cache_gb}"
            )


COPY_PASTE_CLASSES = "phone,cigar"  # what copy-paste takes when a hyperparameter file does not say


@dataclasses.dataclass(frozen=True)
class Hyp(Params):
    """A hyperparameter file (data/hyp.*.yaml, YOLOv5's names; each file comments every key). Floats but the
    pasted classes; every key is required except `label_smoothing`, `class_balance` and the copy-paste pair (off
    unless set), so a
    typo cannot silently fall back."""

    lr0: float
    lrf: float
    momentum: float
    weight_decay: float
    warmup_epochs: float
    warmup_momentum: float
    warmup_bias_lr: float
    box: float
    cls: float
    cls_pw: float
    obj: float
    obj_pw: float
    iou_t: float
    anchor_t: float
    fl_gamma: float
    hsv_h: float
    hsv_s: float
    hsv_v: float
    degrees: float
    translate: float
    scale: float
    shear: float
    perspective: float
    flipud: float
    fliplr: float
    mosaic: float
    mixup: float
    label_smoothing: float = 0.0
    class_balance: float = 0.0  # exponent b of the class loss weights (most common count / class count) ** b; 0: off
    copy_paste: float = 0.0  # probability that a training image gets a pasted rare object (0: off)
    copy_paste_classes: str = COPY_PASTE_CLASSES  # the classes pasted, comma-separated

    def __post_init__(self):
        for field in dataclasses.fields(self):  # `mosaic: 1` in YAML is the float 1.0
            if field.type in (float, "float"):
                object.__setattr__(self, field.name, float(getattr(self, field.name)))

    @classmethod
    def load(cls, path: str | Path) -> "Hyp":
        """Read a hyperparameter file; a missing, unknown or non-numeric key ends in one line."""
        path = resolve(path)
        values = load_yaml(path)
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [name for name in required if name not in values]
        if missing:
            raise DrowsyError(f"{path}: missing key(s) {', '.join(missing)}")
        return cls.from_dict(values, str(path))


@dataclasses.dataclass(frozen=True)
class MonitorConfig(Params):
    """Thresholds of the driver-state monitor (data/monitor.yaml cites the source of each default).

    Scores are in [0, 1], durations and windows in seconds. Per signal, `*_on` / `*_off` are the
    hysteresis thresholds of its per-frame score and `*_max_gap_s` the longest dropout that does not
    end a run of it.
    """

    min_score: float = 0.05
    face_min_score: float = 0.5
    min_state_s: float = 0.1
    eyes_closed_on: float = 0.6
    eyes_closed_off: float = 0.4
    eyes_max_gap_s: float = 0.2
    blink_max_s: float = 0.5
    microsleep_s: float = 1.0
    sleep_s: float = 3.0
    unresponsive_s: float = 6.0
    perclos_window_s: float = 60.0
    perclos_min_window_s: float = 20.0
    drowsy_perclos_on: float = 0.15
    drowsy_perclos_off: float = 0.12
    drowsy_min_s: float = 5.0
    drowsy_max_gap_s: float = 5.0
    mouth_open_on: float = 0.6
    mouth_open_off: float = 0.4
    mouth_max_gap_s: float = 0.3
    yawn_min_s: float = 1.0
    yawn_min_height: float = 0.15
    phone_on: float = 0.5
    phone_off: float = 0.3
    phone_max_gap_s: float = 1.0
    phone_min_s: float = 2.0
    cigarette_on: float = 0.55
    cigarette_off: float = 0.2
    cigarette_max_gap_s: float = 6.0
    smoking_min_s: float = 2.0
    gaze_baseline_s: float = 60.0
    gaze_min_baseline_s: float = 3.0
    yaw_limit: float = 20.0
    pitch_down_limit: float = 15.0
    pitch_up_limit: float = 15.0
    off_road_off: float = 0.95
    gaze_max_gap_s: float = 0.2
    distraction_s: float = 3.0
    vats_total_s: float = 10.0
    vats_window_s: float = 30.0
    vats_reset_s: float = 2.0
    degraded_s: float = 5.0
    degraded_max_gap_s: float = 0.5
    prompt_after_s: float = 1.5
    final_after_s: float = 3.0
    recovery_s: float = 1.0
    cooldown_s: float = 10.0

    @classmethod
    def from_dict(cls, values: dict, source: str = "monitor config"):
        config = super().from_dict(values, source)
        config.check(source)
        return config

    def check(self, source: str = "monitor config") -> None:
        """Raise DrowsyError naming `source` and the first field whose value makes no sense."""
        for field, reason in self._problems():
            raise DrowsyError(f"{source}: field '{field}': {reason}")

    def _problems(self):
        for prefix in ("eyes_closed", "mouth_open", "phone", "cigarette", "drowsy_perclos"):
            on, off = getattr(self, f"{prefix}_on"), getattr(self, f"{prefix}_off")
            if not 0 <= off <= on <= 1:
                yield f"{prefix}_off", f"need 0 <= {prefix}_off <= {prefix}_on <= 1, got {off} and {on}"
        for field in ("min_score", "face_min_score"):
            if not 0 <= getattr(self, field) < 1:
                yield field, f"must be in [0, 1), got {getattr(self, field)}"
        if self.face_min_score < self.min_score:  # the boxes under min_score are gone before the face is looked at
            yield (
                "face_min_score",
                f"need min_score <= face_min_score, got {self.min_score} and {self.face_min_score}",
            )
        for field in dataclasses.fields(self):
            if field.name.endswith("_s") and getattr(self, field.name) < 0:
                yield field.name, f"must be >= 0 seconds, got {getattr(self, field.name)}"
        closures = ("min_state_s", "blink_max_s", "microsleep_s", "sleep_s", "unresponsive_s")
        for low, high in zip(closures, closures[1:]):
            if getattr(self, low) > getattr(self, high):
                yield low, f"need {' <= '.join(closures)}, got {', '.join(str(getattr(self, n)) for n in closures)}"
        if not self.distraction_s <= self.unresponsive_s:
            yield (
                "distraction_s",
                f"need distraction_s <= unresponsive_s, got {self.distraction_s} and {self.unresponsive_s}",
            )
        if not 0 < self.off_road_off <= 1:
            yield "off_road_off", f"must be in (0, 1], got {self.off_road_off}"
        for field in ("yaw_limit", "pitch_down_limit", "pitch_up_limit"):
            if not 0 < getattr(self, field) < 90:
                yield field, f"must be in (0, 90) degrees, got {getattr(self, field)}"
        if not 0 < self.gaze_min_baseline_s <= self.gaze_baseline_s:
            yield (
                "gaze_min_baseline_s",
                (
                    f"need 0 < gaze_min_baseline_s <= gaze_baseline_s, got "
                    f"{self.gaze_min_baseline_s} and {self.gaze_baseline_s}"
                ),
            )
        if not self.prompt_after_s <= self.final_after_s:
            yield (
                "prompt_after_s",
                f"need prompt_after_s <= final_after_s, got {self.prompt_after_s} and {self.final_after_s}",
            )
        if not 0 < self.perclos_min_window_s <= self.perclos_window_s:
            yield (
                "perclos_min_window_s",
                (
                    f"need 0 < perclos_min_window_s <= perclos_window_s, got "
                    f"{self.perclos_min_window_s} and {self.perclos_window_s}"
                ),
            )


@dataclasses.dataclass(frozen=True)
class MonitorRun(Params):
    """One run of the driver-state monitor: what it watches, how the detector runs, where it writes.

    The detector itself, its calibration offsets and the thresholds (`MonitorConfig`) are objects
    `run_monitor` takes beside this; without a detector, `truth_frames` feeds a clip's ground-truth
    boxes instead (then `source` may be None: no video).
    """

    source: str | Path | int | None  # video file, folder of frames, or camera index
    out_dir: str | Path = "outputs/monitor"  # events.json, timeline.csv/.png, summary.json, annotated.mp4
    truth_frames: str | Path | None = None  # a clip's frames.json: its ground-truth boxes as the detections
    truth_events: str | Path | None = None  # the clip's events.json, to score the events against
    fps: float | None = None  # frame rate of a source that states none (folders: 15)
    img_size: int = 416  # detector input, pixels
    iou: float = 0.7  # NMS IoU threshold
    batch: int = 4  # frames per detector call
    threads: int | None = 1  # PyTorch compute threads (one: decoding gets the other core; None: PyTorch's own)
    annotate: bool = True  # write annotated.mp4 (with a source)
    max_frames: int | None = None  # stop after this many frames (a camera runs until Ctrl-C otherwise)
    progress: bool = True  # progress bar
