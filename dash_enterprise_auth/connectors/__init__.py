"""Identity connectors: one module per protocol, found by name through entry points.

Third-party connectors register in the entry point group
``dash_enterprise_auth.connectors`` and need no change to the core.
"""
from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from ..errors import ConfigurationError
from .base import Connector, Identity, PasswordConnector, ProviderRequest, Redirect, RedirectConnector

__all__ = [
    "Connector", "Identity", "PasswordConnector", "ProviderRequest", "Redirect", "RedirectConnector",
    "available", "connector_class",
]

GROUP = "dash_enterprise_auth.connectors"


def available() -> dict[str, str]:
    """Connector names and where they live, from installed entry points (built-ins too)."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def connector_class(name: str) -> type[Connector]:
    """The connector registered under ``name``; a ConfigurationError lists the others."""
    target = available().get(name)
    if target is None:
        raise ConfigurationError(
            f"DASH_AUTH_CONNECTOR={name!r} is not valid: use one of {', '.join(sorted(available()))}"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"DASH_AUTH_CONNECTOR={name!r} needs a package that is not installed ({exc.name}): "
            f"pip install 'dash-enterprise-auth[{name}]'"
        ) from None
    return getattr(module, attr)
