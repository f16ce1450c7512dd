"""Which channels reach the people of each role, read from two JSON settings.

``VIGIA_NOTIFY_CHANNELS`` names the channels::

    {"oncall":  {"type": "slack", "url": "https://hooks.slack.com/services/..."},
     "pager":   {"type": "webhook", "url": "https://pager.clinic.example/vigia", "secret": "..."},
     "wards":   {"type": "email", "smtp": "smtp://user:pass@mail.clinic.example:587?starttls=1",
                 "from": "vigia@clinic.example", "to": ["ward-7@clinic.example"]},
     "audit":   {"type": "log"}}

``smtps://`` connects with implicit TLS (default port 465); ``smtp://`` defaults to port 25,
or 587 with ``?starttls=1``. A user name or password holding ``@``, ``:`` or ``/`` is
percent-encoded, as in any URL. A channel named "log", of type log, always exists.

``VIGIA_NOTIFY_ROUTES`` maps a role to the names of its channels; the role "*" is the route
of every role not listed, and is ``["log"]`` unless given::

    {"emergency": ["pager", "oncall"], "medical_team": ["wards"], "*": ["log"]}

Nothing configured means every notification goes to the log. Each mistake is reported as
one `ConfigurationError` naming the variable and the key; a message never repeats a URL,
secret or password from the configuration.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from vigia.exceptions import ConfigurationError
from vigia.notify.channels import Channel, EmailChannel, LogChannel, SlackChannel, WebhookChannel

CHANNELS_VARIABLE = "VIGIA_NOTIFY_CHANNELS"
ROUTES_VARIABLE = "VIGIA_NOTIFY_ROUTES"
#: The route of every role that has none of its own.
DEFAULT_ROLE = "*"
#: The channel that always exists, and the default route's only channel.
LOG_CHANNEL = "log"

_SMTP_PORT = 25
_SUBMISSION_PORT = 587
_SMTPS_PORT = 465
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class Routing:
    """The configured channels, and the channels each role's notifications go to."""

    def __init__(self, channels: Mapping[str, Channel], routes: Mapping[str, Sequence[str]]) -> None:
        for name, channel in channels.items():
            if channel.name != name:
                raise ConfigurationError(f"{CHANNELS_VARIABLE}: channel {name!r} is named {channel.name!r}")
        if LOG_CHANNEL in channels and channels[LOG_CHANNEL].kind != "log":
            raise ConfigurationError(f"{CHANNELS_VARIABLE}: the name {LOG_CHANNEL!r} is kept for a channel of type log")
        self._channels: dict[str, Channel] = {LOG_CHANNEL: LogChannel(LOG_CHANNEL), **channels}
        # Without a "*" route an unlisted role would reach nobody: the log is the floor.
        all_routes = {DEFAULT_ROLE: [LOG_CHANNEL], **routes}
        for role, names in all_routes.items():
            unknown = [name for name in names if name not in self._channels]
            if unknown:
                raise ConfigurationError(
                    f"{ROUTES_VARIABLE}: route {role!r} names unknown channel {unknown[0]!r}"
                    f" (known: {', '.join(sorted(self._channels))})",
                    variable=ROUTES_VARIABLE,
                    key=role,
                )
        # A channel named twice in a route would deliver the same message twice.
        self._routes = {role: tuple(dict.fromkeys(names)) for role, names in all_routes.items()}

    @classmethod
    def from_config(cls, channels_json: str | None, routes_json: str | None) -> Routing:
        """Parse and check the two settings; ``None`` or blank means not configured."""
        channels_spec = _json_object(channels_json, CHANNELS_VARIABLE)
        channels = {name: _build_channel(name, spec) for name, spec in channels_spec.items()}
        return cls(channels, _parse_routes(routes_json))

    def names_for(self, role: str) -> list[str]:
        """The names of the channels that reach ``role``, in the configured order."""
        return list(self._routes.get(role, self._routes[DEFAULT_ROLE]))

    def channels_for(self, role: str) -> list[Channel]:
        """The channels that reach ``role``, in the configured order."""
        return [self._channels[name] for name in self.names_for(role)]

    def channel(self, name: str) -> Channel:
        try:
            return self._channels[name]
        except KeyError:
            known = ", ".join(sorted(self._channels))
            raise ConfigurationError(f"no notification channel named {name!r} (known: {known})") from None

    def describe(self) -> dict[str, object]:
        """Channels and routes for listings, with URLs cut to their host and no secrets."""
        return {
            "channels": {name: channel.describe() for name, channel in sorted(self._channels.items())},
            "routes": {role: list(names) for role, names in self._routes.items()},
        }


# --- Parsing ----------------------------------------------------------------------------


def _json_object(text: str | None, variable: str) -> dict[str, object]:
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        # The error's own message would quote the text, and the text holds secrets.
        raise ConfigurationError(
            f"{variable} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})",
            variable=variable,
        ) from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"{variable} must be a JSON object, not {_json_type(value)}", variable=variable)
    return value


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _parse_routes(text: str | None) -> dict[str, list[str]]:
    routes: dict[str, list[str]] = {}
    for role, names in _json_object(text, ROUTES_VARIABLE).items():
        if not role.strip():
            raise ConfigurationError(f"{ROUTES_VARIABLE}: a route has an empty role", variable=ROUTES_VARIABLE)
        if not isinstance(names, list):
            raise ConfigurationError(
                f"{ROUTES_VARIABLE}: route {role!r} must be a list of channel names, not {_json_type(names)}",
                variable=ROUTES_VARIABLE,
                key=role,
            )
        if not all(isinstance(name, str) for name in names):
            raise ConfigurationError(
                f"{ROUTES_VARIABLE}: route {role!r} must hold channel names (strings) only",
                variable=ROUTES_VARIABLE,
                key=role,
            )
        routes[role] = names
    return routes


class _Spec:
    """One channel's JSON object, read with errors that name the variable, channel and key."""

    def __init__(self, name: str, values: Mapping[str, object]) -> None:
        self.name = name
        self.values = values

    def error(self, problem: str) -> ConfigurationError:
        return ConfigurationError(
            f"{CHANNELS_VARIABLE}: channel {self.name!r}: {problem}", variable=CHANNELS_VARIABLE, key=self.name
        )

    def text(self, key: str) -> str:
        """A required non-empty string; its value is never quoted back (it may be a secret)."""
        if key not in self.values:
            raise self.error(f"missing {key!r}")
        value = self.values[key]
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"{key!r} must be a non-empty string")
        return value.strip()

    def http_url(self) -> str:
        url = self.text("url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise self.error(f"'url' must be an http or https URL, not {parts.scheme or 'one without a scheme'}")
        if not parts.hostname:
            raise self.error("'url' has no host")
        return url

    def address(self, key: str) -> str:
        value = self.text(key)
        if "@" not in value:
            raise self.error(f"{key!r} is not an e-mail address")
        return value

    def recipients(self) -> list[str]:
        if "to" not in self.values:
            raise self.error("missing 'to'")
        value = self.values["to"]
        if not isinstance(value, list):
            raise self.error(f"'to' must be a list of e-mail addresses, not {_json_type(value)}")
        if not value:
            raise self.error("'to' is empty: name at least one recipient")
        for index, address in enumerate(value):
            if not isinstance(address, str) or "@" not in address:
                raise self.error(f"'to'[{index}] is not an e-mail address")
        return [address.strip() for address in value]


@dataclass(frozen=True, slots=True)
class _SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    starttls: bool
    use_ssl: bool


def _smtp_server(spec: _Spec) -> _SmtpServer:
    """The server of an ``smtp://`` or ``smtps://`` URL (as `arq.RedisSettings.from_dsn` reads a DSN)."""
    parts = urlsplit(spec.text("smtp"))
    if parts.scheme not in ("smtp", "smtps"):
        raise spec.error(f"'smtp' must be an smtp:// or smtps:// URL, not {parts.scheme or 'one without a scheme'}")
    if not parts.hostname:
        raise spec.error("'smtp' URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise spec.error("'smtp' URL has an invalid port") from None
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - {"starttls"})
    if unknown:
        raise spec.error(f"'smtp' URL has unknown option {unknown[0]!r} (known: starttls)")
    starttls_option = options.get("starttls", "0").lower()
    if starttls_option not in _TRUE | _FALSE:
        raise spec.error("'smtp' URL option starttls must be 1 or 0")
    starttls = starttls_option in _TRUE
    use_ssl = parts.scheme == "smtps"
    if starttls and use_ssl:
        raise spec.error("'smtp' URL: smtps:// is already encrypted, starttls does not apply")
    default_port = _SMTPS_PORT if use_ssl else _SUBMISSION_PORT if starttls else _SMTP_PORT
    return _SmtpServer(
        host=parts.hostname,
        port=port or default_port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        starttls=starttls,
        use_ssl=use_ssl,
    )


def _slack(spec: _Spec) -> Channel:
    return SlackChannel(spec.name, spec.http_url())


def _webhook(spec: _Spec) -> Channel:
    return WebhookChannel(spec.name, spec.http_url(), spec.text("secret"))


def _email(spec: _Spec) -> Channel:
    server = _smtp_server(spec)
    return EmailChannel(
        spec.name,
        host=server.host,
        port=server.port,
        sender=spec.address("from"),
        recipients=spec.recipients(),
        username=server.username,
        password=server.password,
        starttls=server.starttls,
        use_ssl=server.use_ssl,
    )


def _log(spec: _Spec) -> Channel:
    return LogChannel(spec.name)


#: Each channel type: how to build it, and the keys its object may hold.
_TYPES: Mapping[str, tuple[Callable[[_Spec], Channel], frozenset[str]]] = {
    "slack": (_slack, frozenset({"type", "url"})),
    "webhook": (_webhook, frozenset({"type", "url", "secret"})),
    "email": (_email, frozenset({"type", "smtp", "from", "to"})),
    "log": (_log, frozenset({"type"})),
}


def _build_channel(name: str, values: object) -> Channel:
    spec = _Spec(name, {})
    if not name.strip():
        raise spec.error("a channel needs a name")
    if not isinstance(values, dict):
        raise spec.error(f"must be a JSON object, not {_json_type(values)}")
    spec = _Spec(name, values)
    kind = values.get("type")
    if not isinstance(kind, str) or kind not in _TYPES:
        problem = "missing 'type'" if kind is None else f"unknown type {kind!r}"
        raise spec.error(f"{problem} (expected one of: {', '.join(sorted(_TYPES))})")
    build, keys = _TYPES[kind]
    unknown = sorted(set(values) - keys)
    if unknown:
        # Most often a typo ("secert", "recipients"), which would otherwise be silently ignored.
        raise spec.error(f"unknown key {unknown[0]!r} for type {kind} (expected: {', '.join(sorted(keys))})")
    return build(spec)
