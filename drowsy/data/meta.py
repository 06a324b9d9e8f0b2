"""What an image's path and label file tell about it: subject, scenario, lighting, behaviour, ...

The public AIHub driver-state dataset names every image after how it was recorded. Its three subsets
(the file names and folders of the download; see docs/data.md):

- controlled (`[원천]bbox(통제환경)/001_G1/`):
  `{subject}_{group}_{scenario}_{lighting}_{gaze target}_{behaviour}_{date}_{time}_{frame}`,
  e.g. `001_G1_01_무광원_계기판_정상주시_20200917_182234_02144.jpg`;
- real road (`[원천]bbox(실제도로환경)/1.버스/R_216_60_M/`) and semi-controlled
  (`[원천]keypoint(준통제환경)/Q_105_40_M_02_M0_G0_C0/`, one folder per sequence):
  `{R|Q}_{subject}_{age decade}_{M|F}_{scenario}_{M0|M1 mask}_{G0|G1 glasses}_{C0|C1 cap}_{frame}`, e.g.
  `R_216_60_M_01_M0_G1_C0_01.jpg`; some names have a space instead of the underscore before the frame;
- folders: `Training` / `Validation` (or `1.Training` / `2.Validation`) AIHub's own split, the subset's
  folder the environment, `1.버스` (bus), `2.승용` (car), `3.택시` (taxi), `4.트럭` (truck) the vehicle.

Subjects of the three subsets are kept apart: controlled `001`, real road `R_216`, semi-controlled `Q_105`.
`age` is the decade the name gives (60: sixties), or the years of the label's `UserInfo.Age` where the
name says none. Values come out in English (`lighting: "left"`). A name that fits no scheme, or a word
no table knows, leaves its keys out: `meta` is then partial, never an error.
"""

import functools
import re

META_KEYS = (
    "subject",
    "group",
    "scenario",
    "lighting",
    "gaze_target",
    "behaviour",
    "environment",
    "vehicle",
    "mask",
    "glasses",
    "cap",
    "age",
    "gender",
    "aihub_split",
)
LIGHTING = {"무광원": "none", "정면광원": "front", "좌측광원": "left", "우측광원": "right", "후면광원": "back"}
GAZE_TARGET = {
    "계기판": "instrument cluster",
    "네비게이션": "navigation",
    "룸미러": "rear-view mirror",
    "썬바이저": "sun visor",
    "정면": "ahead",
    "좌사이드미러": "left side mirror",
    "우사이드미러": "right side mirror",
}
BEHAVIOUR = {
    "정상주시": "normal",
    "졸음재현": "drowsy",
    "하품재현": "yawning",
    "통화재현": "phone call",
    "흡연재현": "smoking",
}
# "준통제환경" contains "통제환경": the longer names are tried first
ENVIRONMENT = (("준통제환경", "semi-controlled"), ("실제도로환경", "real road"), ("통제환경", "controlled"))
VEHICLE = {"버스": "bus", "승용": "car", "택시": "taxi", "트럭": "truck"}
AIHUB_SPLIT = {"Training": "training", "Validation": "validation"}  # also "1.Training", "2.Validation"
GENDER = {
    "남": "male",
    "남자": "male",
    "남성": "male",
    "m": "male",
    "male": "male",
    "여": "female",
    "여자": "female",
    "여성": "female",
    "f": "female",
    "female": "female",
}
YES = {"y", "yes", "1", "true", "t", "o", "유", "착용"}
NO = {"n", "no", "0", "false", "f", "x", "무", "미착용"}

_CONTROLLED = re.compile(r"(\d+)_(G\d+)_(\d+)_([^_]+)_([^_]+)_([^_]+)_(\d{8})_(\d{6})_(\d+)")
# real road (R) and semi-controlled (Q): subset, subject, age decade, sex, scenario, mask, glasses, cap, frame
_TOKENS = r"([RQ])_(\d+)_(\d+)_([MF])_(\d+)_M([01])_G([01])_C([01])"
_SUBSET_NAME = re.compile(_TOKENS + r"[_ ](\d+)")
_SUBSET_PREFIX = {"R": "real road", "Q": "semi-controlled"}
_SUBJECT_FOLDER = re.compile(r"(\d+)_(G\d+)")  # "001_G1": subject 001, group G1
_PERSON_FOLDER = re.compile(r"([RQ])_(\d+)_\d+_[MF]")  # real road: "R_216_60_M", one per subject
_SEQUENCE_FOLDER = re.compile(_TOKENS)  # semi-controlled: "Q_105_40_M_02_M0_G0_C0", one per sequence
_NUMBERED_FOLDER = re.compile(r"\d+\.(\S+)")  # "1.버스", "1.Training"


def from_path(path: str) -> tuple[dict, bool]:
    """(meta, recognised) from a '/'-separated path: its folders and its file name.

    recognised: the file name fits one of the schemes with every word known.
    """
    folder, _, name = path.rpartition("/")
    meta = dict(_from_folders(folder))
    stem = name.rsplit(".", 1)[0]
    for parse in (_controlled, _subset_name):
        found = parse(stem)
        if found is not None:
            fields, recognised = found
            meta.update(fields)
            return meta, recognised
    return meta, False


def english_name(path: str) -> str:
    """The file name of `path` with its Korean words in English and any other non-ASCII character as
    '?', for plot titles (the bundled fonts have no Hangul): '003_G1_02_left_ahead_yawning_..._00004.jpg'."""
    words = {**LIGHTING, **GAZE_TARGET, **BEHAVIOUR}
    name = path.rsplit("/", 1)[-1]
    parts = [words.get(part, part) for part in name.split("_")]
    return "".join(c if c.isascii() else "?" for c in "_".join(parts))


def share(meta: dict, pool: dict) -> dict:
    """The dict in `pool` equal to `meta` (added when new): the frames of one recording share one
    meta dict, which saves ~1 KB per record at 273k records. Treat shared dicts as read-only."""
    return pool.setdefault(tuple(meta.items()), meta)


def from_label(document: dict) -> dict:
    """Meta an AIHub label JSON holds: `UserInfo` (ID, Gender, Age) and `Accessory` (Mask, Glasses, Cap)."""
    meta = {}
    user = document.get("UserInfo")
    if isinstance(user, dict):
        if isinstance(user.get("ID"), (str, int)) and not isinstance(user.get("ID"), bool):
            meta["subject"] = str(user["ID"])
        gender = GENDER.get(str(user.get("Gender", "")).strip().lower())
        if gender:
            meta["gender"] = gender
        age = as_integer(user.get("Age"))
        if age is not None:
            meta["age"] = age
    accessory = document.get("Accessory")
    if isinstance(accessory, dict):
        for key in ("Mask", "Glasses", "Cap"):
            worn = _flag(accessory.get(key))
            if worn is not None:
                meta[key.lower()] = worn
    return meta


def merge_label(meta: dict, label: dict) -> list[str]:
    """Fill `meta` (from the path) with what the label file says and the path does not; the path is never
    overwritten. Returns the keys on which the two disagree (a subject ID of another form, `"R_216"` vs
    `216`, agrees; so does an age in the decade the name gives)."""
    disagree = []
    for key, value in label.items():
        if key not in meta:
            meta[key] = value
        elif not _agree(key, meta[key], value):
            disagree.append(key)
    return disagree


def _agree(key: str, path_value, label_value) -> bool:
    if key == "subject":
        return _number(path_value) == _number(label_value)
    if key == "age":
        return path_value in (label_value, label_value // 10 * 10)
    return path_value == label_value


def _number(subject: str):
    """The number in a subject ID ("R_0216" -> 216), else the ID itself."""
    digits = re.findall(r"\d+", subject)
    return int(digits[-1]) if digits else subject


@functools.lru_cache(maxsize=4096)
def _from_folders(path: str) -> dict:
    """Meta the folders of a '/'-separated folder path tell (cached: one call per folder; copy it)."""
    meta = {}
    for folder in path.split("/"):
        numbered = _NUMBERED_FOLDER.fullmatch(folder)
        plain = numbered.group(1) if numbered else folder
        if plain in AIHUB_SPLIT:
            meta["aihub_split"] = AIHUB_SPLIT[plain]
        elif numbered and plain in VEHICLE:
            meta["vehicle"] = VEHICLE[plain]
        environment = next((english for korean, english in ENVIRONMENT if korean in folder), None)
        if environment:
            meta["environment"] = environment
        subject = _SUBJECT_FOLDER.fullmatch(folder)
        if subject:
            meta["subject"], meta["group"] = subject.groups()
        person = _PERSON_FOLDER.fullmatch(folder) or _SEQUENCE_FOLDER.fullmatch(folder)
        if person:
            meta["subject"] = f"{person.group(1)}_{person.group(2)}"
    return meta


def _controlled(stem: str) -> tuple[dict, bool] | None:
    match = _CONTROLLED.fullmatch(stem)
    if match is None:
        return None
    subject, group, scenario, lighting, gaze, behaviour = match.groups()[:6]
    fields = {"subject": subject, "group": group, "scenario": scenario, "environment": "controlled"}
    known = _lookup(fields, "lighting", LIGHTING, lighting)
    known &= _lookup(fields, "gaze_target", GAZE_TARGET, gaze)
    known &= _lookup(fields, "behaviour", BEHAVIOUR, behaviour)
    return fields, known


def _subset_name(stem: str) -> tuple[dict, bool] | None:
    match = _SUBSET_NAME.fullmatch(stem)
    if match is None:
        return None
    prefix, subject, decade, sex, scenario, mask, glasses, cap = match.groups()[:8]
    fields = {
        "subject": f"{prefix}_{subject}",  # kept apart from the controlled subject with the same number
        "age": int(decade),
        "gender": GENDER[sex.lower()],
        "scenario": scenario,
        "environment": _SUBSET_PREFIX[prefix],
        "mask": mask == "1",
        "glasses": glasses == "1",
        "cap": cap == "1",
    }
    return fields, True


def _lookup(fields: dict, key: str, table: dict, word: str) -> bool:
    if word in table:
        fields[key] = table[word]
        return True
    return False


def record_meta(record: dict) -> dict:
    """A record's `meta`, or what its file name tells when it has none."""
    return record["meta"] if "meta" in record else from_path(record["file_name"])[0]


def _flag(value) -> bool | None:
    """True / False from a JSON bool or a yes/no word ('Y', '0', '착용', ...); None when neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, str)):
        word = str(value).strip().lower()
        return True if word in YES else False if word in NO else None
    return None


def as_integer(value) -> int | None:
    """An int, or a string of digits as one ("34"); None for anything else (a bool included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
