"""What decides one synthetic scene: the class rates, the scene state, the driver's identity.

`sample_scene` draws a state whose per-image class counts follow the raw train table of the
original solution (`CLASS_RATES`), so the imbalance the diet set fights is really there.
"""

import dataclasses

import numpy as np

# Mean objects per image in the raw train split (solution.md: class counts / 253,224 images).
CLASS_RATES = {
    "eye_opened": 419_135 / 253_224,
    "eye_closed": 74_551 / 253_224,
    "mouth_opened": 35_233 / 253_224,
    "mouth_closed": 127_282 / 253_224,
    "face": 253_167 / 253_224,
    "phone": 11_792 / 253_224,
    "cigar": 10_499 / 253_224,
}
HIDDEN_EYE_RATE = 2.0 - CLASS_RATES["eye_opened"] - CLASS_RATES["eye_closed"]  # one eye behind a hand
EYES_CLOSED_RATE = CLASS_RATES["eye_closed"] / (2.0 - HIDDEN_EYE_RATE)
MOUTH_VISIBLE_RATE = CLASS_RATES["mouth_opened"] + CLASS_RATES["mouth_closed"]
MOUTH_OPEN_RATE = CLASS_RATES["mouth_opened"] / MOUTH_VISIBLE_RATE  # among visible mouths
# Accessories (our choice: the public data's rates are not published); they hide nothing that is labelled
GLASSES_RATE = 0.25
CAP_RATE = 0.15
# A phone is held at the ear or, where there is room below the face, in front of the chest; a hand over
# the mouth holds a snack to it (a bite) this often (our choices)
PHONE_IN_HAND_RATE = 0.4
FOOD_RATE = 0.5
# Props of many looks (domain randomisation, Tobin et al. 2017; `Props`), our choices: a phone at the ear
# without a hand in sight (held by the shoulder, or the hand below the frame) this often
PHONE_AT_EAR_NO_HAND_RATE = 0.35
# The held-out family (`sample_scene(held_out=True)`): a pose the training data never draws, for a
# generalisation check (a separate test set, notebook 05): a phone held up beside the face, its back to the
# camera, and a cigarette in a hand raised beside the temple. That set draws a phone in HELD_OUT_PROP_RATE
# of its images and a cigarette in as many (the other classes at their usual rates).
HELD_OUT_POSE = "raised"
HELD_OUT_PROP_RATE = 0.5
# Sunglasses and a glare hide the eyes, which are then not labelled (AIHub tree only, our choice: enough
# for the detector to learn that covered eyes are no eyes; they put the eye classes ~5 % under the table)
SUNGLASSES_RATE = 0.03
GLARE_RATE = 0.02
# Where a driver looks, as the head's (yaw, pitch) in degrees from straight ahead; yaw + = towards the
# image's right (the driver's left: the camera faces the driver), pitch + = down. Left-hand drive. The
# AIHub gaze targets (drowsy.data.meta.GAZE_TARGET) and the protocol's gaze locations.
GAZE_POSES = {
    "ahead": (0.0, 0.0),
    "left side mirror": (45.0, 5.0),
    "left window": (60.0, 0.0),
    "rear-view mirror": (-35.0, -22.0),
    "sun visor": (-10.0, -30.0),
    "right side mirror": (-55.0, 5.0),
    "passenger": (-60.0, 5.0),
    "navigation": (-35.0, 25.0),
    "instrument cluster": (0.0, 28.0),
    "glovebox": (-45.0, 35.0),
    "footwell": (-10.0, 40.0),
}


@dataclasses.dataclass(frozen=True)
class SceneState:
    """Everything that decides one scene; `dataclasses.replace` animates it (see drowsy.synth.clips).

    Lengths in pixels unless said otherwise; "face units" are multiples of the face height;
    angles in degrees (positive = clockwise on screen); grey levels 0-255. Sides: -1 = image
    left, +1 = image right. Identity (proportions, tones) and the cabin layout are drawn from
    their own seeds so they stay fixed while the rest moves.
    """

    face_x: float  # face ellipse centre
    face_y: float
    face_height: float
    roll: float  # in-plane head rotation
    gaze: tuple[float, float]  # iris offset in [-1, 1] of its travel, (x, y)
    eyes_closed: bool
    hidden_eye: int  # 0: none; -1/+1: that eye is covered by a hand (not labelled)
    mouth_open: bool
    mouth_gape: float  # open-mouth height / mouth width
    mouth_cover: str  # "none" | "mask" (face mask) | "hand"; a covered mouth is not labelled
    hand_side: int  # side the hand over the mouth comes from
    phone: str  # "none" | "ear" | "hand" (in front of the chest) | "raised" (held-out family)
    phone_side: int
    phone_place: tuple[float, float, float]  # (x, y) in front of the chest from the face centre in
    # face units (for "hand"), tilt in degrees (both; at the ear its size, turned outwards)
    cigarette: str  # "none" | "mouth" | "hand" (beside the chin) | "raised" (held-out family)
    cigarette_side: int
    cigarette_angle: float  # below horizontal ("mouth") or off vertical ("hand"), pointing outwards
    seat: tuple[float, float]  # headrest centre, pixels (the seat back stands below it)
    brightness: float  # global gain
    light_angle: float  # direction in which the lighting gradient brightens
    light_strength: float  # gradient amplitude, fraction of the gain
    blur: float  # gaussian sigma, pixels (below 0.3: none)
    noise: float  # sensor noise sigma, grey levels
    identity_seed: int
    clutter_seed: int
    glasses: bool = False  # clear glasses: a frame around the eyes, the eyes stay visible
    cap: bool = False  # a peaked cap over the forehead, clear of the brows
    yaw: float = 0.0  # head turn, degrees (+ = towards the image's right); the face outline stays
    pitch: float = 0.0  # head nod, degrees (+ = down)
    sunglasses: bool = False  # dark lenses: the eyes are hidden (not labelled)
    glare: float = 0.0  # a saturated reflection over the eyes (0 none, 1 full): from 0.5 on they are not labelled
    food: bool = False  # with mouth_cover "hand": the hand holds a snack to the mouth (a bite; not labelled)
    props_seed: int = 0  # the phone's and the cigarette's look (`Props`)
    phone_hand: bool = True  # a phone at the ear: a hand holds it in sight (else none is seen)


@dataclasses.dataclass(frozen=True)
class Identity:
    """A driver's look, drawn from `SceneState.identity_seed`; lengths in face units."""

    aspect: float  # face width / height
    skin: float
    hair: float
    hair_long: bool
    shirt: float
    brow: float
    eye_spacing: float  # between eye centres
    eye_width: float
    eye_height: float  # open eye
    eye_level: float  # eye centre y from face centre
    sclera: float
    iris: float
    mouth_level: float
    mouth_width: float
    lips: float
    teeth: float
    mask: float
    belt: float
    belt_side: int  # shoulder the seat belt comes over
    glasses_frame: float
    cap_tone: float


def identity(seed: int) -> Identity:
    rng = np.random.default_rng(seed)
    aspect = rng.uniform(0.72, 0.82)
    skin = rng.uniform(140, 210)
    eye_width = rng.uniform(0.21, 0.25) * aspect  # a little large: eyes stay a few pixels tall at 320 px
    return Identity(
        aspect=aspect,
        skin=skin,
        hair=rng.uniform(15, 70),
        hair_long=bool(rng.random() < 0.3),
        shirt=rng.uniform(30, 200),
        brow=rng.uniform(20, 70),
        eye_spacing=rng.uniform(0.38, 0.44) * aspect,
        eye_width=eye_width,
        eye_height=eye_width * rng.uniform(0.44, 0.52),
        eye_level=rng.uniform(-0.1, -0.06),
        sclera=min(skin + rng.uniform(25, 45), 250.0),
        iris=rng.uniform(35, 90),
        mouth_level=rng.uniform(0.24, 0.28),
        mouth_width=rng.uniform(0.33, 0.4) * aspect,
        lips=skin - rng.uniform(30, 50),
        teeth=rng.uniform(175, 230),
        mask=rng.uniform(170, 240),
        belt=rng.uniform(50, 120),
        belt_side=int(rng.choice([-1, 1])),
        glasses_frame=rng.uniform(10, 60),
        cap_tone=rng.uniform(20, 220),
    )


@dataclasses.dataclass(frozen=True)
class Props:
    """The look of the phone and the cigarette, drawn from `SceneState.props_seed`; sizes are factors of
    the usual size, tones grey levels."""

    phone_width: float
    phone_length: float
    phone_corner: float  # corner radius, face units
    phone_body: float  # case: mostly dark, a third light
    phone_face: str  # what the camera sees: "screen" (lit), "dark" (screen off) or "back" (camera lenses)
    phone_screen: float  # the tone of the screen or of the back's camera module
    cigarette_length: float
    cigarette_thickness: float
    cigarette_paper: float
    cigarette_filter: float  # tan or white
    cigarette_filter_share: float  # of the length
    cigarette_lit: bool  # a glowing tip with ash, or a plain end


PHONE_FACES = {"screen": 0.45, "dark": 0.25, "back": 0.3}


def props(seed: int) -> Props:
    rng = np.random.default_rng(seed)
    paper = rng.uniform(215, 250)
    face = str(rng.choice(list(PHONE_FACES), p=list(PHONE_FACES.values())))
    return Props(
        phone_width=rng.uniform(0.8, 1.25),
        phone_length=rng.uniform(0.85, 1.2),
        phone_corner=rng.uniform(0.02, 0.08),
        phone_body=rng.uniform(150, 235) if rng.random() < 0.3 else rng.uniform(10, 60),
        phone_face=face,
        phone_screen={"screen": rng.uniform(120, 235), "dark": rng.uniform(5, 30), "back": rng.uniform(0, 40)}[face],
        cigarette_length=rng.uniform(0.7, 1.3),
        cigarette_thickness=rng.uniform(0.75, 1.35),
        cigarette_paper=paper,
        cigarette_filter=rng.uniform(140, 195) if rng.random() < 0.7 else paper - rng.uniform(5, 20),
        cigarette_filter_share=rng.uniform(0.25, 0.4),
        cigarette_lit=bool(rng.random() < 0.7),
    )


def accessories(rng: np.random.Generator, covers: bool = False) -> dict:
    """Glasses and cap at `GLASSES_RATE` and `CAP_RATE` and, with `covers`, sunglasses and a glare over
    the eyes at `SUNGLASSES_RATE` and `GLARE_RATE`: the `SceneState` fields, for `dataclasses.replace`."""
    fields = {"glasses": bool(rng.random() < GLASSES_RATE), "cap": bool(rng.random() < CAP_RATE)}
    if covers:
        fields["sunglasses"] = bool(rng.random() < SUNGLASSES_RATE)
        fields["glare"] = float(rng.uniform(0.6, 1.0)) if rng.random() < GLARE_RATE else 0.0
    return fields


HAND_REACH = 0.85  # face units from the face centre that a prop beside the face needs


def hands_in_frame(state: SceneState, width: int) -> SceneState:
    """The state with a phone and a cigarette beside the face (at the ear, in hand, raised) on the side of
    the face that has room for them, where their own side would cut them off at the image edge (close-ups:
    the face fills the width) and the other side has more room."""

    def room(side: int) -> float:
        return (state.face_x if side < 0 else width - state.face_x) / state.face_height

    sides = {}
    for prop, held, side in (
        ("phone", state.phone in ("ear", HELD_OUT_POSE), state.phone_side),
        ("cigarette", state.cigarette in ("hand", HELD_OUT_POSE), state.cigarette_side),
    ):
        if held and room(side) < HAND_REACH and room(-side) > room(side):
            sides[f"{prop}_side"] = -side
    return dataclasses.replace(state, **sides) if sides else state


def room_below(face_y: float, face_height: float, height: int) -> float:
    """Face heights free under a face centred at `face_y` in an image `height` pixels tall."""
    return (height - face_y) / face_height - 0.1


def phone_hold(rng: np.random.Generator, room: float) -> str:
    """Where a phone in use is: "hand" at `PHONE_IN_HAND_RATE` where `room` (face heights free below the
    face) is at least 0.8 (no more than a third of the phone cut off), else "ear"."""
    return "hand" if rng.random() < PHONE_IN_HAND_RATE and room >= 0.8 else "ear"


def sample_scene(rng: np.random.Generator, width: int, height: int, held_out: bool = False) -> SceneState:
    """A random scene for a `width` x `height` image, with the class rates of `CLASS_RATES`; `held_out`:
    of the held-out family instead (phones and cigarettes only `HELD_OUT_POSE`, each at `HELD_OUT_PROP_RATE`)."""
    aspect_guess = 0.8  # only to keep the face inside the frame before the identity is known
    face_height = min(rng.uniform(0.35, 0.7) * height, 0.6 * width / aspect_guess)
    half_w = 0.7 * aspect_guess * face_height
    face_x = rng.uniform(half_w, width - half_w)
    face_y = rng.uniform(0.5 * face_height + 0.04 * height, 0.97 * height - 0.5 * face_height)
    hidden_eye = int(rng.choice([-1, 1])) if rng.random() < HIDDEN_EYE_RATE else 0
    mouth_visible = rng.random() < MOUTH_VISIBLE_RATE
    mouth_open = mouth_visible and rng.random() < MOUTH_OPEN_RATE
    # one hand near the face is enough: a hidden eye pairs with a face mask, not a second hand
    mouth_cover = "none" if mouth_visible else ("mask" if hidden_eye or rng.random() < 0.7 else "hand")
    room = room_below(face_y, face_height, height)
    if held_out:
        phone = HELD_OUT_POSE if rng.random() < HELD_OUT_PROP_RATE else "none"
    else:
        phone = phone_hold(rng, room) if rng.random() < CLASS_RATES["phone"] else "none"
    phone_side = int(rng.choice([-1, 1]))
    cigarette = "none"
    if held_out:
        cigarette = HELD_OUT_POSE if rng.random() < HELD_OUT_PROP_RATE else "none"
    elif rng.random() < CLASS_RATES["cigar"]:
        cigarette = "mouth" if mouth_visible and not mouth_open and rng.random() < 0.7 else "hand"
    cigarette_side = -phone_side  # keeps a phone and a cigarette hand apart
    reach = min(0.6, (face_x / face_height) - 0.2, (width - face_x) / face_height - 0.2)
    phone_xy = (rng.uniform(-reach, reach), rng.uniform(0.8, max(min(1.05, room), 0.8)))
    return hands_in_frame(
        SceneState(
            face_x=face_x,
            face_y=face_y,
            face_height=face_height,
            roll=float(np.clip(rng.normal(0, 5), -14, 14)),
            gaze=(rng.uniform(-1, 1), rng.uniform(-1, 1)),
            eyes_closed=bool(rng.random() < EYES_CLOSED_RATE),
            hidden_eye=hidden_eye,
            mouth_open=bool(mouth_open),
            mouth_gape=rng.uniform(0.5, 0.85),
            mouth_cover=mouth_cover,
            hand_side=int(rng.choice([-1, 1])),
            food=mouth_cover == "hand" and bool(rng.random() < FOOD_RATE),
            phone=phone,
            phone_side=phone_side,
            phone_place=(*phone_xy, rng.uniform(-25, 25)),
            cigarette=cigarette,
            cigarette_side=cigarette_side,
            cigarette_angle=rng.uniform(10, 40) if cigarette == "mouth" else rng.uniform(10, 45),
            seat=(face_x + rng.uniform(-0.1, 0.1) * face_height, face_y - rng.uniform(0.1, 0.25) * face_height),
            brightness=rng.uniform(0.75, 1.2),
            light_angle=rng.uniform(0, 360),
            light_strength=rng.uniform(0, 0.35),
            blur=rng.uniform(0, 1.2) if rng.random() < 0.6 else 0.0,
            noise=rng.uniform(1, 7),
            identity_seed=int(rng.integers(2**31)),
            clutter_seed=int(rng.integers(2**31)),
            props_seed=int(rng.integers(2**31)),  # drawn last: the fields above do not depend on them
            phone_hand=bool(rng.random() >= PHONE_AT_EAR_NO_HAND_RATE),
        ),
        width,
    )
