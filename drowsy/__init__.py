"""drowsy: detect inattentive drivers in in-cabin camera images.

Class ids are fixed by the competition (see docs/data.md, "Data format").
"""

__version__ = "0.1.0"

CLASSES = ("eye_opened", "eye_closed", "mouth_opened", "mouth_closed", "face", "phone", "cigar")
CLASS_IDS = {name: i for i, name in enumerate(CLASSES)}
