"""Routing: reading VIGIA_NOTIFY_CHANNELS and VIGIA_NOTIFY_ROUTES, and which channels reach a role."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vigia.exceptions import ConfigurationError
from vigia.notify import EmailChannel, LogChannel, Message, Routing, SlackChannel, Urgency, WebhookChannel

SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXslacksecretXXXX"
WEBHOOK_URL = "https://pager.clinic.example:8443/hooks/vigia-secret-path?token=abc"
WEBHOOK_SECRET = "whsec-0123456789"
SMTP_PASSWORD = "mail-pass-123"

CHANNELS: dict[str, Any] = {
    "oncall": {"type": "slack", "url": SLACK_URL},
    "pager": {"type": "webhook", "url": WEBHOOK_URL, "secret": WEBHOOK_SECRET},
    "wards": {
        "type": "email",
        "smtp": f"smtp://vigia:{SMTP_PASSWORD}@mail.clinic.example:587?starttls=1",
        "from": "vigia@clinic.example",
        "to": ["ward-7@clinic.example", "chief@hospital.example", "night@clinic.example"],
    },
    "audit": {"type": "log"},
}
ROUTES = {"emergency": ["pager", "oncall"], "medical_team": ["wards"], "*": ["audit", "log"]}


def routing(channels: dict[str, Any] | None = None, routes: dict[str, Any] | None = None) -> Routing:
    return Routing.from_config(
        json.dumps(CHANNELS if channels is None else channels), json.dumps(ROUTES if routes is None else routes)
    )


def config_error(channels: Any = None, routes: Any = None) -> str:
    """The message of the error raised for these settings (a non-str value is sent as JSON)."""
    channels_json = channels if isinstance(channels, str) or channels is None else json.dumps(channels)
    routes_json = routes if isinstance(routes, str) or routes is None else json.dumps(routes)
    with pytest.raises(ConfigurationError) as error:
        Routing.from_config(channels_json, routes_json)
    return str(error.value)


# --- What a configuration gives ---------------------------------------------------------


def test_each_channel_type_is_built_from_its_spec() -> None:
    configured = routing()

    assert isinstance(configured.channel("oncall"), SlackChannel)
    assert isinstance(configured.channel("pager"), WebhookChannel)
    assert isinstance(configured.channel("wards"), EmailChannel)
    assert isinstance(configured.channel("audit"), LogChannel)
    assert [configured.channel(name).kind for name in ("oncall", "pager", "wards", "audit", "log")] == [
        "slack",
        "webhook",
        "email",
        "log",
        "log",
    ]


def test_a_role_gets_its_own_route_in_order_and_other_roles_the_star_route() -> None:
    configured = routing()

    assert configured.names_for("emergency") == ["pager", "oncall"]
    assert [channel.name for channel in configured.channels_for("emergency")] == ["pager", "oncall"]
    assert configured.names_for("medical_team") == ["wards"]
    assert configured.names_for("specialists") == ["audit", "log"]
    assert configured.names_for("operations") == ["audit", "log"]


def test_nothing_configured_sends_every_role_to_the_log() -> None:
    for channels_json, routes_json in [(None, None), ("", "  "), ("{}", "{}")]:
        configured = Routing.from_config(channels_json, routes_json)

        [channel] = configured.channels_for("medical_team")
        assert isinstance(channel, LogChannel)
        assert channel.name == "log"
        assert configured.names_for("anything") == ["log"]


def test_routes_without_a_star_route_send_unlisted_roles_to_the_log() -> None:
    configured = routing(routes={"emergency": ["oncall"]})

    assert configured.names_for("emergency") == ["oncall"]
    assert configured.names_for("operations") == ["log"]


def test_the_log_channel_exists_without_being_configured() -> None:
    configured = routing(channels={"oncall": {"type": "slack", "url": SLACK_URL}}, routes={"*": ["oncall", "log"]})

    assert configured.names_for("x") == ["oncall", "log"]
    assert configured.channel("log").kind == "log"


def test_a_channel_named_twice_in_a_route_is_used_once() -> None:
    assert routing(routes={"emergency": ["pager", "oncall", "pager"]}).names_for("emergency") == ["pager", "oncall"]


def test_a_role_may_be_routed_to_no_channel_on_purpose() -> None:
    assert routing(routes={"operations": []}).channels_for("operations") == []


def test_the_smtp_url_gives_server_credentials_and_tls() -> None:
    def email(smtp: str) -> dict[str, object]:
        spec = {"type": "email", "smtp": smtp, "from": "vigia@clinic.example", "to": ["a@clinic.example"]}
        described = routing(channels={"mail": spec}, routes={}).channel("mail").describe()
        return {key: described[key] for key in ("target", "recipient_domains")}

    assert email("smtp://mail.clinic.example")["target"] == "mail.clinic.example:25"
    assert email("smtp://mail.clinic.example?starttls=1")["target"] == "mail.clinic.example:587"
    assert email("smtps://u:p@mail.clinic.example")["target"] == "mail.clinic.example:465"
    assert email("smtp://mail.clinic.example:2525?starttls=true")["target"] == "mail.clinic.example:2525"


# --- describe() shows targets, never secrets --------------------------------------------


def test_describe_shows_hosts_and_recipient_domains_but_no_secret() -> None:
    described = routing().describe()

    assert described["channels"] == {
        "audit": {"name": "audit", "kind": "log", "target": "vigia.notifications"},
        "log": {"name": "log", "kind": "log", "target": "vigia.notifications"},
        "oncall": {"name": "oncall", "kind": "slack", "target": "hooks.slack.com"},
        "pager": {"name": "pager", "kind": "webhook", "target": "pager.clinic.example:8443"},
        "wards": {
            "name": "wards",
            "kind": "email",
            "target": "mail.clinic.example:587",
            "recipient_domains": ["clinic.example", "hospital.example"],
        },
    }
    assert described["routes"] == {"*": ["audit", "log"], "emergency": ["pager", "oncall"], "medical_team": ["wards"]}
    text = json.dumps(described) + repr(routing().channels_for("emergency"))
    for secret in ("XXXXslacksecretXXXX", "/services/", "vigia-secret-path", "token=abc", WEBHOOK_SECRET):
        assert secret not in text
    assert SMTP_PASSWORD not in text
    assert "ward-7" not in text


# --- One clear error per mistake --------------------------------------------------------


@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        ("{not json", "VIGIA_NOTIFY_CHANNELS is not valid JSON: Expecting property name enclosed in double quotes"),
        ([], "VIGIA_NOTIFY_CHANNELS must be a JSON object, not an array"),
        ('"slack"', "VIGIA_NOTIFY_CHANNELS must be a JSON object, not a string"),
        ({"x": "slack"}, "VIGIA_NOTIFY_CHANNELS: channel 'x': must be a JSON object, not a string"),
        ({"x": {"url": SLACK_URL}}, "VIGIA_NOTIFY_CHANNELS: channel 'x': missing 'type' (expected one of: email, log"),
        ({"x": {"type": "sms"}}, "VIGIA_NOTIFY_CHANNELS: channel 'x': unknown type 'sms' (expected one of: email, log"),
        ({"x": {"type": "slack"}}, "VIGIA_NOTIFY_CHANNELS: channel 'x': missing 'url'"),
        ({"x": {"type": "slack", "url": ""}}, "VIGIA_NOTIFY_CHANNELS: channel 'x': 'url' must be a non-empty string"),
        ({"x": {"type": "slack", "url": 7}}, "VIGIA_NOTIFY_CHANNELS: channel 'x': 'url' must be a non-empty string"),
        (
            {"x": {"type": "slack", "url": "ftp://hooks.slack.com/secret"}},
            "VIGIA_NOTIFY_CHANNELS: channel 'x': 'url' must be an http or https URL, not ftp",
        ),
        (
            {"x": {"type": "slack", "url": "hooks.slack.com/secret"}},
            "VIGIA_NOTIFY_CHANNELS: channel 'x': 'url' must be an http or https URL, not one without a scheme",
        ),
        ({"x": {"type": "slack", "url": "https:///secret"}}, "VIGIA_NOTIFY_CHANNELS: channel 'x': 'url' has no host"),
        (
            {"x": {"type": "slack", "url": SLACK_URL, "channel": "#alerts"}},
            "VIGIA_NOTIFY_CHANNELS: channel 'x': unknown key 'channel' for type slack (expected: type, url)",
        ),
        ({"x": {"type": "webhook", "url": WEBHOOK_URL}}, "VIGIA_NOTIFY_CHANNELS: channel 'x': missing 'secret'"),
        (
            {"x": {"type": "webhook", "url": WEBHOOK_URL, "secret": "  "}},
            "VIGIA_NOTIFY_CHANNELS: channel 'x': 'secret' must be a non-empty string",
        ),
        ({"log": {"type": "slack", "url": SLACK_URL}}, "the name 'log' is kept for a channel of type log"),
    ],
)
def test_invalid_channels_are_reported_with_the_variable_and_the_key(channels: Any, expected: str) -> None:
    assert expected in config_error(channels=channels)


EMAIL = {"type": "email", "smtp": "smtp://mail.clinic.example", "from": "vigia@clinic.example", "to": ["a@b.example"]}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"smtp": None}, "channel 'm': missing 'smtp'"),
        ({"from": None}, "channel 'm': missing 'from'"),
        ({"from": "vigia"}, "channel 'm': 'from' is not an e-mail address"),
        ({"to": None}, "channel 'm': missing 'to'"),
        ({"to": []}, "channel 'm': 'to' is empty: name at least one recipient"),
        ({"to": "a@b.example"}, "channel 'm': 'to' must be a list of e-mail addresses, not a string"),
        ({"to": ["a@b.example", "nobody"]}, "channel 'm': 'to'[1] is not an e-mail address"),
        ({"to": ["a@b.example", 3]}, "channel 'm': 'to'[1] is not an e-mail address"),
        ({"smtp": "http://mail.clinic.example"}, "channel 'm': 'smtp' must be an smtp:// or smtps:// URL, not http"),
        ({"smtp": "smtp://user:pw@:25"}, "channel 'm': 'smtp' URL has no host"),
        ({"smtp": "smtp:///"}, "channel 'm': 'smtp' URL has no host"),
        ({"smtp": "smtp://mail.clinic.example:port"}, "channel 'm': 'smtp' URL has an invalid port"),
        ({"smtp": "smtp://mail.clinic.example?tls=1"}, "channel 'm': 'smtp' URL has unknown option 'tls'"),
        ({"smtp": "smtp://mail.clinic.example?starttls=maybe"}, "channel 'm': 'smtp' URL option starttls must be"),
        ({"smtp": "smtps://mail.clinic.example?starttls=1"}, "smtps:// is already encrypted"),
        ({"recipients": ["a@b.example"]}, "channel 'm': unknown key 'recipients' for type email"),
    ],
)
def test_invalid_email_channels_are_reported(changes: dict[str, Any], expected: str) -> None:
    spec = {key: value for key, value in {**EMAIL, **changes}.items() if value is not None}

    message = config_error(channels={"m": spec})

    assert message.startswith("VIGIA_NOTIFY_CHANNELS: ")
    assert expected in message


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ("[oops", "VIGIA_NOTIFY_ROUTES is not valid JSON"),
        (["log"], "VIGIA_NOTIFY_ROUTES must be a JSON object, not an array"),
        (
            {"emergency": "oncall"},
            "VIGIA_NOTIFY_ROUTES: route 'emergency' must be a list of channel names, not a string",
        ),
        ({"emergency": None}, "VIGIA_NOTIFY_ROUTES: route 'emergency' must be a list of channel names, not null"),
        ({"emergency": ["oncall", 1]}, "VIGIA_NOTIFY_ROUTES: route 'emergency' must hold channel names (strings) only"),
        (
            {"emergency": ["oncall", "sms"]},
            "VIGIA_NOTIFY_ROUTES: route 'emergency' names unknown channel 'sms'"
            " (known: audit, log, oncall, pager, wards)",
        ),
        ({"*": ["pagr"]}, "VIGIA_NOTIFY_ROUTES: route '*' names unknown channel 'pagr'"),
        ({" ": ["log"]}, "VIGIA_NOTIFY_ROUTES: a route has an empty role"),
    ],
)
def test_invalid_routes_are_reported_with_the_variable_and_the_role(routes: Any, expected: str) -> None:
    assert expected in config_error(channels=CHANNELS, routes=routes)


def test_an_error_never_repeats_a_secret_from_the_configuration() -> None:
    bad_url = {"x": {"type": "slack", "url": "ftp://hooks.slack.com/services/XXXXslacksecretXXXX"}}
    bad_smtp = {"m": {**EMAIL, "smtp": f"smtp://vigia:{SMTP_PASSWORD}@mail.clinic.example:port"}}
    broken_json = '{"x": {"type": "webhook", "url": "https://a.example", "secret": "whsec-0123456789"'

    for message in (config_error(channels=bad_url), config_error(channels=bad_smtp), config_error(broken_json)):
        assert "XXXXslacksecretXXXX" not in message
        assert SMTP_PASSWORD not in message
        assert WEBHOOK_SECRET not in message


def test_the_error_carries_the_variable_and_key_as_details() -> None:
    with pytest.raises(ConfigurationError) as error:
        Routing.from_config(json.dumps({"x": {"type": "sms"}}), None)

    assert error.value.code == "configuration_error"
    assert error.value.details == {"variable": "VIGIA_NOTIFY_CHANNELS", "key": "x"}


def test_asking_for_an_unknown_channel_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"no notification channel named 'sms' \(known: audit, log, oncall"):
        routing().channel("sms")


def test_routing_can_be_built_from_channel_objects() -> None:
    slack = SlackChannel("oncall", SLACK_URL)
    configured = Routing({"oncall": slack}, {"emergency": ["oncall", "log"]})

    assert configured.channels_for("emergency")[0] is slack
    assert configured.names_for("medical_team") == ["log"]
    with pytest.raises(ConfigurationError, match="channel 'pager' is named 'oncall'"):
        Routing({"pager": slack}, {})


# --- The message ------------------------------------------------------------------------


def test_a_message_renders_prefix_subject_text_and_fields() -> None:
    fields: dict[str, str | int | bool | None] = {
        "pipeline": "documents",
        "attempt": 2,
        "critical": True,
        "stage": None,
    }
    message = Message("m-1", "Stage failed", "Job j-1 needs a look.", Urgency.CRITICAL, "operations", fields=fields)
    fields["pipeline"] = "changed after the message was built"

    assert message.rendered() == (
        "🚨 URGENT Stage failed\nJob j-1 needs a look.\npipeline: documents\nattempt: 2\ncritical: True\nstage: -"
    )
    assert Message("m-2", "All clear", "", Urgency.NORMAL, "operations").rendered() == "ℹ️ INFO All clear"
    assert message.to_dict()["fields"] == {"pipeline": "documents", "attempt": 2, "critical": True, "stage": None}
    assert message.to_dict()["urgency"] == "critical"
