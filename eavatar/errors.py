"""The project's expected errors: a user's mistake or a missing input, never a bug.

Every class here, and every error class elsewhere in the package that derives from
``EAvatarError`` (``SubjectError``, ``SourceError``, ``VideoError``, ``FaceModelMissing``,
``PriorError``, ``LPIPSUnavailable``, ``CheckpointError``), carries a message that names the file,
the field and the fix. ``eavatar`` prints such an error as one line and exits non-zero, with no
traceback (``--debug`` or ``EAVATAR_DEBUG=1`` shows it). This module imports nothing, so
anything can derive from it.
"""

from __future__ import annotations


class EAvatarError(Exception):
    """An expected failure whose message tells the user what is wrong and how to fix it."""


class CheckpointError(EAvatarError, ValueError):
    """A trained-avatar file (``avatar.pt``) that is missing, truncated or not an avatar."""


class CheckpointMissing(CheckpointError, FileNotFoundError):
    """``avatar.pt`` does not exist (also a ``FileNotFoundError``)."""

