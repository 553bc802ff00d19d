"""The on-disk cache: expensive results keyed by everything that produced them."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$COURSEKIT_CACHE`` when set, else ``~/.cache/coursekit``."""
    env = os.environ.get("COURSEKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "coursekit"
