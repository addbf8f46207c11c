"""Who is acting: ``SLIPWAY_USER`` if set, else the login name of the process."""

from __future__ import annotations

import getpass
import os

USER_ENV = "SLIPWAY_USER"


def current_user() -> str:
    name = os.environ.get(USER_ENV, "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers with an arbitrary uid)
        return "unknown"
