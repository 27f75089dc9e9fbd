"""The media kit's failures, as branches of `nemo_mcp.errors`.

    NemoError
    └── InputError
        ├── MediaError                 anything the kit refuses (catch this for "preview skipped")
        │   ├── MissingMediaError      no readable file at the path
        │   ├── NoPictureError         a preview asked of a file with no picture (audio)
        │   └── (the three below are MediaErrors too)
        ├── UnsupportedFileError
        │   ├── UnsupportedMediaError  an extension the kit does not read at all
        │   ├── MislabelledFileError   the content is another type than the extension says
        │   └── DamagedFileError       truncated, corrupt or undecodable
        └── FileTooLargeError
            └── CannotShrinkError      no H.264 settings fit the limit (the file is too long)

Every message is one plain sentence for a person: what is wrong and what to do. None of
them carries FFmpeg's, PyAV's or Pillow's own wording.
"""

from __future__ import annotations

from nemo_mcp.errors import FileTooLargeError, InputError, UnsupportedFileError


class MediaError(InputError):
    """A local media file the kit cannot probe, convert, shrink or preview."""


class MissingMediaError(MediaError):
    """There is no regular, readable file at the path."""


class NoPictureError(MediaError):
    """A preview was asked of a file without a picture (sound only)."""


class UnsupportedMediaError(MediaError, UnsupportedFileError):
    """An extension the kit does not read at all (`notes.exe`)."""


class MislabelledFileError(MediaError, UnsupportedFileError):
    """The content is another type than the extension says (`IMG.jpg` that is text)."""


class DamagedFileError(MediaError, UnsupportedFileError):
    """The file is truncated, corrupt, or its pictures cannot be decoded."""


class CannotShrinkError(MediaError, FileTooLargeError):
    """Even the smallest settings the kit allows would not fit the byte limit."""


__all__ = [
    "CannotShrinkError",
    "DamagedFileError",
    "MediaError",
    "MislabelledFileError",
    "MissingMediaError",
    "NoPictureError",
    "UnsupportedMediaError",
]
