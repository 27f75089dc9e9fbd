"""The local media kit: probe, convert, shrink and preview files before they are uploaded,
and compose simple timelines into MP4s (the sandbox's renders).

Built on PyAV (FFmpeg inside its wheels), Pillow and pillow-heif. Importing this package is
cheap: each name below loads its module (and PyAV or Pillow) on first use, so a server that
never touches media never pays for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nemo_mcp.media.convert import (
        Conversion,
        conversion_for,
        convert_for_upload,
        converted_name,
        heic_to_jpeg,
        remux_to_mp4,
    )
    from nemo_mcp.media.errors import (
        CannotShrinkError,
        DamagedFileError,
        MediaError,
        MislabelledFileError,
        MissingMediaError,
        NoPictureError,
        UnsupportedMediaError,
    )
    from nemo_mcp.media.preview import Preview, contact_sheet, poster_frame
    from nemo_mcp.media.probing import MediaInfo, probe
    from nemo_mcp.media.shrink import (
        LIMIT_200_MB,
        LIMIT_500_MB,
        ShrinkPlan,
        ShrinkResult,
        plan_shrink,
        shrink_video,
    )

_HOMES = {
    **dict.fromkeys(
        [
            "CannotShrinkError",
            "DamagedFileError",
            "MediaError",
            "MislabelledFileError",
            "MissingMediaError",
            "NoPictureError",
            "UnsupportedMediaError",
        ],
        "errors",
    ),
    **dict.fromkeys(["MediaInfo", "probe"], "probing"),
    **dict.fromkeys(
        [
            "Conversion",
            "conversion_for",
            "convert_for_upload",
            "converted_name",
            "heic_to_jpeg",
            "remux_to_mp4",
        ],
        "convert",
    ),
    **dict.fromkeys(
        [
            "LIMIT_200_MB",
            "LIMIT_500_MB",
            "ShrinkPlan",
            "ShrinkResult",
            "plan_shrink",
            "shrink_video",
        ],
        "shrink",
    ),
    **dict.fromkeys(["Preview", "contact_sheet", "poster_frame"], "preview"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'nemo_mcp.media' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"nemo_mcp.media.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "LIMIT_200_MB",
    "LIMIT_500_MB",
    "CannotShrinkError",
    "Conversion",
    "DamagedFileError",
    "MediaError",
    "MediaInfo",
    "MislabelledFileError",
    "MissingMediaError",
    "NoPictureError",
    "Preview",
    "ShrinkPlan",
    "ShrinkResult",
    "UnsupportedMediaError",
    "contact_sheet",
    "conversion_for",
    "convert_for_upload",
    "converted_name",
    "heic_to_jpeg",
    "plan_shrink",
    "poster_frame",
    "probe",
    "remux_to_mp4",
    "shrink_video",
]
