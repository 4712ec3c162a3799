"""Errors a user can cause; the CLI prints them as one line and exits non-zero."""


class CbidError(Exception):
    """Base class of user-facing errors."""


class InputError(CbidError, ValueError):
    """Bad input: missing/unreadable file, not an image, too small, NaN, bad option."""
