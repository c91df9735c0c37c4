"""Per-system profiles: how big each source system is, how completely it
records FPS numbers and names, and how it numbers files and photos."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accord.federation import Source


@dataclass(frozen=True)
class _Profile:
    size: int  # files at scale 1 (provincial systems; OMS is sized by its statuses)
    fps_missing: float  # share of files without an FPS number
    name_variant: float  # share of files spelling the name differently
    id_format: str  # str.format with n (a unique number) and y (a year)
    id_digits: int
    photo_format: str  # str.format with id
    parole_board: bool = False  # the province grants its own paroles
    language: str = "en"


OMS_STATUS_COUNTS = (
    ("IN_CUSTODY", 13_000),
    ("SUPERVISED", 9_000),
    ("UAL", 350),
    ("WARRANT_EXPIRED", 22_000),
    ("ARCHIVED", 103_000),
)
_FEDERAL_PROFILE = _Profile(0, 0.0, 0.0, "{n:09d}", 8, "OMS/PHOTO/{id}.jpg")
_PROFILES: dict[str, _Profile] = {
    "BC": _Profile(70_000, 0.18, 0.03, "CS{n:08d}", 7, "cornet-mugshot-{id}.png"),
    "ON": _Profile(100_000, 0.16, 0.03, "{n:08d}", 8, "OTIS/IMG/{id}.jpg", parole_board=True),
    "QC": _Profile(
        80_000,
        0.22,
        0.05,
        "{y}-{n:06d}",
        6,
        "photos/dacor/{id}.jpg",
        parole_board=True,
        language="fr",
    ),
    "SK": _Profile(30_000, 0.24, 0.03, "SK-{n:07d}", 7, "sk/{id}.jpg"),
    "YT": _Profile(3_000, 0.20, 0.03, "Y{n:05d}", 5, "yt/{id}.jpg"),
}


def profile(source: Source) -> _Profile:
    if is_federal(source):
        return _FEDERAL_PROFILE
    default = _Profile(
        10_000,
        0.2,
        0.03,
        source.code.replace("-", "") + "{n:07d}",
        7,
        "photo/{id}.jpg",
        language="fr" if source.jurisdiction == "QC" else "en",
    )
    return _PROFILES.get(source.jurisdiction, default)


def is_federal(source: Source) -> bool:
    return source.jurisdiction.startswith("CA")
