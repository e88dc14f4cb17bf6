"""Session stores, chosen by URL (``DASH_AUTH_SESSION_STORE``)."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigurationError
from .base import SessionRecord, SessionStore
from .sqlite import SQLiteStore

__all__ = ["SessionRecord", "SessionStore", "SQLiteStore", "open_store"]


def open_store(url: str) -> SessionStore:
    """``sqlite:///relative/path`` or ``sqlite:////absolute/path``, as in SQLAlchemy URLs."""
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return SQLiteStore(Path(url[len("sqlite:///"):]))
    raise ConfigurationError(
        f"DASH_AUTH_SESSION_STORE={url!r} is not valid: use sqlite:///relative/path or "
        "sqlite:////absolute/path (Redis stores are not available in this release)"
    )
