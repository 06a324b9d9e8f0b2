"""Looking at the labels before training: per-object tables, class counts, co-occurrence, and the
plots behind notebooks 01 (how imbalanced the data is) and 02 (what the diet set changes).

Records are competition or manifest records (see `drowsy.data.labels`):
`{"file_name": str, "objects": [{"class": str, "position": [x1, y1, x2, y2]}], "width": int, "height": int}`,
positions in absolute pixels, xyxy; `width`/`height` are present in manifests only.
Plots with one panel take an optional `ax` and return it; plots with several panels return their Figure.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from drowsy import CLASS_IDS, CLASSES
from drowsy.data.meta import record_meta
from drowsy.paths import resolve
from drowsy.viz.figures import CLASS_COLOURS, draw_record


def load_splits(prepared_dir: str | Path, names: Sequence[str] = ("train", "diet", "val")) -> dict[str, list[dict]]:
    """Records of the manifests `prepared_dir/<name>.json` written by `drowsy prepare`, by name."""
    from drowsy.data.labels import load_manifest

    return {name: load_manifest(resolve(prepared_dir) / f"{name}.json").records for name in names}


# ----------------------------------------------------------------------------- tables


def _class_id(name: str) -> int:
    try:
        return CLASS_IDS[name]
    except KeyError:
        raise ValueError(f"unknown class {name!r}; expected one of {', '.join(CLASSES)}") from None


def objects_frame(records: Sequence[dict]) -> pd.DataFrame:
    """One row per object.

    Columns: file_name; class (categorical, CLASSES order); x1, y1, x2, y2 (xyxy, pixels);
    w, h, cx, cy (pixels); and width, height of the image (pixels) when every record has them.
    """
    file_names, classes, boxes, image_sizes = [], [], [], []
    with_sizes = all("width" in r and "height" in r for r in records)
    for record in records:
        for obj in record["objects"]:
            _class_id(obj["class"])  # rejects an unknown class
            file_names.append(record["file_name"])
            classes.append(obj["class"])
            boxes.append(obj["position"])
            if with_sizes:
                image_sizes.append((record["width"], record["height"]))
    x1, y1, x2, y2 = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).T
    frame = pd.DataFrame(
        {
            "file_name": file_names,
            "class": pd.Categorical(classes, categories=CLASSES),
            "x1": x1,
            "y1": y1,
            "x2": x2,
            "y2": y2,
            "w": x2 - x1,
            "h": y2 - y1,
            "cx": (x1 + x2) / 2,
            "cy": (y1 + y2) / 2,
        }
    )
    if with_sizes:
        frame[["width", "height"]] = np.asarray(image_sizes, dtype=np.int64).reshape(-1, 2)
    return frame


def objects_per_image(records: Sequence[dict]) -> pd.DataFrame:
    """[images x classes] int64: how many objects of each class each image holds; index file_name."""
    counts = np.zeros((len(records), len(CLASSES)), dtype=np.int64)
    for row, record in enumerate(records):
        for obj in record["objects"]:
            counts[row, _class_id(obj["class"])] += 1
    return pd.DataFrame(
        counts,
        index=pd.Index([r["file_name"] for r in records], name="file_name"),
        columns=pd.Index(CLASSES, name="class"),
    )


def class_counts(records: Sequence[dict]) -> pd.Series:
    """Objects per class, in CLASSES order, zeros included."""
    return objects_per_image(records).sum().rename("objects")


def images_per_class(records: Sequence[dict]) -> pd.Series:
    """Images holding at least one object of each class, in CLASSES order, zeros included."""
    return (objects_per_image(records) > 0).sum().rename("images")


def cooccurrence(records: Sequence[dict]) -> pd.DataFrame:
    """[class x class] int64: images that hold both classes; the diagonal is `images_per_class`."""
    present = (objects_per_image(records) > 0).to_numpy(dtype=np.int64)
    return pd.DataFrame(present.T @ present, index=pd.Index(CLASSES, name="class"), columns=list(CLASSES))


def class_table(records: Sequence[dict]) -> pd.DataFrame:
    """Per class (CLASSES order): objects, images holding the class, and their shares in %
    (of all objects; of all images)."""
    objects, images = class_counts(records), images_per_class(records)
    return pd.DataFrame(
        {
            "objects": objects,
            "images": images,
            "% of objects": (100 * objects / max(objects.sum(), 1)).round(2),
            "% of images": (100 * images / max(len(records), 1)).round(2),
        }
    )


def meta_class_counts(records: Sequence[dict], key: str) -> pd.DataFrame:
    """[value of meta `key` x class] int64 objects, plus an `images` column; values with most images
    first; empty when no record has the key (see drowsy.data.meta)."""
    rows: dict[str, np.ndarray] = {}
    images: dict[str, int] = {}
    for record in records:
        value = record_meta(record).get(key)
        if value is None:
            continue
        counts = rows.setdefault(str(value), np.zeros(len(CLASSES), np.int64))
        for obj in record["objects"]:
            counts[CLASS_IDS[obj["class"]]] += 1
        images[str(value)] = images.get(str(value), 0) + 1
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(CLASSES))
    table.insert(0, "images", pd.Series(images, dtype=np.int64))
    table.index.name = key
    return table.sort_values("images", ascending=False, kind="stable")


def plot_meta_class_counts(table: pd.DataFrame, key: str, ax: Axes | None = None) -> Axes:
    """Heat map of `meta_class_counts`: objects per class for each value of `key` (log colours)."""
    ax = _axes(ax, (10, 0.45 * len(table) + 2))
    shown = table.drop(columns="images")
    shown.index = [f"{value} ({n:,})" for value, n in table["images"].items()]
    _count_heatmap(shown, ax, "objects")
    ax.set(title=f"Objects per class by {key} (images)", xlabel="", ylabel="")
    ax.tick_params(axis="x", rotation=30)
    return ax


def split_class_table(splits: Mapping[str, Sequence[dict]]) -> pd.DataFrame:
    """Per split and class: objects, images holding the class, and share (% of the split's objects).

    Long format, one row per (split, class), splits in the given order.
    """
    parts = []
    for split, records in splits.items():
        objects = class_counts(records)
        parts.append(
            pd.DataFrame(
                {
                    "split": split,
                    "class": list(CLASSES),
                    "objects": objects.to_numpy(),
                    "images": images_per_class(records).to_numpy(),
                    "share": 100 * objects.to_numpy() / max(objects.sum(), 1),
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    table["split"] = pd.Categorical(table["split"], categories=list(splits))
    table["class"] = pd.Categorical(table["class"], categories=CLASSES)
    return table


def split_comparison(splits: Mapping[str, Sequence[dict]]) -> pd.DataFrame:
    """`split_class_table` side by side: per class, objects of each split, then each split's share (%)."""
    table = split_class_table(splits)
    wide = table.pivot(index="class", columns="split", values=["objects", "share"])
    return wide.astype({column: "int64" for column in wide.columns if column[0] == "objects"}).round(1)


def split_sizes(splits: Mapping[str, Sequence[dict]]) -> pd.DataFrame:
    """Per split: images, objects and mean objects per image."""
    rows = {name: (len(records), sum(len(r["objects"]) for r in records)) for name, records in splits.items()}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["images", "objects"])
    table["objects per image"] = (table["objects"] / table["images"].clip(lower=1)).round(2)
    return table.rename_axis("split")


def sample_records(records: Sequence[dict], n: int, seed: int = 0) -> list[dict]:
    """`n` records drawn with `seed`, first one per class (rarest class first) so rare classes show up,
    then the rest at random. Fewer when there are fewer records."""
    order = np.random.default_rng(seed).permutation(len(records))
    present = objects_per_image(records).to_numpy()[order] > 0  # rows in drawing order
    chosen: list[int] = []  # positions in `order`
    for class_id in np.argsort(present.sum(axis=0), kind="stable"):
        shown = present[chosen, class_id].any() if chosen else False
        holding = np.flatnonzero(present[:, class_id])
        if not shown and len(holding) and len(chosen) < n:
            chosen.append(int(holding[0]))
    first_picks = set(chosen)
    chosen += [k for k in range(len(order)) if k not in first_picks][: max(n - len(chosen), 0)]
    return [records[order[k]] for k in chosen]


# ----------------------------------------------------------------------------- plots


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    return ax if ax is not None else plt.subplots(figsize=figsize, layout="constrained")[1]


def _label_bars(ax: Axes, fmt: str = "{:,.0f}") -> None:
    for container in ax.containers:
        ax.bar_label(container, fmt=fmt, padding=2, fontsize=8)


def _log_axis(ax: Axes, axis: str) -> None:
    """Log scale for bars. Set after drawing: seaborn 0.13's own `log_scale` leaves bars invisible
    with current matplotlib."""
    getattr(ax, f"set_{axis}scale")("log")


def _plain_log_ticks(axis: Axis) -> None:
    """Tick labels on a log axis as plain numbers (1,000 rather than 10^3); within two decades also
    label 2x and 5x, or a short range shows next to no labels. Call once the limits are final."""
    low, high = axis.get_view_interval()
    axis.set_major_formatter(FuncFormatter(_plain_number))
    if high < 100 * max(low, 1e-12):
        axis.set_minor_locator(LogLocator(subs=(2, 5)))
        axis.set_minor_formatter(FuncFormatter(_plain_number))
        # minor labels otherwise sit at another distance from the axis than the major ones
        axis.set_tick_params(which="minor", pad=plt.rcParams[f"{axis.axis_name}tick.major.pad"])
    else:
        axis.set_minor_formatter(NullFormatter())


def _plain_number(value: float, _position=None) -> str:
    return f"{value:,.10g}"


def plot_class_counts(records: Sequence[dict], ax: Axes | None = None) -> Axes:
    """Objects and images per class, horizontal bars on a log axis, each bar labelled with its count."""
    table = class_table(records)[["objects", "images"]]
    objects = table["objects"]
    long = table.rename_axis("class").reset_index().melt(id_vars="class", var_name="count of", value_name="count")
    ax = _axes(ax, (10, 4.5))
    sns.barplot(long, y="class", x="count", hue="count of", orient="h", ax=ax)
    _log_axis(ax, "x")
    _label_bars(ax)
    present = objects[objects > 0]
    ratio = f"most / least frequent class: {present.max() / present.min():.0f}x" if len(present) else "no objects"
    ax.set(title=f"Objects and images per class ({ratio})", xlabel="count (log scale)", ylabel="")
    ax.margins(x=0.15)  # room for the bar labels
    _plain_log_ticks(ax.xaxis)
    return ax


def plot_objects_per_image(records: Sequence[dict], max_count: int = 4) -> Figure:
    """Left: images by their number of objects. Right: images by how many objects of each class they
    hold (0, 1, ... `max_count`+), log colours, so "one face, two eyes, one mouth" shows as the norm."""
    counts = objects_per_image(records)
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 4.5), layout="constrained", width_ratios=(1, 1.3))
    totals = counts.sum(axis=1).value_counts().sort_index()
    sns.barplot(x=totals.index.astype(str), y=totals.to_numpy(), color="C0", ax=left)
    _log_axis(left, "y")
    _label_bars(left)
    left.set(title="Images by number of objects", xlabel="objects in the image", ylabel="images (log scale)")
    left.margins(y=0.1)  # room for the bar labels
    _plain_log_ticks(left.yaxis)
    capped = counts.clip(upper=max_count)
    per_class = pd.DataFrame(
        {name: capped[name].value_counts().reindex(range(max_count + 1), fill_value=0) for name in CLASSES}
    ).T
    per_class.columns = [str(k) for k in range(max_count)] + [f"{max_count}+"]
    _count_heatmap(per_class, right, "images")
    right.set(title="Images by objects of one class", xlabel="objects of the class in the image", ylabel="")
    return figure


def _count_heatmap(table: pd.DataFrame, ax: Axes, colour_label: str) -> None:
    """Annotated heat map of non-negative counts; log colours since counts span orders of magnitude,
    zero cells left blank."""
    values = table.to_numpy()
    vmax = max(int(values.max()), 2) if values.size else 2
    sns.heatmap(
        table,
        ax=ax,
        annot=True,
        fmt=",d",
        annot_kws={"fontsize": 8},
        mask=values == 0,
        norm=LogNorm(vmin=1, vmax=vmax),
        cmap="viridis",
        linewidths=0.5,
        cbar_kws={"label": f"{colour_label} (log)"},
    )
    ax.grid(False)  # blank (zero) cells would show the style's grid lines


def plot_cooccurrence(records: Sequence[dict], ax: Axes | None = None, share: bool = False) -> Axes:
    """Images holding both classes. With `share`, row-normalised: % of the row class's images that
    also hold the column class."""
    matrix = cooccurrence(records)
    ax = _axes(ax, (9, 7))
    if share:
        shares = 100 * matrix.div(np.diag(matrix).clip(min=1), axis=0)
        sns.heatmap(
            shares,
            ax=ax,
            annot=True,
            fmt=".0f",
            vmin=0,
            vmax=100,
            cmap="viridis",
            linewidths=0.5,
            annot_kws={"fontsize": 8},
            cbar_kws={"label": "% of the row class's images"},
        )
        ax.grid(False)
        ax.set_title("Co-occurrence: % of images with the row class that also hold the column class")
    else:
        _count_heatmap(matrix, ax, "images")
        ax.set_title("Co-occurrence: images holding both classes (diagonal: images with the class)")
    ax.set(xlabel="", ylabel="")
    ax.tick_params(axis="x", rotation=30)
    return ax


def plot_box_sizes(frame: pd.DataFrame) -> Figure:
    """Per class: box size sqrt(w * h) in pixels and aspect ratio w / h, letter-value plots on log axes.

    frame: `objects_frame` output.
    """
    boxes = pd.DataFrame(
        {
            "class": frame["class"],
            "size": np.sqrt(frame["w"] * frame["h"]),
            "aspect": frame["w"] / frame["h"],
        }
    )
    boxes = boxes[np.isfinite(boxes["aspect"]) & (boxes["size"] > 0)]  # degenerate boxes have no log
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 4.5), layout="constrained", sharey=True)
    for ax, column, label in (
        (left, "size", "box size sqrt(w * h), pixels (log scale)"),
        (right, "aspect", "aspect ratio w / h (log scale)"),
    ):
        sns.boxenplot(
            boxes,
            x=column,
            y="class",
            hue="class",
            order=CLASSES,
            hue_order=CLASSES,
            palette=CLASS_COLOURS,
            showfliers=False,
            log_scale=True,
            legend=False,
            ax=ax,
        )
        _plain_log_ticks(ax.xaxis)
        ax.set(xlabel=label, ylabel="")
    left.set_title("Box size per class")
    right.set_title("Box aspect ratio per class")
    right.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    return figure


def plot_box_centres(frame: pd.DataFrame, bins: int = 40) -> Figure:
    """Where boxes sit in the image: 2-D histograms of box centres normalised by the image size, one
    panel for all objects and one per class, each as a share of its own boxes (shared log colours).

    frame: `objects_frame` output with `width` and `height` (manifest records, or records checked by
    `drowsy.data.labels.validate_records` with an image root).
    """
    if not {"width", "height"} <= set(frame.columns):
        raise ValueError("box centres need image sizes: pass manifest or drowsy.data.labels.validate_records records")
    centres_x = (frame["cx"] / frame["width"]).to_numpy()
    centres_y = (frame["cy"] / frame["height"]).to_numpy()
    image_aspect = float((frame["height"] / frame["width"]).median()) if len(frame) else 1.0
    panels = [("all classes", np.ones(len(frame), dtype=bool))]
    panels += [(name, (frame["class"] == name).to_numpy()) for name in CLASSES]
    figure, axes = plt.subplots(
        2, 4, figsize=(16, 2 * (2.9 * image_aspect + 0.9) + 0.6), layout="constrained", sharex=True, sharey=True
    )
    unit_square = ((0, 1), (0, 1))
    shares = [
        np.histogram2d(centres_y[chosen], centres_x[chosen], bins=bins, range=unit_square)[0] / max(chosen.sum(), 1)
        for _, chosen in panels
    ]
    norm = LogNorm(vmin=1e-4, vmax=max(1e-3, *(share.max() for share in shares)))
    for ax, (title, chosen), share in zip(axes.flat, panels, shares):
        image = ax.imshow(
            np.ma.masked_equal(share, 0), extent=(0, 1, 1, 0), aspect=image_aspect, cmap="mako_r", norm=norm
        )
        ax.set_title(f"{title} ({chosen.sum():,} boxes)", fontsize=10)
        ax.set(xlabel="cx / image width", ylabel="cy / image height")
        ax.grid(False)
        ax.label_outer()
    figure.colorbar(image, ax=axes, label="share of the panel's boxes per cell (log)", shrink=0.8)
    figure.suptitle("Normalised box centres (image coordinates: y grows downwards)")
    return figure


def plot_samples(
    image_root: str | Path, records: Sequence[dict], n: int = 12, seed: int = 0, columns: int = 4
) -> Figure:
    """A grid of `n` images drawn with `seed` (`sample_records`: every class shown when n allows), each
    box drawn and named in its class colour."""
    image_root = resolve(image_root)
    samples = sample_records(records, n, seed)
    rows = max(1, -(-len(samples) // columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(4 * columns, 2.6 * rows + 0.6), layout="constrained", squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, record in zip(axes.flat, samples):
        draw_record(ax, image_root, record)
    handles = [Patch(color=CLASS_COLOURS[name], label=name) for name in CLASSES]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(CLASSES), frameon=False)
    figure.suptitle(f"{len(samples)} sample images with their labelled boxes")
    return figure


def plot_split_distributions(splits: Mapping[str, Sequence[dict]]) -> Figure:
    """Class distribution per split side by side (e.g. raw train vs diet vs val).
    Left: objects per class (log axis). Right: share of the split's objects per class (%)."""
    table = split_class_table(splits)
    figure, (left, right) = plt.subplots(1, 2, figsize=(15, 5), layout="constrained", sharey=True)
    sns.barplot(table, y="class", x="objects", hue="split", orient="h", ax=left)
    _log_axis(left, "x")
    _label_bars(left)
    left.set(title="Objects per class", xlabel="objects (log scale)", ylabel="")
    left.margins(x=0.2)
    _plain_log_ticks(left.xaxis)
    sns.barplot(table, y="class", x="share", hue="split", orient="h", ax=right, legend=False)
    _label_bars(right, "{:.1f}")
    right.set(title="Share of the split's objects", xlabel="% of the split's objects", ylabel="")
    right.margins(x=0.12)
    handles, labels = left.get_legend_handles_labels()
    left.get_legend().remove()  # below both panels, where it hides no bar
    figure.legend(handles, labels, title="split", loc="outside lower center", ncols=len(labels), frameon=False)
    return figure


# ----------------------------------------------------------------------------- the diet set (notebook 02)


def report_totals(report: dict) -> pd.DataFrame:
    """Records and objects read / kept / dropped / repaired (boxes clipped to the image) by
    `drowsy.data.prepare.prepare_dataset`, from its report; read = kept + dropped."""
    totals = report["totals"]
    table = pd.DataFrame.from_dict(totals, orient="index").reindex(columns=["read", "kept", "dropped", "repaired"])
    return table.rename_axis("labelled").astype("Int64")  # records have no "repaired": shown as <NA>


def issues_frame(report: dict) -> pd.DataFrame:
    """Every record or object the preparation dropped, repaired or noted: record, file_name, field, reason, action."""
    return pd.DataFrame(report["issues"], columns=["record", "file_name", "field", "reason", "action"])


def plot_diet_rules(report_or_counts: Mapping, ax: Axes | None = None) -> Axes:
    """Train images kept by each diet rule (in the order the rules are tried), the images that reached
    the every-3rd mouth_opened rule (light bar behind it) and the train images dropped.

    report_or_counts: the report of `prepare_dataset`, or its `report["diet"]` part
    (`kept_by_rule`, `mouth_opened_candidates`, `dropped`), or a plain {rule: kept images} mapping.
    """
    diet = report_or_counts.get("diet", report_or_counts)
    kept = dict(diet.get("kept_by_rule", diet))
    names, images = list(kept), list(kept.values())
    colours = ["tab:blue"] * len(names)
    if "dropped" in diet:
        names.append("dropped (no rule, or not a 3rd)")
        images.append(diet["dropped"])
        colours.append("tab:grey")
    ax = _axes(ax, (10, 0.6 * len(names) + 1.5))
    candidates = diet.get("mouth_opened_candidates")
    if candidates is not None and "mouth_opened_every_3rd" in kept:
        at = names.index("mouth_opened_every_3rd")
        ax.barh(at, candidates, color="lightgrey", height=0.8, label=f"reached the rule ({candidates:,} images)")
    bars = ax.barh(range(len(names)), images, color=colours, height=0.6, label="images kept")
    ax.bar_label(bars, labels=[f"{value:,}" for value in images], padding=3, fontsize=8)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()  # first rule on top
    ax.margins(x=0.12)
    ax.xaxis.set_major_formatter(FuncFormatter(_plain_number))
    ax.set(title=f"Diet set: {sum(kept.values()):,} train images kept, by rule", xlabel="train images", ylabel="")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2, fontsize=8, frameon=False)
    return ax
