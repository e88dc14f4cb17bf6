"""Session stores, chosen by URL (``DASH_AUTH_SESSION_STORE``)."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigurationError
from .base import SessionRecord, SessionStore, redact
from .sqlite import SQLiteStore

__all__ = ["SessionRecord", "SessionStore", "SQLiteStore", "open_store", "redact"]


def open_store(url: str) -> SessionStore:
    """``sqlite:///relative/path`` or ``sqlite:////absolute/path`` (as in SQLAlchemy URLs),
    ``redis://[:password@]host:port/db``, ``rediss://...`` (TLS) or ``unix:///path/redis.sock``."""
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return SQLiteStore(Path(url[len("sqlite:///"):]))
    if url.startswith(("redis://", "rediss://", "unix://")):
        try:
            from .redis import RedisStore
        except ImportError:
            raise ConfigurationError(
                f"DASH_AUTH_SESSION_STORE={redact(url)!r} needs the redis package: "
                "pip install 'dash-enterprise-auth[redis]'"
            ) from None
        try:
            return RedisStore(url)
        except ValueError as exc:
            raise ConfigurationError(f"DASH_AUTH_SESSION_STORE={redact(url)!r} is not valid: {exc}") from None
    raise ConfigurationError(
        f"DASH_AUTH_SESSION_STORE={redact(url)!r} is not valid: use sqlite:///relative/path, "
        "sqlite:////absolute/path, redis://host:port/db or rediss://host:port/db"
    )

