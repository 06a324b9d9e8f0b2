"""Scripts that exercise the driver-monitoring protocol (Euro NCAP's driver-state tests; data/monitor.yaml
cites the thresholds) and long stretches of alert driving.

`protocol_script`: after a few seconds of plain driving (the gaze baseline's first samples), scripted
items one after another with 4-7 s of plain driving between them, each item once per round in a random
order: head turns ("owl" glances) towards the protocol's gaze locations for 1.5-2.3 s (must NOT alert),
3.3-5 s (a distraction) and 6.5-8 s (an unresponsive driver); eyes-only ("lizard") glances, the
head still, 27-35 degrees towards a mirror or a side window for 1.5-2.3 s (no alert) and 3.3-5 s (a
distraction); VATS sequences (glances of 1.3-2.3 s
with 0.6-1.5 s on the road between them, adding up to 10.5-12 s); eye closures of 1.3-2.7 s
(microsleep), 3.4-5.5 s (sleep) and 6.5-8.5 s (unresponsive); a yawn; talking and laughing (the mouth
moving, no yawn); eating (bites of a snack held to the mouth, chewing between them); eye rubbing (a
hand over one eye); phone use; smoking; and degraded monitoring:
sunglasses, a glare over the eyes, the face out of frame (10.5-14 s). Blinks in the plain stretches.

`alert_script`: alert driving and nothing to alert on: blinks, mirror checks (0.4-1.5 s glances at
least 6 s apart, 4 in 10 with the eyes alone), talking, laughing, eating, eye rubbing; the whole
clip is an alert-free stretch.
"""

import numpy as np

from drowsy.synth.clips.script import Action, Script, away_interval, plan_blinks, puffs, stamp, truth_event
from drowsy.synth.scene import GAZE_POSES

GAZE_TARGETS = {name: pose for name, pose in GAZE_POSES.items() if name != "ahead"}  # the protocol's locations
MIRRORS = ("left side mirror", "rear-view mirror", "right side mirror")
ITEMS = (
    "glance",
    "distraction",
    "unresponsive_gaze",
    "eye_glance",
    "eye_distraction",
    "vats",
    "microsleep",
    "sleep",
    "unresponsive_eyes",
    "yawn",
    "talk",
    "laugh",
    "eat",
    "rub",
    "phone",
    "smoking",
    "sunglasses",
    "glare",
    "out",
)
LEAD_S = 6.0  # plain driving before the first item
GAP_S = (4.0, 7.0)  # plain driving between items
EYE_YAW = (27.0, 35.0)  # eyes-only glances: clear of the 20 degree on-road edge, within the eyes' easy range


def protocol_script(seconds: float, seed: int) -> Script:
    """Rounds of every protocol item, each round in its own random order, until `seconds` is used up
    (module docstring)."""
    rng = np.random.default_rng([seed, 5])
    events, actions, t = [], [], LEAD_S
    for item in _rounds(rng):
        item_events, item_actions, end = _item(item, t, rng)
        if end > seconds - 1.0:
            break
        events += item_events
        actions += item_actions
        t = end + rng.uniform(*GAP_S)
    blinks = plan_blinks(rng, seconds, actions)
    actions += [Action("closure", b.start, b.end) for b in blinks]
    return Script(sorted(events + blinks, key=lambda e: (e.start, e.type)), actions)


def _rounds(rng: np.random.Generator):
    while True:
        yield from rng.permutation(ITEMS).tolist()


def _item(item: str, t: float, rng: np.random.Generator) -> tuple[list, list[Action], float]:
    """(truth events, actions, end time) of one protocol item starting at `t`."""
    if item in ("glance", "distraction", "unresponsive_gaze"):
        low, high = {"glance": (1.5, 2.3), "distraction": (3.3, 5.0), "unresponsive_gaze": (6.5, 8.0)}[item]
        start, end = stamp(t, rng.uniform(low, high))
        glance = Action("glance", start, end, _target(rng))
        kind = {"distraction": "distraction", "unresponsive_gaze": "unresponsive"}.get(item)
        return ([truth_event(kind, *away_interval(glance))] if kind else []), [glance], end
    if item in ("eye_glance", "eye_distraction"):
        start, end = stamp(t, rng.uniform(*((1.5, 2.3) if item == "eye_glance" else (3.3, 5.0))))
        glance = Action("eye_glance", start, end, (float(rng.choice([-1, 1]) * rng.uniform(*EYE_YAW)), 0.0))
        events = [truth_event("distraction", *away_interval(glance))] if item == "eye_distraction" else []
        return events, [glance], end
    if item == "vats":
        return _vats(t, rng)
    if item in ("microsleep", "sleep", "unresponsive_eyes"):
        low, high = {"microsleep": (1.3, 2.7), "sleep": (3.4, 5.5), "unresponsive_eyes": (6.5, 8.5)}[item]
        start, end = stamp(t, rng.uniform(low, high))
        kind = "unresponsive" if item == "unresponsive_eyes" else item
        return [truth_event(kind, start, end)], [Action("closure", start, end), Action("nod", start, end)], end
    if item in ("talk", "laugh"):
        start, end = stamp(t, rng.uniform(*((3.0, 8.0) if item == "talk" else (1.5, 3.0))))
        return [], syllables(rng, start, end, item), end
    if item == "eat":
        start, end = stamp(t, rng.uniform(8.0, 14.0))
        return [], meal(rng, start, end), end
    low, high = {"yawn": (1.5, 4.0), "rub": (1.5, 2.5), "phone": (5.0, 10.0), "smoking": (8.0, 15.0)}.get(
        item, (10.5, 14.0)
    )
    start, end = stamp(t, rng.uniform(low, high))
    side = int(rng.choice([-1, 1]))
    value = {"rub": side, "out": side, "glare": float(rng.uniform(0.7, 1.0)), "phone": "ear"}.get(item)
    actions = [Action(item, start, end, value)]
    if item == "smoking":
        actions += puffs(rng, start, end)
    kind = "degraded" if item in ("sunglasses", "glare", "out") else None if item == "rub" else item
    return ([truth_event(kind, start, end)] if kind else []), actions, end


def _target(rng: np.random.Generator, names=tuple(GAZE_TARGETS)) -> tuple[float, float]:
    """A gaze location's (yaw, pitch), varied by a few degrees."""
    yaw, pitch = GAZE_TARGETS[names[int(rng.integers(len(names)))]]
    return float(yaw + rng.uniform(-5, 5)), float(pitch + rng.uniform(-4, 4))


def _vats(t: float, rng: np.random.Generator) -> tuple[list, list[Action], float]:
    """Glances of 1.3-2.4 s, 0.6-1.5 s on the road between them, until 10.5-12 s away in all; the
    truth's alert time is where the time away (`away_interval`) reaches 10 s."""
    wanted, away, alert, actions = rng.uniform(10.5, 12.0), 0.0, None, []
    while away < wanted:
        duration = rng.uniform(1.3, 2.3)
        if away < 10.0 and away + duration > 9.4:  # 10 s is reached 0.6 s or more inside a glance,
            need = 10.0 - away  # and 0.5 s or more before its end: a monitor measuring each glance a
            duration = min(duration, 9.4 - away) if 9.4 - away >= 1.3 else max(need + 0.5, 1.3)
        start, end = stamp(t, duration)  # few frames long or short does not move its alert by a glance
        glance = Action("glance", start, end, _target(rng))
        actions.append(glance)
        away_start, away_end = away_interval(glance)
        if alert is None and away + (away_end - away_start) >= 10.0:
            alert = round(away_start + 10.0 - away, 3)
        away += away_end - away_start
        t = end + rng.uniform(0.6, 1.5)
    first, last = away_interval(actions[0])[0], away_interval(actions[-1])[1]
    return [truth_event("vats", first, last, alert)], actions, actions[-1].end


# Mouth movements per kind: (seconds open, gape, seconds closed between); never as wide as a yawn (gape >= 0.7).
SYLLABLES = {
    "talk": ((0.1, 0.25), (0.12, 0.3), (0.08, 0.2)),
    "laugh": ((0.2, 0.45), (0.25, 0.33), (0.05, 0.15)),
    "chew": ((0.15, 0.3), (0.08, 0.18), (0.1, 0.25)),
}
BITE_S = (0.6, 1.2)  # eating: a snack held to the mouth ...
CHEW_S = (1.5, 3.5)  # ... then chewing


def syllables(rng: np.random.Generator, start: float, end: float, kind: str) -> list[Action]:
    """Mouth openings of talking, laughing or chewing (`SYLLABLES`)."""
    opened, gape, closed = SYLLABLES[kind]
    actions, t = [], start
    while t < end:
        a, b = stamp(t, rng.uniform(*opened))
        actions.append(Action("syllable", a, min(b, end), float(rng.uniform(*gape))))
        t = b + rng.uniform(*closed)
    return actions


def meal(rng: np.random.Generator, start: float, end: float) -> list[Action]:
    """Eating over [start, end): an "eat" span of bites (a hand holding a snack over the mouth), each
    followed by chewing (`SYLLABLES["chew"]`)."""
    actions, t = [Action("eat", start, end)], start
    while t < end:
        a, b = stamp(t, rng.uniform(*BITE_S))
        actions.append(Action("bite", a, min(b, end)))
        chew_end = min(b + rng.uniform(*CHEW_S), end)
        actions += syllables(rng, b + 0.1, chew_end, "chew")
        t = chew_end + 0.1
    return actions


def alert_script(seconds: float, seed: int) -> Script:
    """Alert driving (module docstring): no alert scripted anywhere."""
    rng = np.random.default_rng([seed, 6])
    actions, t = [], rng.uniform(3.0, 8.0)
    while t < seconds - 10.0:
        choice = rng.random()
        if choice < 0.55:
            start, end = stamp(t, rng.uniform(0.4, 1.5))
            yaw, pitch = _target(rng, MIRRORS)
            if rng.random() < 0.4:  # the eyes alone (a mirror within their reach): horizontal, at most 35 degrees
                actions.append(Action("eye_glance", start, end, (float(np.clip(yaw, -EYE_YAW[1], EYE_YAW[1])), 0.0)))
            else:
                actions.append(Action("glance", start, end, (yaw, pitch)))
        elif choice < 0.75:
            start, end = stamp(t, rng.uniform(3.0, 10.0))
            actions += syllables(rng, start, end, "talk")
        elif choice < 0.84:
            start, end = stamp(t, rng.uniform(1.0, 3.0))
            actions += syllables(rng, start, end, "laugh")
        elif choice < 0.92:
            start, end = stamp(t, rng.uniform(4.0, 10.0))
            actions += meal(rng, start, end)
        else:
            start, end = stamp(t, rng.uniform(1.0, 2.5))
            actions.append(Action("rub", start, end, int(rng.choice([-1, 1]))))
        t = end + rng.uniform(6.0, 20.0)
    blinks = plan_blinks(rng, seconds, [a for a in actions if a.kind != "syllable"])
    actions += [Action("closure", b.start, b.end) for b in blinks]
    return Script(blinks, actions, [(0.0, float(seconds))])
