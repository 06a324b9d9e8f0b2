"""What a clip plays: a `Script` of truth events and the actions that animate them, and the storyline
script (blinks, yawns, phone use, smoking, a drowsy phase ending in a microsleep).

Actions are what the driver does, frame by frame (`drowsy.synth.clips.animate` draws them): "closure" (eyes
closed), "yawn", "syllable" (the mouth open for one syllable of talking, laughing or chewing; value:
gape), "eat" (a meal's span) and "bite" (a snack held over the mouth), "phone" (value: "ear" |
"hand"), "smoking" (cigarette in hand) and "puff" (at the mouth), "droop" (the slumped head of a
drowsy phase), "nod" (the head tipping in a microsleep), "glance" (the head turned; value: yaw, pitch
in degrees), "eye_glance" (the eyes alone turned, the head still: Euro NCAP's "lizard"; value: yaw,
pitch in degrees, pitch 0: the drawn iris travels across the eye), "rub" (a hand over one eye; value:
side), "sunglasses", "glare" (value: strength) and "out" (the face out of frame; value: side). The
truth events are what a monitor should report.
"""

import dataclasses

import numpy as np

from drowsy.monitor.events import Event

# Duration ranges in seconds of the storyline's events.
DURATIONS = {
    "blink": (0.1, 0.4),
    "microsleep": (1.3, 2.7),  # inside Euro NCAP's 1-3 s, clear of both ends
    "drowsy": (12.0, 75.0),  # 45-75 s where the clip allows (see DROWSY_WANTED), shorter in short clips
    "yawn": (1.5, 4.0),
    "phone": (5.0, 15.0),
    "smoking": (8.0, 20.0),
}
DROWSY_WANTED = (45.0, 75.0)  # long enough for PERCLOS over 60 s to pass 0.2; at most 45% of a clip
BLINK_EVERY = (2.0, 6.0)  # start to start of normal blinks
LONG_BLINK = (0.6, 0.85)  # eye closures inside a drowsy phase: longer than a blink, shorter than a microsleep
LONG_BLINK_GAP = (0.8, 2.2)  # eyes open between them
PUFF = (2.0, 4.0)  # while smoking: cigarette at the mouth ...
PUFF_PAUSE = (3.0, 6.0)  # ... then in the hand
# The protocol's time at which an event becomes conclusive, seconds after its start (data/monitor.yaml
# cites the sources); degraded: the deadline by which the driver must be told.
ONSET_S = {
    "microsleep": 1.0,
    "sleep": 3.0,
    "unresponsive": 6.0,
    "yawn": 1.0,
    "distraction": 3.0,
    "phone": 2.0,
    "smoking": 2.0,
    "degraded": 10.0,
}
TURN_S = 0.2  # a head turn (a glance) takes this long (30-60 degrees at 150-300 degrees/s), centred on
# the glance action's start and on its end
# The on-road region around straight ahead, degrees: the head beyond it is a glance away (the same
# region as data/monitor.yaml's defaults: yaw_limit, pitch_down_limit, pitch_up_limit).
ON_ROAD = {"yaw": 20.0, "pitch_down": 15.0, "pitch_up": 15.0}


@dataclasses.dataclass(frozen=True)
class Action:
    """Something the driver does over [start, end) seconds (kinds: the module docstring)."""

    kind: str
    start: float
    end: float
    value: object = None

    def covers(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclasses.dataclass(frozen=True)
class Script:
    """A clip's plan: truth events (by start), actions, and the stretches with no alert scripted."""

    events: list[Event]
    actions: list[Action]
    alert_free: list[tuple[float, float]] = dataclasses.field(default_factory=list)


def stamp(start: float, duration: float) -> tuple[float, float]:
    """(start, end) on a millisecond grid; the duration is rounded on its own so it stays in its range."""
    start = round(start, 3)
    return start, round(start + round(duration, 3), 3)


def truth_event(kind: str, start: float, end: float, alert: float | None = None) -> Event:
    """A truth event; its alert time is the protocol's (`ONSET_S`) unless given."""
    if alert is None and kind in ONSET_S:
        alert = round(start + ONSET_S[kind], 3)
    return Event(kind, start, end, alert)


def away_interval(glance: Action) -> tuple[float, float]:
    """When a glance (of the head or the eyes) is beyond the on-road region (`ON_ROAD`): it crosses the
    edge part of the way through the turn that begins TURN_S / 2 before the glance's start (and back
    likewise)."""
    yaw, pitch = glance.value
    reach = max(abs(yaw) / ON_ROAD["yaw"], pitch / ON_ROAD["pitch_down"], -pitch / ON_ROAD["pitch_up"])
    early = TURN_S / 2 - TURN_S / max(reach, 1.0)
    return round(glance.start - early, 3), round(glance.end + early, 3)


def free(t0: float, t1: float, busy) -> bool:
    return all(t1 <= e.start or t0 >= e.end for e in busy)


def plan_events(seconds: float, seed: int) -> tuple[list[Event], list[Event]]:
    """The storyline: (events sorted by start, eye closures of the drowsy phases, typed "long_blink").

    A storyline of phone use, smoking and one drowsy phase (ending in a microsleep), in random
    order with plain driving between; then yawns where the mouth is free; then normal blinks
    everywhere the eyes are not already scripted. What does not fit in `seconds` is left out.
    """
    rng = np.random.default_rng([seed, 1])
    activities: list[Event] = []
    t = rng.uniform(1.0, 3.0)
    for kind in rng.permutation(["phone", "smoking", "drowsy"]).tolist():
        t += rng.uniform(3.0, 8.0)
        low, high = DURATIONS[kind]
        duration = min(rng.uniform(*DROWSY_WANTED), 0.45 * seconds) if kind == "drowsy" else rng.uniform(low, high)
        if duration < low or t + duration > seconds - 1.0:
            continue
        activities.append(truth_event(kind, *stamp(t, duration)))
        t += duration
    closures: list[Event] = []  # inside drowsy phases: long blinks, then the microsleep at the end
    for phase in [e for e in activities if e.type == "drowsy"]:
        asleep = round(rng.uniform(*DURATIONS["microsleep"]), 3)
        sleep = truth_event("microsleep", round(phase.end - asleep, 3), phase.end)
        activities.append(sleep)
        t = phase.start + rng.uniform(*LONG_BLINK_GAP)
        while True:
            closure = Event("long_blink", *stamp(t, rng.uniform(*LONG_BLINK)))
            if closure.end + LONG_BLINK_GAP[0] > sleep.start:
                break
            closures.append(closure)
            t = closure.end + rng.uniform(*LONG_BLINK_GAP)
    events = activities + _plan_yawns(rng, seconds, activities) + plan_blinks(rng, seconds, activities)
    return sorted(events, key=lambda e: (e.start, e.type)), closures


def _plan_yawns(rng: np.random.Generator, seconds: float, activities: list[Event]) -> list[Event]:
    """Up to two yawns in each drowsy phase and one elsewhere, never while phoning, smoking or asleep."""
    busy = [e for e in activities if e.type != "drowsy"]
    windows = [(e.start, e.end, 2) for e in activities if e.type == "drowsy"] + [(0.0, seconds, 1)]
    yawns: list[Event] = []
    for start, end, wanted in windows:
        placed = 0
        for _ in range(20 * wanted):  # a few random tries per wanted yawn
            yawn = truth_event("yawn", *stamp(rng.uniform(start, end), rng.uniform(*DURATIONS["yawn"])))
            if yawn.end <= end and free(yawn.start - 1.0, yawn.end + 1.0, busy + yawns):
                yawns.append(yawn)
                placed += 1
                if placed == wanted:
                    break
    return yawns


def plan_blinks(rng: np.random.Generator, seconds: float, busy: list) -> list[Event]:
    """Normal blinks every 2-6 s, 0.5 s clear of everything in `busy` (events or actions)."""
    busy = [e for e in busy if getattr(e, "type", None) not in ("yawn", "phone", "smoking")]
    blinks, t = [], rng.uniform(0.5, BLINK_EVERY[1])
    while t < seconds:
        blink = Event("blink", *stamp(t, rng.uniform(*DURATIONS["blink"])))
        if blink.end <= seconds and free(blink.start - 0.5, blink.end + 0.5, busy):
            blinks.append(blink)
        t += rng.uniform(*BLINK_EVERY)
    return blinks


def story_script(seconds: float, seed: int, room_below: float) -> Script:
    """The storyline as a Script. room_below: face heights free under the face (a phone held in front
    of the chest needs 0.8)."""
    events, closures = plan_events(seconds, seed)
    rng = np.random.default_rng([seed, 2])
    actions = [
        Action("closure", e.start, e.end) for e in events + closures if e.type in ("blink", "microsleep", "long_blink")
    ]
    for event in events:
        if event.type == "yawn":
            actions.append(Action("yawn", event.start, event.end))
        elif event.type == "phone":
            mode = str(rng.choice(["ear", "hand"])) if room_below >= 0.8 else "ear"
            actions.append(Action("phone", event.start, event.end, mode))
        elif event.type == "smoking":
            actions += [Action("smoking", event.start, event.end)] + puffs(rng, event.start, event.end)
        elif event.type == "drowsy":
            actions.append(Action("droop", event.start, event.end))
        elif event.type == "microsleep":
            actions.append(Action("nod", event.start, event.end))
    return Script(events, actions)


def puffs(rng: np.random.Generator, start: float, end: float) -> list[Action]:
    """While smoking: intervals with the cigarette at the mouth (in the hand between them)."""
    actions, t = [], start + rng.uniform(0.0, 1.0)
    while t < end:
        puff = Action("puff", *stamp(t, rng.uniform(*PUFF)))
        actions.append(puff)
        t = puff.end + rng.uniform(*PUFF_PAUSE)
    return actions
