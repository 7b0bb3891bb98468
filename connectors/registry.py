"""Discovery of connectors through the entry-point group ``charterflow.connectors``.

A connector that fails to import or does not meet the class contract (``name``, ``capabilities``,
``docs_url``, the methods of each declared capability, ``from_env``, ``sandbox``) is reported in
``ConnectorInfo.error``; it never stops the others from loading.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from connectors.base import CAPABILITY_PROTOCOLS, Capability
from connectors.errors import ConfigError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ConnectorInfo",
    "community_connectors",
    "discover",
    "load_connector",
    "loaded_connectors",
    "registered_names",
]

ENTRY_POINT_GROUP = "charterflow.connectors"


@dataclass(frozen=True, kw_only=True)
class ConnectorInfo:
    """One registered connector: its class when it loaded, or why it did not."""

    name: str
    target: str
    cls: type[Any] | None = None  # its contract (check_contract) is checked at load
    capabilities: tuple[str, ...] = ()
    docs_url: str | None = None
    error: str | None = None

    @property
    def loaded(self) -> bool:
        """True when the class imported and met the contract."""
        return self.cls is not None

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary (for ``charterflow connectors list``)."""
        return {
            "name": self.name,
            "target": self.target,
            "loaded": self.loaded,
            "capabilities": list(self.capabilities),
            "docs_url": self.docs_url,
            "error": self.error,
        }


def _protocol_methods(protocol: type) -> list[str]:
    return [name for name, member in vars(protocol).items() if not name.startswith("_") and callable(member)]


def check_contract(cls: type, *, expected_name: str) -> list[str]:
    """What ``cls`` lacks to be a connector registered as ``expected_name`` (empty when fine)."""
    problems: list[str] = []
    name = getattr(cls, "name", None)
    if name != expected_name:
        problems.append(f"class attribute name is {name!r}, the entry point says {expected_name!r}")
    docs_url = getattr(cls, "docs_url", None)
    if not isinstance(docs_url, str) or not docs_url.startswith(("http://", "https://")):
        problems.append("class attribute docs_url must be an http(s) URL")
    caps = getattr(cls, "capabilities", None)
    if not isinstance(caps, (frozenset, set, tuple, list)) or not caps:
        problems.append("class attribute capabilities must be a non-empty set of Capability")
        caps = ()
    for cap in caps:
        try:
            cap = Capability(cap)
        except ValueError:
            problems.append(f"unknown capability {cap!r}")
            continue
        missing = [m for m in _protocol_methods(CAPABILITY_PROTOCOLS[cap]) if not callable(getattr(cls, m, None))]
        if missing:
            problems.append(f"declares {cap.value} but lacks {', '.join(missing)}")
    for method in ("from_env", "sandbox", "close"):
        if not callable(getattr(cls, method, None)):
            problems.append(f"lacks {method}()")
    return problems


def _capability_values(declared: object) -> list[str]:
    values = []
    for cap in declared if isinstance(declared, (frozenset, set, tuple, list)) else ():
        try:
            values.append(Capability(cap).value)
        except ValueError:
            continue
    return values


def _load(ep: EntryPoint) -> ConnectorInfo:
    try:
        cls = ep.load()
    except Exception as exc:  # noqa: BLE001 - any import failure is reported, never fatal
        return ConnectorInfo(
            name=ep.name, target=ep.value, error=f"cannot load {ep.value}: {type(exc).__name__}: {exc}"
        )
    if not inspect.isclass(cls):
        return ConnectorInfo(name=ep.name, target=ep.value, error=f"{ep.value} is not a class")
    problems = check_contract(cls, expected_name=ep.name)
    caps = tuple(sorted(_capability_values(getattr(cls, "capabilities", ()))))
    if problems:
        return ConnectorInfo(
            name=ep.name,
            target=ep.value,
            capabilities=caps,
            docs_url=getattr(cls, "docs_url", None),
            error="; ".join(problems),
        )
    loaded: type[Any] = cls
    return ConnectorInfo(name=ep.name, target=ep.value, cls=loaded, capabilities=caps, docs_url=loaded.docs_url)


def discover(group: str = ENTRY_POINT_GROUP) -> list[ConnectorInfo]:
    """Every connector registered in ``group``, sorted by name, loaded or with its load error.

    Two entry points with one name: the first wins and the second is reported as a duplicate.
    """
    seen: dict[str, ConnectorInfo] = {}
    duplicates: list[ConnectorInfo] = []
    for ep in sorted(entry_points(group=group), key=lambda e: (e.name, e.value)):
        if ep.name in seen:
            duplicates.append(
                ConnectorInfo(
                    name=ep.name, target=ep.value, error=f"duplicate name {ep.name!r} (also {seen[ep.name].target})"
                )
            )
            continue
        seen[ep.name] = _load(ep)
    return sorted([*seen.values(), *duplicates], key=lambda i: i.name)


def registered_names(group: str = ENTRY_POINT_GROUP) -> frozenset[str]:
    """The names registered in ``group``, without importing them: the platforms that have a
    connector installed (a plugin's included once installed)."""
    return frozenset(ep.name for ep in entry_points(group=group))


def loaded_connectors(group: str = ENTRY_POINT_GROUP) -> dict[str, type]:
    """The connectors that loaded, by name."""
    return {info.name: info.cls for info in discover(group) if info.cls is not None}


def community_connectors(group: str = ENTRY_POINT_GROUP) -> list[str]:
    """The names of the loaded connectors that serve a community platform, sorted: every one
    but those whose class says ``community = False`` (Slack: the Board's channel)."""
    return [name for name, cls in loaded_connectors(group).items() if getattr(cls, "community", True)]


def load_connector(name: str, group: str = ENTRY_POINT_GROUP) -> type[Any]:
    """The connector class registered as ``name``; ``ConfigError`` saying why when unusable."""
    infos = {info.name: info for info in discover(group)}
    info = infos.get(name)
    if info is None:
        known = ", ".join(sorted(infos)) or "none"
        raise ConfigError(f"no connector named {name!r} is registered (known: {known})")
    if info.cls is None:
        raise ConfigError(f"connector {name!r} failed to load: {info.error}")
    return info.cls
