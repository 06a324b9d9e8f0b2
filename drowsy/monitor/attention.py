"""Attention over time: visual attention time sharing (VATS, many short glances away) and the staged
alert ladder (pre-alert, prompt, final alert). numpy-free, used by the state machine.

VATS (Euro NCAP): glances away from the road adding up to `total_s` (10 s) within `window_s` (30 s);
the sum restarts once the eyes have been back on the road for `reset_s` (2 s) continuously. A VATS
event runs from the start of its sequence's first glance to the end of its last one.

The ladder (in the spirit of openpilot's driver monitoring): every live alert has a level (1 pre-alert,
2 prompt, 3 final alert). Alerts that ask the driver to act (distraction, VATS, phone, microsleep,
sleep, unresponsive) escalate while they last: one level up after `prompt_after_s`, the final alert
after `final_after_s` from the first alert. When they end, the level holds until the driver has been
attentive (eyes seen, open, on the road) for `recovery_s`, then drops to that of the advisories still
on (drowsy, yawn, smoking, degraded: 1) or to 0; within `cooldown_s` after that, a new alert starts at
the level the last one reached, so a driver who looks away again at once is not led up the ladder
from its first step again.
"""

from drowsy.monitor.events import Event

LEVELS = {
    "microsleep": 1,
    "drowsy": 1,
    "yawn": 1,
    "distraction": 1,
    "vats": 1,
    "phone": 1,
    "smoking": 1,
    "degraded": 1,
    "sleep": 2,
    "unresponsive": 3,
}
ESCALATING = ("microsleep", "sleep", "unresponsive", "distraction", "vats", "phone")
LEVEL_NAMES = ("none", "pre-alert", "prompt", "final alert")


class Vats:
    """Glances away (runs of the eyes-off-road signal) -> VATS events, and the live VATS alert."""

    def __init__(self, total_s: float, window_s: float, reset_s: float, eps: float):
        self.total_s, self.window_s, self.reset_s, self.eps = total_s, window_s, reset_s, eps
        self.glances: list[list[float]] = []  # [start, end] of the sequence's glances, the last one may be open
        self.alert: float | None = None  # when the sequence became conclusive

    def update(self, time_s: float, step_s: float, run: list[float] | None, ended: tuple | None) -> Event | None:
        """Feed one frame: `run` = the off-road run in progress ([start, end] or None), `ended` = a run
        that ended at this frame. Returns a VATS event when a conclusive sequence ends."""
        for glance in (ended, run):
            if glance is None:
                continue
            if self.glances and glance[0] <= self.glances[-1][0] + self.eps:
                self.glances[-1] = list(glance[:2])  # the same glance, grown
            else:
                self.glances.append(list(glance[:2]))
        if not self.glances:
            return None
        now = time_s + step_s / 2
        if run is None and now - self.glances[-1][1] >= self.reset_s - self.eps:
            return self._finish()
        if self.alert is None and self._away(now) >= self.total_s - self.eps:
            self.alert = time_s
        return None

    def _away(self, now: float) -> float:
        low = now - self.window_s
        return sum(max(end - max(start, low), 0.0) for start, end in self.glances)

    def _finish(self) -> Event | None:
        glances, alert = self.glances, self.alert
        self.glances, self.alert = [], None
        return Event("vats", glances[0][0], glances[-1][1], alert) if alert is not None else None

    def finish(self) -> Event | None:
        """End of stream: the sequence in progress, if it was conclusive."""
        return self._finish() if self.glances else None

    @property
    def on_now(self) -> bool:
        return self.alert is not None


class AlertLadder:
    """The alert level (0-3) from the live alerts, frame by frame (see the module docstring)."""

    def __init__(self, prompt_after_s: float, final_after_s: float, recovery_s: float, cooldown_s: float):
        self.prompt_after_s, self.final_after_s = prompt_after_s, final_after_s
        self.recovery_s, self.cooldown_s = recovery_s, cooldown_s
        self.level = 0
        self.since: float | None = None  # when the escalating alert in progress first fired
        self.attentive_since: float | None = None
        self.last_level, self.cooldown_until = 0, -1.0

    def update(self, time_s: float, alerts: tuple[str, ...], attentive: bool) -> int:
        advisory = max((LEVELS.get(kind, 1) for kind in alerts), default=0)
        if any(kind in ESCALATING for kind in alerts):
            self.attentive_since = None
            if self.since is None:
                self.since = time_s
                if time_s <= self.cooldown_until:  # a repeat within the cool-down resumes where the last one was
                    advisory = max(advisory, self.last_level)
            held = time_s - self.since
            level = max(advisory, 1 + (held >= self.prompt_after_s) + (held >= self.final_after_s))
            self.level = max(self.level, min(level, 3))
            return self.level
        self.since = None
        if self.level <= advisory:  # only advisories (drowsy, yawn, smoking, degraded) or nothing
            self.level = advisory
        elif attentive:
            self.attentive_since = time_s if self.attentive_since is None else self.attentive_since
            if time_s - self.attentive_since >= self.recovery_s:
                self.last_level, self.cooldown_until = self.level, time_s + self.cooldown_s
                self.level, self.attentive_since = advisory, None
        else:
            self.attentive_since = None
        return self.level
