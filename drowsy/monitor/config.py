"""`MonitorConfig`: the thresholds of the driver-state monitor, read from data/monitor.yaml and checked."""

import dataclasses

from drowsy.config import Params
from drowsy.errors import DrowsyError


@dataclasses.dataclass(frozen=True)
class MonitorConfig(Params):
    """Thresholds of the driver-state monitor (data/monitor.yaml cites the source of each default).

    Scores are in [0, 1], durations and windows in seconds. Per signal, `*_on` / `*_off` are the
    hysteresis thresholds of its per-frame score and `*_max_gap_s` the longest dropout that does not
    end a run of it.
    """

    min_score: float = 0.05
    min_state_s: float = 0.1
    eyes_closed_on: float = 0.6
    eyes_closed_off: float = 0.4
    eyes_max_gap_s: float = 0.2
    blink_max_s: float = 0.5
    microsleep_s: float = 2.0
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
    phone_on: float = 0.5
    phone_off: float = 0.3
    phone_max_gap_s: float = 1.0
    phone_min_s: float = 2.0
    cigarette_on: float = 0.5
    cigarette_off: float = 0.3
    cigarette_max_gap_s: float = 1.5
    smoking_min_s: float = 2.0

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
        if not 0 <= self.min_score < 1:
            yield "min_score", f"must be in [0, 1), got {self.min_score}"
        for field in dataclasses.fields(self):
            if field.name.endswith("_s") and getattr(self, field.name) < 0:
                yield field.name, f"must be >= 0 seconds, got {getattr(self, field.name)}"
        if not self.min_state_s <= self.blink_max_s <= self.microsleep_s:
            yield "blink_max_s", (f"need min_state_s <= blink_max_s <= microsleep_s, got {self.min_state_s}, "
                                  f"{self.blink_max_s}, {self.microsleep_s}")
        if not 0 < self.perclos_min_window_s <= self.perclos_window_s:
            yield "perclos_min_window_s", (f"need 0 < perclos_min_window_s <= perclos_window_s, got "
                                           f"{self.perclos_min_window_s} and {self.perclos_window_s}")
