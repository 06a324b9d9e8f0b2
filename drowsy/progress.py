"""Progress for long work: a tqdm bar where someone watches (a terminal, a Jupyter front end), one
closing line per stage in logs (a redirected run, `./run_all.sh`, `DROWSY_PROGRESS=lines`).

A bar refreshed in a log becomes hundreds of lines (papermill's `--log-output` relays every refresh),
so in line mode a stage prints once, when it ends: `synth: 3,000 img in 10.4 s (288 img/s)`.
"""

import os
import sys
import time

from tqdm.auto import tqdm

MODES = ("auto", "bars", "lines")


def bars_wanted() -> bool:
    """True where a bar is watched: DROWSY_PROGRESS=bars, or (auto) stderr is a terminal or this is a
    Jupyter kernel; papermill runs started by run_all.sh set DROWSY_PROGRESS=lines."""
    mode = os.environ.get("DROWSY_PROGRESS", "auto")
    if mode not in MODES:
        raise ValueError(f"DROWSY_PROGRESS must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "auto":
        return mode == "bars"
    return sys.stderr.isatty() or "ipykernel" in sys.modules


class _StageLine:
    """The part of tqdm's interface the package uses, printing one line when the stage ends."""

    def __init__(self, iterable, desc: str, unit: str, line: bool):
        self.iterable, self.desc, self.unit, self.line = iterable, desc, unit, line
        self.n, self.postfix, self.started = 0, "", time.perf_counter()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.n += 1
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, values: dict) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if self.line:
            self.line = False  # once
            seconds = time.perf_counter() - self.started
            rate = f" ({self.n / seconds:,.0f} {self.unit}/s)" if seconds > 0 and self.n else ""
            postfix = f" [{self.postfix}]" if self.postfix else ""
            tqdm.write(f"{self.desc}: {self.n:,} {self.unit} in {seconds:.1f} s{rate}{postfix}")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(
    iterable=None, *, desc: str, total: int | None = None, unit: str = "it", enabled: bool = True, leave: bool = True
):
    """A progress bar over `iterable` (or one to `update` by hand, with `total`).

    enabled: False shows nothing (e.g. on DDP ranks other than 0). leave: False for inner stages whose
    caller logs its own summary (an epoch's batches): their bar vanishes and line mode prints nothing.
    """
    if not enabled:
        return _StageLine(iterable if iterable is not None else (), desc, unit, line=False)
    if bars_wanted():
        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave)
    return _StageLine(iterable if iterable is not None else (), desc, unit, line=leave)


def log(message: str, file=None) -> None:
    """One line of progress information (to stdout, or `file`), printed cleanly beside any bar."""
    tqdm.write(message, file=file)
