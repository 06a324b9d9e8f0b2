"""What an image's path and label file tell about it: subject, scenario, lighting, behaviour, ...

The public AIHub driver-state dataset names every image after how it was recorded. Three naming
schemes (the file names and folders of the download; see docs/data.md):

- controlled: `{subject}_{group}_{scenario}_{lighting}_{gaze target}_{behaviour}_{date}_{time}_{frame}`,
  e.g. `001_G1_01_무광원_계기판_정상주시_20200917_182234_02144.jpg`;
- real road: `R_{subject}_{age}_{sex}_{scenario}_{mask}_{glasses}_{cap}_{frame}` under a vehicle folder
  (`1.버스` bus, `2.승용` car, `3.택시` taxi, `4.트럭` truck);
- folders: `001_G1` (subject, group), `[원천]bbox(통제환경)` / `[라벨]bbox(실제도로환경)` /
  `...(준통제환경)` give the environment, `Training` / `Validation` AIHub's own split.

Values come out in English (`lighting: "left"`). A name that fits no scheme, or a word no table
knows, leaves its keys out: `meta` is then partial, never an error.
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
AIHUB_SPLIT = {"Training": "training", "Validation": "validation"}
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
_REAL_ROAD = re.compile(r"R_(\d+)_(\d+)_([^_]+)_(\d+)_([^_]+)_([^_]+)_([^_]+)_(\d+)")
_VEHICLE_FOLDER = re.compile(r"\d+\.(\S+)")
_SUBJECT_FOLDER = re.compile(r"(\d+)_(G\d+)")  # "001_G1": subject 001, group G1


def from_path(path: str) -> tuple[dict, bool]:
    """(meta, recognised) from a '/'-separated path: its folders and its file name.

    recognised: the file name fits one of the schemes with every word known.
    """
    folder, _, name = path.rpartition("/")
    meta = dict(_from_folders(folder))
    stem = name.rsplit(".", 1)[0]
    for parse in (_controlled, _real_road):
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
        age = _integer(user.get("Age"))
        if age is not None:
            meta["age"] = age
    accessory = document.get("Accessory")
    if isinstance(accessory, dict):
        for key in ("Mask", "Glasses", "Cap"):
            worn = _flag(accessory.get(key))
            if worn is not None:
                meta[key.lower()] = worn
    return meta


@functools.lru_cache(maxsize=4096)
def _from_folders(path: str) -> dict:
    """Meta the folders of a '/'-separated folder path tell (cached: one call per folder; copy it)."""
    meta = {}
    for folder in path.split("/"):
        if folder in AIHUB_SPLIT:
            meta["aihub_split"] = AIHUB_SPLIT[folder]
        environment = next((english for korean, english in ENVIRONMENT if korean in folder), None)
        if environment:
            meta["environment"] = environment
        subject = _SUBJECT_FOLDER.fullmatch(folder)
        if subject:
            meta["subject"], meta["group"] = subject.groups()
        vehicle = _VEHICLE_FOLDER.fullmatch(folder)
        if vehicle and vehicle.group(1) in VEHICLE:
            meta["vehicle"] = VEHICLE[vehicle.group(1)]
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


def _real_road(stem: str) -> tuple[dict, bool] | None:
    match = _REAL_ROAD.fullmatch(stem)
    if match is None:
        return None
    subject, age, sex, scenario, mask, glasses, cap = match.groups()[:7]
    # "R_" keeps a real-road subject apart from the controlled subject with the same number
    fields = {"subject": f"R_{subject}", "age": int(age), "scenario": scenario, "environment": "real road"}
    known = _lookup(fields, "gender", GENDER, sex.lower())
    for key, value in (("mask", mask), ("glasses", glasses), ("cap", cap)):
        worn = _flag(value)
        known &= worn is not None
        if worn is not None:
            fields[key] = worn
    return fields, known


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


def _integer(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
