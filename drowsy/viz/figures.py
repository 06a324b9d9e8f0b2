"""Figure helpers every notebook shares: the plot style, one colour per class, a labelled image drawn
with its boxes, and saving a figure where the notebooks keep them (`out_dir/figures/<name>.png`)."""

from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from drowsy import CLASSES
from drowsy.data.meta import english_name
from drowsy.files import read_gray
from drowsy.paths import resolve

# One colour per class, the same in every plot and on every drawn box.
CLASS_COLOURS = dict(zip(CLASSES, sns.color_palette("tab10", len(CLASSES))))


def set_plot_style() -> None:
    """The notebooks' look: seaborn's theme (no downloads: default DejaVu fonts), and tables printed
    as text (headless logs) up to 160 characters wide instead of wrapped at 80."""
    sns.set_theme(style="whitegrid", context="notebook")
    pd.set_option("display.width", 160)


def save_figure(figure: Figure | Axes, out_dir: str | Path, name: str) -> Path:
    """Write `out_dir/figures/<name>.png` and return its path."""
    figure = figure.figure if isinstance(figure, Axes) else figure
    path = resolve(out_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    return path


def draw_record(ax: Axes, image_root: Path, record: dict) -> None:
    """Draw a record's image (grayscale) on `ax` with its objects' boxes in their class colours, each class
    named once (at its first box: side-by-side eyes' labels would overlap; the colour names the rest), and
    the file name wrapped to the panel's width as its title; predictions draw the same way."""
    ax.imshow(read_gray(Path(image_root) / record["file_name"]), cmap="gray", vmin=0, vmax=255)
    named = set()
    for obj in record["objects"]:
        x1, y1, x2, y2 = obj["position"]
        colour = CLASS_COLOURS[obj["class"]]
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.5))
        if obj["class"] not in named:
            named.add(obj["class"])
            ax.text(
                x1,
                y1,
                obj["class"],
                fontsize=7,
                color="white",
                va="bottom",
                bbox={"facecolor": colour, "edgecolor": "none", "pad": 1},
            )
    ax.set_title(wrapped(english_name(record["file_name"])), fontsize=8)


def wrapped(name: str, width: int = 42) -> str:
    """A long file name in lines of at most `width` characters, broken after its underscores (a panel's
    title that runs into its neighbour's otherwise)."""
    lines = [""]
    for part in name.replace("_", "_\0").split("\0"):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines)
