"""Errors a user can cause. The CLI prints their message as one line on stderr and exits non-zero."""

from __future__ import annotations


class UpscalerError(Exception):
    """A failure with a message fit for the user: one line, no traceback."""


class ModelLoadError(UpscalerError):
    """A weights file that is missing, unreadable or of an architecture we do not know."""


class MediaError(UpscalerError):
    """An input that is missing, not an image/video, corrupt, empty, or an output we cannot write."""
