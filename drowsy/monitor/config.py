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
        if not 0 <= self.min_score < 1:
            yield "min_score", f"must be in [0, 1), got {self.min_score}"
        for field in dataclasses.fields(self):
            if field.name.endswith("_s") and getattr(self, field.name) < 0:
                yield field.name, f"must be >= 0 seconds, got {getattr(self, field.name)}"
        closures = ("min_state_s", "blink_max_s", "microsleep_s", "sleep_s", "unresponsive_s")
        for low, high in zip(closures, closures[1:]):
            if getattr(self, low) > getattr(self, high):
                yield low, f"need {' <= '.join(closures)}, got {', '.join(str(getattr(self, n)) for n in closures)}"
        if not self.distraction_s <= self.unresponsive_s:
            yield "distraction_s", f"need distraction_s <= unresponsive_s, got {self.distraction_s} and {self.unresponsive_s}"
        if not 0 < self.off_road_off <= 1:
            yield "off_road_off", f"must be in (0, 1], got {self.off_road_off}"
        for field in ("yaw_limit", "pitch_down_limit", "pitch_up_limit"):
            if not 0 < getattr(self, field) < 90:
                yield field, f"must be in (0, 90) degrees, got {getattr(self, field)}"
        if not 0 < self.gaze_min_baseline_s <= self.gaze_baseline_s:
            yield "gaze_min_baseline_s", (f"need 0 < gaze_min_baseline_s <= gaze_baseline_s, got "
                                          f"{self.gaze_min_baseline_s} and {self.gaze_baseline_s}")
        if not self.prompt_after_s <= self.final_after_s:
            yield "prompt_after_s", f"need prompt_after_s <= final_after_s, got {self.prompt_after_s} and {self.final_after_s}"
        if not 0 < self.perclos_min_window_s <= self.perclos_window_s:
            yield "perclos_min_window_s", (f"need 0 < perclos_min_window_s <= perclos_window_s, got "
                                           f"{self.perclos_min_window_s} and {self.perclos_window_s}")
