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
from urllib.parse import urlsplit

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


def http_url(value: Any) -> str:
    url = text(value)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError("an http(s) URL, e.g. https://host")
    return url


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
    and come back wrapped in :class:`Secret`. ``fallbacks`` are older variables
    read, in order, while ``name`` is unset (dash-auth 1.x's ``PLOTLY_DOMAIN``);
    they share the option's one keyword, which wins over all of them.
    """

    name: str
    parse: Callable[[Any], Any]
    default: Any = None
    secret: bool = False
    help: str = ""
    fallbacks: tuple[str, ...] = ()

    @property
    def variables(self) -> tuple[str, ...]:
        """Every variable this option reads, in the order it reads them."""
        return (self.name, *((self.name + "_FILE",) if self.secret else ()), *self.fallbacks)

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
        names = {variable for option in known for variable in option.variables}
        values: dict[str, Any] = {k: v for k, v in environ.items() if k in names}
        by_keyword: dict[str, dict[str, Option]] = {}
        for option in known:
            by_keyword.setdefault(option.keyword, {})[option.name] = option
        for keyword, value in (overrides or {}).items():
            options = list(by_keyword.get(keyword, {}).values())
            if not options:
                guess = difflib.get_close_matches(keyword, by_keyword, n=1)
                hint = f"; did you mean {guess[0]}=?" if guess else ""
                raise ConfigurationError(f"protect() got an unknown setting {keyword}={hint}")
            if len(options) > 1:  # a keyword must name one setting (a variable it replaces is a fallback)
                raise ConfigurationError(f"protect() got {keyword}=, the keyword of "
                                         f"{' and '.join(o.name for o in options)}: set the variable instead")
            option = options[0]
            for variable in option.variables:  # the keyword wins over every variable of its option
                values.pop(variable, None)
            values[option.name] = value
        return cls(values)

    @staticmethod
    def warn_unknown(known: Iterable[Option], environ: Mapping[str, str] | None = None) -> None:
        """Log each ``DASH_AUTH_*`` variable nobody reads, with a did-you-mean:
        a typo there would otherwise silently weaken a deployment."""
        environ = os.environ if environ is None else environ
        names = {variable for option in known for variable in option.variables}
        for name in sorted(k for k in environ if k.startswith(PREFIX) and k not in names):
            guess = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean {guess[0]}?" if guess else ""
            log.warning("dash-enterprise-auth: unknown setting %s is ignored%s", name, hint)

    def is_set(self, option: Option) -> bool:
        return any(variable in self._values for variable in option.variables)

    def get(self, option: Option) -> Any:
        """The parsed value, or the default; ConfigurationError names the variable it came from."""
        variable, raw = self._raw(option)
        if raw is None:
            return option.default
        try:
            value = option.parse(raw)
        except ValueError as exc:
            shown = "'**********'" if option.secret else repr(raw)
            raise ConfigurationError(f"{variable}={shown} is not valid: use {exc}") from None
        return Secret(value) if option.secret else value

    def _raw(self, option: Option) -> tuple[str, Any]:
        """(variable, raw value) of the first of the option's variables that holds a value."""
        for variable in option.variables:
            raw = self._values.get(variable)
            if option.secret and variable == option.name + "_FILE":
                if self._values.get(option.name) is not None or raw is None:
                    continue  # NAME, when it holds a string (even blank), is read instead of NAME_FILE
                raw, variable = _read_secret_file(variable, raw), option.name
            if isinstance(raw, Secret):
                raw = raw.reveal()
            if raw is not None and not (isinstance(raw, str) and not raw.strip()):
                return variable, raw
        return option.name, None


def _read_secret_file(name: str, path: Any) -> str:
    try:
        return Path(str(path)).read_text().strip()
    except OSError as exc:
        raise ConfigurationError(
            f"{name}={str(path)!r} cannot be read ({exc.strerror}): use the path of a readable file"
        ) from None
