"""The one place that reads the environment.

Every setting is an :class:`Option` with a parser. Values come from
``DASH_AUTH_*`` variables (``*_FILE`` variants for secrets) or from keyword
arguments to ``protect(app, **overrides)``; a keyword wins over the variable.
A malformed value raises :class:`ConfigurationError` naming the variable and
what it accepts, so start-up stops with that line last.
"""
from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .errors import ConfigurationError

log = logging.getLogger("dash_enterprise_auth")

PREFIX = "DASH_AUTH_"


class Secret:
    """A secret value whose repr, str and log lines show only asterisks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'**********'"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# Parsers take a string from the environment or a Python value from code, and
# raise ValueError with the accepted values on anything else.

def text(value: Any) -> str:
    if not isinstance(value, (str, Path)):
        raise ValueError("a string")
    return str(value).strip()


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("true", "1", "yes"):
        return True
    if word in ("false", "0", "no"):
        return False
    raise ValueError("one of true, false, 1, 0, yes, no")


def seconds(value: Any) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValueError("a whole number of seconds greater than 0") from None
    if isinstance(number, bool) or number <= 0:
        raise ValueError("a whole number of seconds greater than 0")
    return number


def count(value: Any) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValueError("a whole number, 0 or more") from None
    if isinstance(number, bool) or number < 0:
        raise ValueError("a whole number, 0 or more")
    return number


def name_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, Iterable):
        items = [str(item) for item in value]
    else:
        raise ValueError("a comma-separated list")
    return tuple(item.strip() for item in items if item.strip())


def one_of(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        word = str(getattr(value, "value", value)).strip().lower()
        if word not in choices:
            raise ValueError("one of " + ", ".join(choices))
        return word

    return parse


@dataclass(frozen=True)
class Option:
    """One setting: its variable name, how to parse it, its default.

    ``secret`` options also read ``NAME_FILE`` (the file's content, stripped)
    and come back wrapped in :class:`Secret`.
    """

    name: str
    parse: Callable[[Any], Any]
    default: Any = None
    secret: bool = False
    help: str = ""

    @property
    def keyword(self) -> str:
        """The ``protect(app, keyword=...)`` spelling of this option."""
        for prefix in (PREFIX, "DASH_"):
            if self.name.startswith(prefix):
                return self.name[len(prefix):].lower()
        return self.name.lower()


class Settings:
    """Raw values by variable name, parsed on demand by :meth:`get`."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    @classmethod
    def load(
        cls,
        known: Iterable[Option],
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> "Settings":
        """Collect values from ``environ`` and keyword ``overrides``; an unknown keyword is an error."""
        environ = os.environ if environ is None else environ
        known = list(known)
        names = {option.name for option in known}
        names |= {option.name + "_FILE" for option in known if option.secret}
        values: dict[str, Any] = {k: v for k, v in environ.items() if k in names}
        by_keyword = {option.keyword: option for option in known}
        for keyword, value in (overrides or {}).items():
            option = by_keyword.get(keyword)
            if option is None:
                guess = difflib.get_close_matches(keyword, by_keyword, n=1)
                hint = f"; did you mean {guess[0]}=?" if guess else ""
                raise ConfigurationError(f"protect() got an unknown setting {keyword}={hint}")
            values[option.name] = value
            values.pop(option.name + "_FILE", None)
        return cls(values)

    @staticmethod
    def warn_unknown(known: Iterable[Option], environ: Mapping[str, str] | None = None) -> None:
        """Log each ``DASH_AUTH_*`` variable nobody reads, with a did-you-mean:
        a typo there would otherwise silently weaken a deployment."""
        environ = os.environ if environ is None else environ
        names = set()
        for option in known:
            names |= {option.name, option.name + "_FILE"} if option.secret else {option.name}
        for name in sorted(k for k in environ if k.startswith(PREFIX) and k not in names):
            guess = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean {guess[0]}?" if guess else ""
            log.warning("dash-enterprise-auth: unknown setting %s is ignored%s", name, hint)

    def is_set(self, option: Option) -> bool:
        return option.name in self._values or option.name + "_FILE" in self._values

    def get(self, option: Option) -> Any:
        """The parsed value, or the default; ConfigurationError names the variable."""
        raw = self._values.get(option.name)
        if raw is None and option.secret and option.name + "_FILE" in self._values:
            raw = _read_secret_file(option.name + "_FILE", self._values[option.name + "_FILE"])
        if isinstance(raw, Secret):
            raw = raw.reveal()
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return option.default
        try:
            value = option.parse(raw)
        except ValueError as exc:
            shown = "'**********'" if option.secret else repr(raw)
            raise ConfigurationError(f"{option.name}={shown} is not valid: use {exc}") from None
        return Secret(value) if option.secret else value


def _read_secret_file(name: str, path: Any) -> str:
    try:
        return Path(str(path)).read_text().strip()
    except OSError as exc:
        raise ConfigurationError(
            f"{name}={str(path)!r} cannot be read ({exc.strerror}): use the path of a readable file"
        ) from None
