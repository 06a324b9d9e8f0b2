"""One in-cabin driver scene, drawn: cabin clutter, body, face, eyes, mouth, hands, phone, cigarette.

`render_scene` turns a `SceneState` into a grey image and its labelled boxes; the lighting
gradient, blur and sensor noise come last (`_finish`).
"""

from statistics import NormalDist

import cv2
import numpy as np

from drowsy.synth.canvas import Box, Canvas, Frame, capsule, ellipse, inside_ellipse, ribbon, rounded_rect, union
from drowsy.synth.scene import Identity, SceneState, identity, props, sample_scene

_GAUSS_QUANTILES = np.array([NormalDist().inv_cdf((k + 0.5) / 256) for k in range(256)], np.float32)


# How far in front of the head's axis of turn the features sit, face units (drawn head turns: `Frame.turned`)
DEPTHS = {"eyes": 0.27, "nose": 0.4, "mouth": 0.3, "hand": 0.38}

# Owner ids of the traced parts (tests check their boxes against the pixels they own).
# how far an iris moves from the eye's centre at full gaze (state.gaze = +-1), in eye widths and heights:
# 0.24 widths is a 12 mm eyeball radius turned about 35 degrees inside a 30 mm wide eye (`gaze.EYE_RADIUS`)
IRIS_TRAVEL = (0.24, 0.08)
OWNERS = {"face": 0, "eye_left": 1, "eye_right": 2, "mouth": 3, "phone": 4, "cigar": 5}


def _draw_cabin(canvas: Canvas, state: SceneState, body: Frame) -> None:
    """Background clutter: roof, window with scenery, pillar, headrest, seat back."""
    rng = np.random.default_rng(state.clutter_seed)
    w, h = canvas.width, canvas.height
    canvas.pixels[:] = round(rng.uniform(35, 110))
    side = rng.choice([-1, 1])
    edge = w * rng.uniform(0.12, 0.3)
    x_in = edge if side < 0 else w - edge  # inner border of the side window
    x_out = -2 if side < 0 else w + 2
    top, bottom = h * rng.uniform(0.05, 0.2), h * rng.uniform(0.45, 0.75)
    window = np.array([[x_out, top], [x_in, top + 0.1 * h], [x_in + side * 0.1 * w, bottom], [x_out, bottom]])
    canvas.paint([window], rng.uniform(130, 235))
    for _ in range(rng.integers(2, 5)):  # outside scenery: trees, buildings
        sx, sy = rng.uniform(min(x_in, x_out), max(x_in, x_out)), rng.uniform(top, bottom)
        canvas.paint([ellipse(sx, sy, rng.uniform(5, 0.1 * w), rng.uniform(5, 0.1 * h))], rng.uniform(60, 250))
    pillar_x = x_in + side * 0.02 * w
    canvas.paint(
        [capsule(np.array([pillar_x, -10]), np.array([pillar_x + side * 0.12 * w, h + 10]), 0.03 * w)],
        rng.uniform(15, 60),
    )
    canvas.paint([np.array([[-2, -2], [w + 2, -2], [w + 2, top * 0.7], [-2, top * 0.5]])], rng.uniform(20, 70))
    seat_tone = rng.uniform(35, 120)
    sx, sy = state.seat
    canvas.paint([rounded_rect(sx, h * 1.1, body.scale * 2.4, 1.4 * h, 0.2 * body.scale)], seat_tone * 0.85)
    canvas.paint([rounded_rect(sx, sy, body.scale * 0.95, body.scale * 0.55, body.scale * 0.15)], seat_tone)


def _draw_body(canvas: Canvas, ident: Identity, state: SceneState, body: Frame) -> None:
    """Hair (behind the face), shoulders, seat belt and neck; `body` is the unrolled face frame."""
    head = _head_frame(state)
    half = ident.aspect / 2
    if ident.hair_long:
        canvas.paint([head.place(rounded_rect(0, 0.1, 2 * half + 0.22, 1.1, 0.3))], ident.hair)
    canvas.paint([head.place(ellipse(0, -0.06, half + 0.07, 0.58))], ident.hair)
    torso = np.array([[-0.2, 0.62], [0.2, 0.62], [1.1, 0.85], [1.35, 3.0], [-1.35, 3.0], [-1.1, 0.85]])
    canvas.paint([body.place(torso)], ident.shirt)
    belt = np.array([[ident.belt_side * 0.95, 0.8], [-ident.belt_side * 0.6, 3.0]])
    canvas.paint([body.place(ribbon(belt, 0.16))], ident.belt)
    canvas.paint([body.place(np.array([[-0.17, 0.2], [0.17, 0.2], [0.19, 0.72], [-0.19, 0.72]]))], ident.skin * 0.72)


def _head_frame(state: SceneState) -> Frame:
    return Frame((state.face_x, state.face_y), state.face_height, state.roll)


def _draw_face(canvas: Canvas, ident: Identity, state: SceneState, head: Frame) -> Box | None:
    """Face ellipse with radial shading and side light, brows, nose (turned with the head's yaw and
    pitch; the outline is not); returns the face box."""
    light = np.deg2rad(state.light_angle)
    ax, ay = ident.aspect / 2 * head.scale, 0.5 * head.scale
    fx, fy = head.origin

    def shading(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx, dy = (x - fx) / ax, (y - fy) / ay
        return ident.skin * (1.0 - 0.22 * (dx * dx + dy * dy) + 0.12 * (dx * np.cos(light) + dy * np.sin(light)))

    box = canvas.paint([head.place(ellipse(0, 0, ident.aspect / 2, 0.5, n=64))], shading, owner=OWNERS["face"])
    brows, nose_frame = _turned(head, state, "eyes"), _turned(head, state, "nose")
    brow_y = ident.eye_level - ident.eye_height * 0.5 - 0.06
    for side in (-1, 1):
        brow = ellipse(side * ident.eye_spacing / 2, brow_y + 0.05, ident.eye_width * 0.62, 0.06, 200, 340, 12)
        canvas.paint([brows.place(ribbon(brow, max(0.022, head.px(2.0))))], ident.brow)
        canvas.paint([nose_frame.place(ellipse(side * 0.04, 0.13, 0.022, 0.012, n=16))], ident.skin * 0.35)  # nostril
    nose = ribbon(ellipse(0, 0.07, 0.06, 0.05, 30, 150, 12), max(0.012, head.px(1.5)))
    canvas.paint([nose_frame.place(nose)], ident.skin * 0.8)
    return box


def _turned(head: Frame, state: SceneState, part: str) -> Frame:
    """The head frame for a part of the face, turned by the state's yaw and pitch (`DEPTHS`)."""
    return head.turned(state.yaw, state.pitch, DEPTHS[part]) if state.yaw or state.pitch else head


def _draw_eye(canvas: Canvas, ident: Identity, state: SceneState, head: Frame, side: int) -> Box | None:
    """One eye: bright sclera, iris, pupil, glint, lash line (open) or lid and lash arc (closed)."""
    owner = OWNERS["eye_left" if side < 0 else "eye_right"]
    cx, cy, ew, eh = side * ident.eye_spacing / 2, ident.eye_level, ident.eye_width, ident.eye_height
    lash_width = max(0.12 * eh, head.px(1.6))
    if state.eyes_closed:
        crease = ellipse(cx, cy, ew / 2, 0.35 * eh, 180, 360, 16)
        lash = ellipse(cx, cy, ew / 2, 0.25 * eh, 0, 180, 16)
        return union(
            canvas.paint([head.place(np.concatenate([crease, lash]))], ident.skin * 0.82, owner=owner),
            canvas.paint([head.place(ribbon(crease, 0.6 * lash_width))], ident.skin * 0.6, owner=owner),
            canvas.paint([head.place(ribbon(lash, 1.6 * lash_width))], 25.0, owner=owner),
        )
    box = canvas.paint([head.place(ellipse(cx, cy, ew / 2, eh / 2, n=32))], ident.sclera, owner=owner)
    radius = 0.38 * eh
    ix, iy = cx + state.gaze[0] * IRIS_TRAVEL[0] * ew, cy + state.gaze[1] * IRIS_TRAVEL[1] * eh
    for scale, dx, tone, n in ((1.0, 0.0, ident.iris, 24), (0.45, 0.0, 12.0, 16), (0.2, -0.35, 250.0, 12)):
        disc = ellipse(ix + dx * radius, iy + dx * radius, scale * radius, scale * radius, n=n)  # iris, pupil, glint
        canvas.paint([head.place(inside_ellipse(disc, cx, cy, ew / 2, eh / 2))], tone, owner=owner)
    lash = ellipse(cx, cy, ew / 2, eh / 2, 180, 360, 16)
    return union(box, canvas.paint([head.place(ribbon(lash, lash_width))], 20.0, owner=owner))


def _draw_mouth(canvas: Canvas, ident: Identity, state: SceneState, head: Frame) -> Box | None:
    """Open: lips ring around a dark cavity with teeth and tongue; closed: lips with a dark line."""
    owner, my, mw = OWNERS["mouth"], ident.mouth_level, ident.mouth_width
    if not state.mouth_open:
        box = canvas.paint([head.place(ellipse(0, my, mw / 2, 0.13 * mw))], ident.lips, owner=owner)
        x = np.linspace(-0.46, 0.46, 14) * mw
        line = np.stack([x, my + 0.03 * mw * (1 - (x / (0.46 * mw)) ** 2)], 1)  # a slight smile, inside the lips
        canvas.paint([head.place(ribbon(line, max(0.04 * mw, head.px(1.6))))], 20.0, owner=owner)
        return box
    half_h = state.mouth_gape * mw / 2
    my += 0.5 * (half_h - 0.13 * mw)  # a jaw opens downwards: the upper lip stays near its place
    box = canvas.paint([head.place(ellipse(0, my, 0.42 * mw, half_h))], ident.lips, owner=owner)
    cavity = (0.0, my, 0.34 * mw, 0.78 * half_h)
    canvas.paint([head.place(ellipse(*cavity))], 18.0, owner=owner)
    teeth = rounded_rect(0, my - 0.78 * half_h, 0.4 * mw, 0.36 * half_h, 0.02)
    tongue = ellipse(0, my + 0.7 * half_h, 0.22 * mw, 0.35 * half_h)
    for part, tone in ((teeth, ident.teeth), (tongue, 75.0)):
        canvas.paint([head.place(inside_ellipse(part, *cavity))], tone, owner=owner)
    return box


def _draw_glasses(canvas: Canvas, ident: Identity, head: Frame) -> None:
    """Clear glasses: a thin frame around each eye (clear of it, so the eye stays whole), a bridge, the
    temples running to the face's edge."""
    margin = min(0.045, 0.6 * (ident.eye_spacing - ident.eye_width) / 2)  # lenses never meet in the middle
    thick = min(max(0.012, head.px(1.4)), 0.5 * margin)
    half_w, half_h = ident.eye_width / 2 + margin, ident.eye_height / 2 + 0.04
    y = ident.eye_level + 0.01
    for side in (-1, 1):
        cx = side * ident.eye_spacing / 2
        for start, stop in ((-95, 95), (85, 275)):  # two half rings overlapping at the ends
            canvas.paint(
                [head.place(ribbon(ellipse(cx, y, half_w, half_h, start, stop, 20), thick))], ident.glasses_frame
            )
        temple = np.array([[side * (ident.eye_spacing / 2 + half_w), y - 0.01], [side * ident.aspect / 2, y - 0.03]])
        canvas.paint([head.place(ribbon(temple, thick))], ident.glasses_frame)
    inner = ident.eye_spacing / 2 - half_w
    bridge = ellipse(0, y - 0.01, inner + thick / 2, 0.02, 180, 360, 8)
    canvas.paint([head.place(ribbon(bridge, thick))], ident.glasses_frame)


def _draw_eye_cover(canvas: Canvas, ident: Identity, state: SceneState, eyes: Frame) -> None:
    """Sunglasses (dark lenses over both eyes, a bridge) and a glare (a saturated reflection over the
    eyes, as from a low sun on glasses), as the state asks."""
    half_w, half_h = ident.eye_width / 2 + 0.05, ident.eye_height / 2 + 0.06
    if state.sunglasses:
        for side in (-1, 1):
            canvas.paint(
                [eyes.place(ellipse(side * ident.eye_spacing / 2, ident.eye_level + 0.01, half_w, half_h))], 12.0
            )
        bridge = np.array(
            [[-ident.eye_spacing / 2 + half_w, ident.eye_level], [ident.eye_spacing / 2 - half_w, ident.eye_level]]
        )
        canvas.paint([eyes.place(ribbon(bridge, 0.02))], 12.0)
    if state.glare > 0:
        reach = (ident.eye_spacing / 2 + half_w) * (0.6 + 0.6 * state.glare)
        canvas.paint(
            [eyes.place(ellipse(0, ident.eye_level, reach, half_h * (0.8 + 0.6 * state.glare)))], 190 + 65 * state.glare
        )


def _draw_cap(canvas: Canvas, ident: Identity, head: Frame) -> None:
    """A peaked cap: the crown over the top of the head and the hair, the peak across the forehead,
    clear of the brows."""
    half = ident.aspect / 2
    crown = ellipse(0, -0.34, half + 0.08, 0.33, 180, 360, 24)
    canvas.paint([head.place(crown)], ident.cap_tone)
    peak = np.concatenate(
        [ellipse(0, -0.36, half + 0.1, 0.035, 180, 360, 16), ellipse(0, -0.36, half + 0.1, 0.07, 0, 180, 16)]
    )
    canvas.paint([head.place(peak)], ident.cap_tone * 0.7)


def _draw_face_mask(canvas: Canvas, ident: Identity, head: Frame) -> None:
    """A surgical mask from the nose bridge down to the chin, inside the face outline."""
    half = ident.aspect / 2 * 0.97
    top = 0.07  # at the cheeks; the nose bridge lifts the middle to 0.02
    start = np.degrees(np.arcsin(top / 0.485))
    lower = ellipse(0, 0, half, 0.485, start, 180 - start, 24)
    upper = ellipse(0, top, half * np.cos(np.deg2rad(start)), 0.05, 180, 360, 12)[1:-1]
    canvas.paint([head.place(np.concatenate([lower, upper]))], ident.mask)
    for y in (0.16, 0.26, 0.36):
        reach = half * np.sqrt(1 - (y / 0.485) ** 2) - 0.01  # the mask's edge at this height
        pleat = np.array([[-reach, y], [reach, y + 0.01]])
        canvas.paint([head.place(ribbon(pleat, max(0.01, head.px(1.2))))], ident.mask * 0.82)


def _draw_hand(
    canvas: Canvas,
    ident: Identity,
    frame: Frame,
    palm: tuple[float, float],
    angle: float,
    size: float = 1.0,
    thumb: int = 1,
) -> None:
    """A hand: palm with four fingers pointing along `angle` (degrees) and a thumb, outlined.

    thumb: +1 puts the thumb 90 degrees clockwise of the fingers, -1 the other way.
    """
    skin = ident.skin * 0.95
    direction = np.array([np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))])
    across = np.array([-direction[1], direction[0]])
    base = np.asarray(palm) + direction * 0.1 * size
    sticks = [
        (base + across * k * 0.055 * size, direction, 0.22 * size * (1 - 0.12 * abs(k - 0.5)))
        for k in (-1.5, -0.5, 0.5, 1.5)
    ]
    sticks.append(
        (np.asarray(palm) + thumb * across * 0.13 * size, (direction + thumb * across) / np.sqrt(2), 0.16 * size)
    )
    for root, pointing, length in sticks:
        stick = (root, root + pointing * length)
        canvas.paint([frame.place(capsule(*stick, 0.032 * size))], skin * 0.6)  # outline
        canvas.paint([frame.place(capsule(*stick, 0.026 * size))], skin)
    canvas.paint([frame.place(rounded_rect(palm[0], palm[1], 0.26 * size, 0.24 * size, 0.08 * size, angle + 90))], skin)


def _in_frame_of(cx: float, cy: float, tilt: float, dx: float, dy: float) -> tuple[float, float]:
    """The point (dx, dy) of a shape centred at (cx, cy) and turned by `tilt` degrees."""
    c, s = np.cos(np.deg2rad(tilt)), np.sin(np.deg2rad(tilt))
    return cx + dx * c - dy * s, cy + dx * s + dy * c


def _draw_phone(canvas: Canvas, ident: Identity, state: SceneState, head: Frame, body: Frame) -> Box | None:
    """A rounded phone of its `Props` look: at the ear (a hand holding it, or none in sight), in front of
    the chest in a hand, or raised beside the face in a hand below it, its back to the camera."""
    look, side = props(state.props_seed), state.phone_side
    shown = look.phone_face
    if state.phone == "ear":
        frame, tilt = head, side * abs(state.phone_place[2])
        w, h = 0.2 * look.phone_width, 0.52 * look.phone_length
        cx, cy = side * (ident.aspect / 2 + w / 2 - 0.03), 0.08
        if state.phone_hand:
            _draw_hand(canvas, ident, frame, (cx + side * 0.06, cy + 0.16), -90 - side * 20, 0.9)
    else:
        frame = body
        w, h = 0.32 * look.phone_width, 0.6 * look.phone_length
        if state.phone == "hand":
            tilt = state.phone_place[2]
            cx, cy = state.phone_place[:2]
        else:
            tilt, shown = side * abs(state.phone_place[2]) / 2, "back"
            cx, cy = side * (ident.aspect / 2 + w / 2 + 0.08), 0.2
        _draw_hand(canvas, ident, frame, _in_frame_of(cx, cy, tilt, 0, h / 3), -90 + tilt, 1.1)
    owner, corner = OWNERS["phone"], look.phone_corner
    parts = [canvas.paint([frame.place(rounded_rect(cx, cy, w, h, corner, tilt))], look.phone_body, owner=owner)]
    if shown == "back":  # a camera module in the upper corner, clear of the case's rounding, two lenses in it
        unit = 0.4 * w
        inset = 0.5 * unit + 0.1 * unit + 0.3 * corner
        module = _in_frame_of(cx, cy, tilt, -side * (w / 2 - inset), -h / 2 + inset)
        case = rounded_rect(*module, unit, unit, 0.25 * unit, tilt)
        parts.append(canvas.paint([frame.place(case)], look.phone_screen, owner=owner))
        for dy in (-0.22, 0.22):
            lens = _in_frame_of(*module, tilt, 0, dy * unit)
            parts.append(canvas.paint([frame.place(ellipse(*lens, 0.17 * unit, 0.17 * unit, n=16))], 0.0, owner=owner))
    else:  # the screen, its corners concentric with the case's
        screen = rounded_rect(cx, cy, w * 0.82, h * 0.78, max(corner - 0.09 * w, 0.005), tilt)
        parts.append(canvas.paint([frame.place(screen)], look.phone_screen, owner=owner))
    return union(*parts)


def _draw_cigarette(canvas: Canvas, ident: Identity, state: SceneState, head: Frame) -> Box | None:
    """A thin outlined stick of its `Props` look (filter, paper, a glowing tip with ash or a plain end): in the mouth
    corner, between the fingers of a hand beside the chin, or of a hand raised beside the temple."""
    look, side, angle = props(state.props_seed), state.cigarette_side, np.deg2rad(state.cigarette_angle)
    radius = max(0.016, head.px(1.6)) * look.cigarette_thickness
    if state.cigarette == "mouth":
        direction = np.array([side * np.cos(angle), np.sin(angle)])
        # held in the lips' corner: its round end touches the corner, the mouth stays whole
        start = np.array([side * 0.5 * ident.mouth_width, ident.mouth_level]) + direction * radius
    else:
        palm = (side * (ident.aspect / 2 + 0.16), 0.42 if state.cigarette == "hand" else -0.12)
        _draw_hand(canvas, ident, head, palm, -90 + side * 15, 0.9)
        start = np.asarray(palm) + np.array([0, -0.12])
        direction = np.array([side * np.sin(angle), -np.cos(angle)])
    length = 0.3 * look.cigarette_length
    filter_end = start + direction * look.cigarette_filter_share * length
    stop = start + direction * length
    owner = OWNERS["cigar"]
    parts = [  # outlined, as a drawn hand is: a tan filter would vanish against the skin of the lips or fingers
        canvas.paint([head.place(capsule(start, stop, 1.25 * radius))], 0.45 * look.cigarette_filter, owner=owner),
        canvas.paint([head.place(capsule(start, filter_end, radius))], look.cigarette_filter, owner=owner),
        canvas.paint([head.place(capsule(filter_end, stop, radius))], look.cigarette_paper, owner=owner),
    ]
    if look.cigarette_lit:  # a grey ash ring and the glowing tip
        ash = stop - direction * 1.2 * radius
        parts.append(canvas.paint([head.place(capsule(ash, stop, radius))], 150.0, owner=owner))
        parts.append(canvas.paint([head.place(ellipse(*stop, 1.3 * radius, 1.3 * radius, n=16))], 255.0, owner=owner))
    return union(*parts)


def _finish(canvas: Canvas, state: SceneState, rng: np.random.Generator) -> np.ndarray:
    """Lighting gradient, optical blur and sensor noise: canvas -> uint8 [H, W]."""
    h, w = canvas.height, canvas.width
    angle = np.deg2rad(state.light_angle)
    slope = 2 * state.light_strength * state.brightness
    ramp_x = np.linspace(-0.5, 0.5, w, dtype=np.float32) * float(slope * np.cos(angle))
    ramp_y = np.linspace(-0.5, 0.5, h, dtype=np.float32) * float(slope * np.sin(angle)) + state.brightness
    image = cv2.multiply(canvas.pixels, ramp_x[None, :] + ramp_y[:, None], dtype=cv2.CV_8U)
    if state.blur >= 0.3:
        image = cv2.GaussianBlur(image, (0, 0), state.blur)
    # gaussian noise from one random byte per pixel through a quantile table (10x faster than
    # rng.normal); addWeighted saturates once, after removing the table's +128 offset
    table = np.clip(np.rint(_GAUSS_QUANTILES * state.noise) + 128, 0, 255).astype(np.uint8)
    noise = cv2.LUT(np.frombuffer(rng.bytes(h * w), np.uint8).reshape(h, w), table)
    return cv2.addWeighted(image, 1.0, noise, 1.0, -128.0, dtype=cv2.CV_8U)


def draw_scene(
    rng: np.random.Generator, width: int, height: int, state: SceneState, trace: bool = False
) -> tuple[np.ndarray, list[tuple[str, Box]], Canvas]:
    """Draw `state`; returns the image, (class, box) pairs and the canvas (its trace for tests)."""
    ident = identity(state.identity_seed)
    head = _head_frame(state)
    body = Frame(head.origin, head.scale, 0.0)
    canvas = Canvas(width, height, trace)
    _draw_cabin(canvas, state, body)
    _draw_body(canvas, ident, state, body)
    objects = [("face", _draw_face(canvas, ident, state, head))]
    eyes, mouth, hand = (_turned(head, state, part) for part in ("eyes", "mouth", "hand"))
    eye_class = "eye_closed" if state.eyes_closed else "eye_opened"
    covered = state.sunglasses or state.glare >= 0.5  # drawn, but not visible: not labelled
    for side in (-1, 1):
        if side != state.hidden_eye:
            box = _draw_eye(canvas, ident, state, eyes, side)
            objects.append((eye_class, None if covered else box))
    if state.mouth_cover == "none":
        mouth_class = "mouth_opened" if state.mouth_open else "mouth_closed"
        objects.append((mouth_class, _draw_mouth(canvas, ident, state, mouth)))
    elif state.mouth_cover == "mask":
        _draw_face_mask(canvas, ident, mouth)
    if state.glasses:
        _draw_glasses(canvas, ident, eyes)
    _draw_eye_cover(canvas, ident, state, eyes)
    if state.cap:
        _draw_cap(canvas, ident, head)
    if state.mouth_cover == "hand":
        _draw_hand(
            canvas,
            ident,
            hand,
            (0.1 * state.hand_side, ident.mouth_level + 0.03),
            180 if state.hand_side > 0 else 0,
            thumb=-state.hand_side,
        )  # thumb under the chin
        if state.food:  # a snack held at the fingertips, against the lips
            snack = rounded_rect(
                -0.17 * state.hand_side, ident.mouth_level - 0.03, 0.17, 0.13, 0.05, 12.0 * state.hand_side
            )
            canvas.paint([hand.place(snack)], 215.0)
            canvas.paint([hand.place(ribbon(snack[::3], 0.012))], 120.0)  # its crust
    if state.hidden_eye:
        eye_x = state.hidden_eye * ident.eye_spacing / 2
        _draw_hand(
            canvas, ident, hand, (eye_x + state.hidden_eye * 0.02, ident.eye_level + 0.04), -90, thumb=state.hidden_eye
        )  # thumb outwards, clear of the other eye
    if state.cigarette != "none":
        objects.append(("cigar", _draw_cigarette(canvas, ident, state, mouth)))
    if state.phone != "none":
        objects.append(("phone", _draw_phone(canvas, ident, state, head, body)))
    return _finish(canvas, state, rng), [(c, box) for c, box in objects if box is not None], canvas


def render_scene(
    rng: np.random.Generator, width: int, height: int, state: SceneState | None = None
) -> tuple[np.ndarray, list[dict]]:
    """Render one scene (a random one from `rng` when `state` is None).

    Returns the image, uint8 [height, width] grey, and its objects in the competition format:
    `[{"class": name, "position": [x1, y1, x2, y2]}]`, xyxy pixel edges rounded to 0.1.
    `rng` also draws the sensor noise, so the same generator state gives the same bytes.
    """
    state = sample_scene(rng, width, height) if state is None else state
    image, objects, _ = draw_scene(rng, width, height, state)
    return image, [{"class": c, "position": [round(float(v), 1) for v in box]} for c, box in objects]
