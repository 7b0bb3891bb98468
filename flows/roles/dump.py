"""Bootstrap roles as code: today's observed platform roles in the roster format, and back in.

:func:`dump_roles` writes a roster file (``format = 1``, ``ledger/README.md``) with one
``[[person]]`` per holder of a role of interest (admin, moderator, the WG group/role, any group
the ledger names): a person the ledger knows under their handle with their accounts, an account
it does not know under a new handle made from its username; each with
``platform_roles = { discord = ["admin"], discourse = ["moderator"] }``. The platforms' own
accounts (Discourse ``system``) are left out. Nothing is sent (GETs only).

:func:`import_roles` reads such a file: the people and accounts through
``ledger.roster.import_roster`` (the ``platform_roles`` lines taken out first; membership is left
as it is), then every listed role as desired in the ledger (``platform-role.desired`` with
``decision_ref`` ``roles-import:<digest of the file>``). Roles the file does not list are left
as they are. Importing the same file again records nothing new. Then ``charterflow roles plan``
shows what, if anything, differs.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from sqlalchemy import select

from flows.kit import Ctx
from flows.platforms import parse_role
from flows.roles.plan import roles_to_observe
from ledger import repo
from ledger.errors import ConfigError
from ledger.models import Identity, Person, Platform, PlatformRoleAssignment
from ledger.roster import import_roster, parse_roster
from rules.errors import describe_validation_error

_LINE = re.compile(r"^\s*platform_roles\s*=.*$", re.MULTILINE)
_HANDLE = re.compile(r"[^a-z0-9_.-]+")


def _s(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


@dataclass(frozen=True, kw_only=True)
class _Known:
    """What the ledger knows, to name the holders the platforms show."""

    by_account: dict[tuple[str, str], int]  # (platform, external id) -> person id
    people: dict[int, Person]
    accounts: dict[int, dict[str, tuple[str | None, str | None]]]  # person -> platform -> (id, name)
    wanted: dict[str, set[str]]  # platform -> roles the ledger names there

    @property
    def handles(self) -> set[str]:
        return {p.handle for p in self.people.values()}


def _known(ctx: Ctx) -> _Known:
    with ctx.ledger.read() as session:
        by_account = {
            (p.value, str(ext)): pid
            for p, ext, pid in session.execute(
                select(Identity.platform, Identity.external_id, Identity.person_id).where(
                    Identity.external_id.is_not(None)
                )
            )
        }
        people = {p.id: p for p in session.scalars(select(Person).where(Person.erased_at.is_(None)))}
        accounts: dict[int, dict[str, tuple[str | None, str | None]]] = {}
        for i in session.scalars(
            select(Identity).where(Identity.platform.in_([Platform.DISCOURSE, Platform.DISCORD, Platform.SLACK]))
        ):
            accounts.setdefault(i.person_id, {})[i.platform.value] = (i.external_id, i.username)
        wanted: dict[str, set[str]] = {}
        for plat, role in session.execute(select(PlatformRoleAssignment.platform, PlatformRoleAssignment.role)):
            wanted.setdefault(plat.value, set()).add(role)
    return _Known(by_account=by_account, people=people, accounts=accounts, wanted=wanted)


def _entry(known: _Known, entries: dict[str, dict[str, Any]], platform: str, holder: Any) -> dict[str, Any]:
    """The roster entry of one holder: the ledger's person with their accounts, or a new
    handle for an account the ledger does not know."""
    pid = known.by_account.get((platform, str(holder.id)))
    if pid is not None and pid in known.people:
        return entries.setdefault(
            known.people[pid].handle, {"accounts": dict(known.accounts.get(pid, {})), "roles": {}}
        )
    handle = _new_handle(holder.username or str(holder.id), platform, known.handles, entries, holder.id)
    entry = entries.setdefault(handle, {"accounts": {}, "roles": {}})
    entry["accounts"][platform] = (str(holder.id), holder.username or None)
    return entry


def _entries(ctx: Ctx, known: _Known) -> dict[str, dict[str, Any]]:
    """handle -> {"accounts": {...}, "roles": {platform: [role, ...]}} for every holder shown."""
    entries: dict[str, dict[str, Any]] = {}
    for platform, space in sorted(ctx.platforms.spaces.items()):
        if space.roles is None:
            continue
        for text in roles_to_observe(ctx, platform, known.wanted.get(platform, ())):
            for holder in space.roles.list_holders(parse_role(text)):
                if str(holder.id).startswith("-"):
                    continue  # the platform's own account
                roles = _entry(known, entries, platform, holder)["roles"].setdefault(platform, [])
                if text not in roles:
                    roles.append(text)
    return entries


def _person_lines(handle: str, entry: dict[str, Any]) -> list[str]:
    out = ["[[person]]", f"handle = {_s(handle)}"]
    for platform in ("discourse", "discord", "slack"):
        ext, user = entry["accounts"].get(platform, (None, None))
        parts = ([f"id = {_s(str(ext))}"] if ext else []) + ([f"username = {_s(user)}"] if user else [])
        if parts:
            out.append(f"{platform} = {{ {', '.join(parts)} }}")
    roles = ", ".join(f"{p} = [{', '.join(_s(r) for r in sorted(rs))}]" for p, rs in sorted(entry["roles"].items()))
    return out + [f"platform_roles = {{ {roles} }}", ""]


def dump_roles(ctx: Ctx) -> str:
    """Today's observed platform roles as roster TOML (see the module docstring)."""
    entries = _entries(ctx, _known(ctx))
    out = [
        "# charterflow roster with platform roles, written by `charterflow roles dump`:",
        f"# what the platforms showed at {ctx.now:%Y-%m-%d %H:%M} UTC. Edit it, then",
        "# `charterflow roles import FILE` records these roles as the ledger's wishes.",
        "",
        "[roster]",
        "format = 1",
        "",
    ]
    for handle in sorted(entries):
        out += _person_lines(handle, entries[handle])
    return "\n".join(out)


def _new_handle(name: str, platform: str, handles: set[str], entries: dict[str, Any], holder_id: str) -> str:
    """A handle for an account the ledger does not know (the same account keeps one handle)."""
    for handle, entry in entries.items():
        if entry["accounts"].get(platform, (None,))[0] == str(holder_id):
            return handle
    base = _HANDLE.sub("-", name.lower()).strip("-.") or f"{platform}-user"
    handle, n = base, 1
    while handle in handles or (
        handle in entries and entries[handle]["accounts"].get(platform, (None,))[0] != str(holder_id)
    ):
        n += 1
        handle = f"{base}-{platform}" if n == 2 else f"{base}-{platform}-{n}"
    return handle


class PlatformRoles(BaseModel):
    """A person's ``platform_roles = { discord = ["admin"], discourse = ["moderator"] }``."""

    # A misspelt platform must fail loudly (as in the charter and roster files).
    model_config = ConfigDict(extra="forbid", frozen=True)

    discourse: list[str] | None = None
    discord: list[str] | None = None
    slack: list[str] | None = None

    @field_validator("discourse", "discord", "slack")
    @classmethod
    def _known(cls, names: list[str] | None) -> list[str] | None:
        # The whole list at once, so an error names the platform, not an index in it.
        for name in names or ():
            if not name.strip():
                raise ValueError("expected a list of roles")
            if name not in ("admin", "moderator") and not name.startswith("group:"):
                raise ValueError(f"unknown role {name!r} (admin, moderator or group:<name>)")
        return names

    def by_platform(self) -> dict[str, list[str]]:
        return {p: list(names) for p, names in self.model_dump(exclude_none=True).items()}


def parse_roles_file(text: str, *, source: str) -> tuple[str, dict[str, dict[str, list[str]]]]:
    """The roster part of a dump (``platform_roles`` lines out) and handle → platform → roles;
    ``ConfigError`` names the file and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    roles: dict[str, dict[str, list[str]]] = {}
    for i, person in enumerate(data.get("person", [])):
        given = person.get("platform_roles") if isinstance(person, dict) else None
        if given is None:
            continue
        where = f"{source}: person[{i}].platform_roles"
        try:
            parsed = PlatformRoles.model_validate(given)
        except ValidationError as exc:
            joint = "." if exc.errors()[0]["loc"] else ": "  # .discord: … or : not a table
            raise ConfigError(f"{where}{joint}{describe_validation_error(exc)}") from None
        roles[str(person.get("handle"))] = parsed.by_platform()
    rest = _LINE.sub("", text)
    try:
        left = tomllib.loads(rest)
    except tomllib.TOMLDecodeError:
        left = {"person": [{"platform_roles": None}]}
    if any(isinstance(p, dict) and "platform_roles" in p for p in left.get("person", [])):
        raise ConfigError(
            f'{source}: write each person\'s platform_roles on one line (platform_roles = {{ discord = ["admin"] }})'
        )
    return rest, roles


def import_roles(ctx: Ctx, text: str, *, source: str, actor: str) -> dict[str, Any]:
    """Import a dump (see the module docstring); returns ``{"people": n, "recorded": n,
    "decision": ref}`` (``recorded``: roles newly recorded as desired)."""
    rest, roles = parse_roles_file(text, source=source)
    roster = parse_roster(rest, source=source, charter=ctx.charter)
    decision = "roles-import:" + hashlib.sha256(text.encode()).hexdigest()[:16]
    recorded = 0
    with ctx.ledger.transaction() as session:
        import_roster(session, roster, charter=ctx.charter, actor=actor, at=ctx.now)
        for handle, by_platform in sorted(roles.items()):
            person = repo.get_person(session, handle)
            held = {(r.platform.value, r.role) for r in repo.platform_roles_of(session, person) if r.desired}
            for platform, names in sorted(by_platform.items()):
                for name in names:
                    if (platform, name) in held:
                        continue
                    repo.set_desired_platform_role(
                        session,
                        person,
                        platform=platform,
                        role=name,
                        desired=True,
                        actor=actor,
                        decision_ref=decision,
                        at=ctx.now,
                    )
                    recorded += 1
    return {"people": len(roster.people), "recorded": recorded, "decision": decision}
