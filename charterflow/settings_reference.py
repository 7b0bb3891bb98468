"""Every setting charterflow reads, from the settings classes themselves (``charterflow settings``).

The README's configuration reference is this table; ``tests/cli/test_settings_reference.py``
checks that it names every setting, so a new field cannot go undocumented.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

# (module, class): every BaseSettings of the code base, in reading order for an operator.
CLASSES: tuple[tuple[str, str], ...] = (
    ("charterflow.settings", "Settings"),
    ("gateway.settings", "GatewaySettings"),
    ("flows.platforms", "PlatformsSettings"),
    ("flows.platforms", "MembershipSettings"),
    ("flows.roles.confirm", "RolesSettings"),
    ("flows.reports.quarterly", "ReportSettings"),
    ("flows.moderation.common", "ModerationSettings"),
    ("flows.wg_roles.settings", "WgRolesSettings"),
    ("flows.guides.library", "GuidesSettings"),
    ("flows.commons.bridges", "CommonsSettings"),
    ("flows.safety.common", "SafetySettings"),
    ("connectors.discourse.settings", "DiscourseSettings"),
    ("connectors.discord.settings", "DiscordSettings"),
    ("connectors.slack.settings", "SlackSettings"),
    ("connectors.email.mailer", "SmtpSettings"),
)


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default if field.default_factory is None else "(computed)"
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, (list, tuple, set, frozenset, str)) and not value:
        return "empty"
    return f"`{value}`"


def _env_name(prefix: str, field_name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        alias = next((c for c in alias.choices if isinstance(c, str) and c.isupper()), None)
    return alias if isinstance(alias, str) else f"{prefix}{field_name}".upper()


def rows() -> Iterator[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting, once each (the gateway
    reads the connectors' inbound secrets under their names: the connector's row describes them)."""
    found: dict[str, tuple[str, str, str]] = {}
    for module, name in CLASSES:
        cls = getattr(importlib.import_module(module), name)
        prefix = cls.model_config.get("env_prefix", "")
        for field_name, field in cls.model_fields.items():
            env = _env_name(prefix, field_name, field)
            description = " ".join((field.description or "").split())
            if env not in found or (description and not found[env][2]):
                found[env] = (env, _default(field), description)
    yield from found.values()


def table() -> str:
    """The settings as a Markdown table."""
    lines = ["| setting | default | what it does |", "| --- | --- | --- |"]
    lines += [f"| `{env}` | {default} | {text.replace('|', '/')} |" for env, default, text in rows()]
    return "\n".join(lines)
