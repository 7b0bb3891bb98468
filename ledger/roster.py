"""Roster files: start a ledger from today's membership, and write it back out.

The format (TOML, ``format = 1``) is documented in ``ledger/README.md``; ``examples/roster.toml``
is a complete example. ``import_roster`` is idempotent (importing the same file twice changes
nothing and writes no audit entry) and checks the resulting WG roles with ``rules.check_roles``
before writing anything: a hard-rule violation (R-ROLE-BOARD, R-ROLE-SC, …) raises
``PolicyViolation`` naming the ruling. A person's fields, identities and terms in the file are
added or updated; nothing the file does not mention is deleted.
"""

from __future__ import annotations

import csv
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from rules import Charter, WgRoles, check_roles
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import audit, repo
from ledger.errors import ConfigError, Conflict, PolicyViolation
from ledger.models import (
    Identity,
    Membership,
    MembershipStatus,
    Person,
    Platform,
    ReferenceList,
    Term,
    TermOrigin,
    WgRole,
)
from ledger.types import utcnow

FORMAT = 1
LISTS = ("board_members", "steering_council")
ACCOUNT_PLATFORMS = (Platform.DISCOURSE, Platform.DISCORD, Platform.SLACK)
_PERSON_KEYS = {"handle", "name", "home_platform", "email", "membership", "ended", "terms",
                *(p.value for p in ACCOUNT_PLATFORMS)}
_END_STATUSES = {"lapsed": MembershipStatus.LAPSED, "left": MembershipStatus.LEFT,
                 "removed": MembershipStatus.REMOVED}


# --- the parsed file -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RosterAccount:
    platform: Platform
    external_id: str | None
    username: str | None


@dataclass(frozen=True, kw_only=True)
class RosterTerm:
    start: datetime
    end: datetime


@dataclass(frozen=True, kw_only=True)
class RosterPerson:
    handle: str
    name: str | None
    home_platform: Platform | None
    accounts: tuple[RosterAccount, ...]
    membership: str  # "active", "lapsed", "left", "removed" or "none"
    ended: datetime | None
    terms: tuple[RosterTerm, ...]
    line: int | None = None  # of its [[person]] header in the file, for error messages


@dataclass(frozen=True, kw_only=True)
class RosterRole:
    handle: str | None  # None: the file says the role is vacant
    since: datetime | None
    assigned_by: str


@dataclass(frozen=True, kw_only=True)
class Roster:
    """A validated roster file."""

    source: str
    people: tuple[RosterPerson, ...]
    roles: Mapping[WgRole, RosterRole]
    lists: Mapping[str, tuple[str, ...]]


@dataclass(kw_only=True)
class ImportReport:
    """What an import did; ``changes`` is 0 when the ledger already matched the file."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    changes: int = 0
    warnings: list[str] = field(default_factory=list)


def _when(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigError(f"{where}: give a time zone (e.g. 2025-01-15T10:00:00Z) or a date")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    raise ConfigError(f"{where}: expected a date like 2025-01-15")


def _str(value: Any, where: str, *, max_len: int = 200) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise ConfigError(f"{where}: expected a non-empty text of at most {max_len} characters")
    return value.strip()


def _read_list_file(path: Path, where: str) -> tuple[str, ...]:
    """A list file: TOML with ``members = ["handle", …]`` (or tables with ``handle``), or CSV
    with a ``handle`` column."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if rows and "handle" not in rows[0]:
            raise ConfigError(f"{path}: a CSV list needs a 'handle' column")
        return tuple(_str(r["handle"], f"{path}: handle", max_len=80) for r in rows)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    members = data.get("members")
    if not isinstance(members, list):
        raise ConfigError(f"{path}: expected members = [\"handle\", …]")
    return tuple(_str(m.get("handle") if isinstance(m, dict) else m, f"{path}: members[{i}]",
                      max_len=80) for i, m in enumerate(members))


def parse_roster(text: str, *, source: str = "<roster>", charter: Charter,
                 base_dir: Path | None = None) -> Roster:
    """Parse and validate roster TOML; ``ConfigError`` names the file and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    head = data.get("roster", {})
    if head.get("format", FORMAT) != FORMAT:
        raise ConfigError(f"{source}: roster.format {head.get('format')!r} is not {FORMAT}")
    unknown = set(data) - {"roster", "lists", "person", "roles"}
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}")
    term_days = charter.terms.length_days

    people: list[RosterPerson] = []
    seen_handles: set[str] = set()
    seen_accounts: dict[tuple[Platform, str, str], str] = {}
    lines = _person_lines(text)
    for i, raw in enumerate(data.get("person", [])):
        line = lines[i] if i < len(lines) else None
        at_line = f" (line {line})" if line else ""
        where = f"{source}: person[{i}]{at_line}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a [[person]] table")
        extra = set(raw) - _PERSON_KEYS
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        handle = _str(raw.get("handle"), f"{where}.handle", max_len=80)
        if handle.startswith("erased-"):
            raise ConfigError(f"{where}.handle: 'erased-' names are reserved")
        if handle in seen_handles:
            raise ConfigError(f"{where}.handle: {handle!r} appears twice")
        seen_handles.add(handle)
        where = f"{source}: person {handle!r}{at_line}"
        home = raw.get("home_platform")
        if home is not None and home not in charter.platforms:
            raise ConfigError(f"{where}.home_platform: {home!r} is not one of the charter's "
                              f"platforms ({', '.join(charter.platforms)})")
        accounts: list[RosterAccount] = []
        for platform in ACCOUNT_PLATFORMS:
            acc = raw.get(platform.value)
            if acc is None:
                continue
            if not isinstance(acc, dict) or not set(acc) <= {"id", "username"} or not acc:
                raise ConfigError(f"{where}.{platform}: expected {{ id = …, username = … }}")
            ext = _str(acc["id"], f"{where}.{platform}.id", max_len=64) if "id" in acc else None
            user = (_str(acc["username"], f"{where}.{platform}.username", max_len=64)
                    if "username" in acc else None)
            accounts.append(RosterAccount(platform=platform, external_id=ext, username=user))
        if raw.get("email") is not None:
            email = _str(raw["email"], f"{where}.email", max_len=320)
            if "@" not in email:
                raise ConfigError(f"{where}.email: {email!r} is not an e-mail address")
            accounts.append(RosterAccount(platform=Platform.EMAIL, external_id=None,
                                          username=email))
        for acc in accounts:
            for kind, value in (("id", acc.external_id), ("username", acc.username)):
                if value is None:
                    continue
                key = (acc.platform, kind, value.casefold() if kind == "username" else value)
                if key in seen_accounts:
                    raise ConfigError(f"{where}: {acc.platform} {kind} {value!r} already given "
                                      f"for {seen_accounts[key]}")
                seen_accounts[key] = repr(handle) + (f" (line {line})" if line else "")
        terms: list[RosterTerm] = []
        raw_terms = raw.get("terms", [])
        if not isinstance(raw_terms, list):
            raise ConfigError(f"{where}.terms: expected a list of {{ start = …, end = … }}")
        for j, t in enumerate(raw_terms):
            if not isinstance(t, dict) or "start" not in t or not set(t) <= {"start", "end"}:
                raise ConfigError(f"{where}.terms[{j}]: expected {{ start = …, end = … }}")
            start = _when(t["start"], f"{where}.terms[{j}].start")
            end = (_when(t["end"], f"{where}.terms[{j}].end") if "end" in t
                   else start + timedelta(days=term_days))
            if end <= start:
                raise ConfigError(f"{where}.terms[{j}]: ends before it starts")
            if terms and start < terms[-1].end:
                raise ConfigError(f"{where}.terms[{j}]: overlaps the term before it")
            terms.append(RosterTerm(start=start, end=end))
        membership = raw.get("membership", "active" if terms else "none")
        if membership not in ("active", "none", *_END_STATUSES):
            raise ConfigError(f"{where}.membership: expected active, lapsed, left, removed "
                              "or none")
        if membership != "none" and not terms:
            raise ConfigError(f"{where}: membership {membership!r} needs at least one term")
        ended = raw.get("ended")
        if membership in _END_STATUSES:
            ended_at = _when(ended, f"{where}.ended") if ended is not None else terms[-1].end
        elif ended is not None:
            raise ConfigError(f"{where}.ended: only a lapsed, left or removed membership ends")
        else:
            ended_at = None
        people.append(RosterPerson(
            handle=handle, name=_str(raw["name"], f"{where}.name") if "name" in raw else None,
            home_platform=Platform(home) if home else None, accounts=tuple(accounts),
            membership=membership, ended=ended_at, terms=tuple(terms), line=line))

    roles: dict[WgRole, RosterRole] = {}
    raw_roles = data.get("roles", {})
    for name, value in raw_roles.items():
        where = f"{source}: roles.{name}"
        try:
            role = WgRole(name)
        except ValueError:
            raise ConfigError(f"{where}: unknown role (use "
                              f"{', '.join(r.value for r in WgRole)})") from None
        if isinstance(value, str):
            value = {"handle": value}
        if not isinstance(value, dict) or not set(value) <= {"handle", "since", "assigned_by"}:
            raise ConfigError(f"{where}: expected a handle or {{ handle, since, assigned_by }}")
        handle = value.get("handle", "")
        roles[role] = RosterRole(
            handle=_str(handle, f"{where}.handle", max_len=80) if handle else None,
            since=_when(value["since"], f"{where}.since") if "since" in value else None,
            assigned_by=_str(value.get("assigned_by", "roster-import"),
                             f"{where}.assigned_by"))

    lists: dict[str, tuple[str, ...]] = {}
    raw_lists = data.get("lists", {})
    for key in raw_lists:
        if key not in LISTS and key.removesuffix("_file") not in LISTS:
            raise ConfigError(f"{source}: lists.{key}: unknown list (use "
                              f"{', '.join(LISTS)} or <list>_file)")
    for name in LISTS:
        if name in raw_lists and f"{name}_file" in raw_lists:
            raise ConfigError(f"{source}: lists: give {name} or {name}_file, not both")
        if name in raw_lists:
            if not isinstance(raw_lists[name], list):
                raise ConfigError(f"{source}: lists.{name}: expected a list of handles")
            lists[name] = tuple(_str(h, f"{source}: lists.{name}[{i}]", max_len=80)
                                for i, h in enumerate(raw_lists[name]))
        elif f"{name}_file" in raw_lists:
            path = Path(_str(raw_lists[f"{name}_file"], f"{source}: lists.{name}_file", max_len=500))
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            lists[name] = _read_list_file(path, f"{source}: lists.{name}_file")
    return Roster(source=source, people=tuple(people), roles=roles, lists=lists)


_PERSON_HEADER = re.compile(r"^\s*\[\[\s*person\s*\]\]")


def _person_lines(text: str) -> list[int]:
    """The line numbers (from 1) of the ``[[person]]`` headers, in order (tomllib gives none)."""
    return [n for n, line in enumerate(text.splitlines(), start=1) if _PERSON_HEADER.match(line)]


def load_roster(path: str | Path, *, charter: Charter) -> Roster:
    """Read and validate a roster file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read roster file: {exc.strerror}") from None
    return parse_roster(text, source=str(path), charter=charter, base_dir=path.parent)


# --- import ----------------------------------------------------------------------------------


def stored_list(session: Session, name: str) -> tuple[str, ...]:
    """A reference list as last imported (``board_members`` or ``steering_council``)."""
    return tuple(session.scalars(select(ReferenceList.handle).where(
        ReferenceList.list_name == name).order_by(ReferenceList.handle)))


def check_roster_roles(session: Session, roster: Roster, *, charter: Charter) -> Any:
    """The rules' decision on the WG roles the ledger would hold after importing ``roster``."""
    holders: dict[WgRole, str | None] = {}
    for role, assignment in repo.current_wg_roles(session).items():
        person = session.get(Person, assignment.person_id)
        holders[role] = person.handle if person else None
    for role, given in roster.roles.items():
        holders[role] = given.handle
    known = {p.handle for p in roster.people} | set(session.scalars(select(Person.handle)))
    for role, handle in holders.items():
        if handle is not None and handle not in known:
            raise ConfigError(f"{roster.source}: roles.{role}: {handle!r} is not a person in "
                              "the roster or the ledger")
    home = {h: (p.value if p else None) for h, p in session.execute(
        select(Person.handle, Person.home_platform))}
    home.update({p.handle: p.home_platform.value if p.home_platform else home.get(p.handle)
                 for p in roster.people})
    lists = {name: roster.lists.get(name, stored_list(session, name)) for name in LISTS}
    return check_roles(WgRoles(**{r.value: h for r, h in holders.items()}),
                       home_platform={h: p for h, p in home.items() if p},
                       board_members=lists["board_members"],
                       steering_council=lists["steering_council"], charter=charter)


def import_roster(session: Session, roster: Roster, *, charter: Charter, actor: str,
                  at: datetime | None = None) -> ImportReport:
    """Bring the ledger in line with ``roster`` inside ``session``'s transaction.

    Refuses with ``PolicyViolation`` (before writing) when the resulting WG roles break a hard
    rule; R-ROLE-CHAIR recommendations come back as ``report.warnings``."""
    at = at or utcnow()
    decision = check_roster_roles(session, roster, charter=charter)
    if not decision.allowed:
        raise PolicyViolation(
            f"{roster.source}: {decision.reason}", ruling=decision.ruling,
            evidence={"violations": [f.to_dict() for f in decision.violations]})
    report = ImportReport(warnings=[f"{f.ruling}: {f.reason}" for f in decision.warnings])
    start = audit.count(session)

    for name, handles in roster.lists.items():
        _sync_list(session, name, handles, actor=actor, at=at)
    for entry in roster.people:
        try:
            _import_person(session, entry, actor=actor, at=at, report=report)
        except _AccountTaken as taken:
            raise Conflict(f"{roster.source}: {taken.describe(session, entry)}") from None
    for role, given in roster.roles.items():
        current = repo.current_wg_roles(session).get(role)
        if given.handle is None:
            if current is not None:
                repo.end_wg_role(session, current, actor=actor, at=given.since or at)
            continue
        person = repo.get_person(session, given.handle)
        if current is None or current.person_id != person.id:
            repo.assign_wg_role(session, person, role, actor=actor, assigned_by=given.assigned_by,
                                starts_at=given.since or at, at=at)
    report.changes = audit.count(session) - start
    return report


def _sync_list(session: Session, name: str, handles: tuple[str, ...], *, actor: str,
               at: datetime) -> None:
    current = set(stored_list(session, name))
    wanted = set(handles)
    if current == wanted:
        return
    for row in session.scalars(select(ReferenceList).where(ReferenceList.list_name == name)):
        if row.handle not in wanted:
            session.delete(row)
    session.add_all(ReferenceList(list_name=name, handle=h, updated_at=at)
                    for h in sorted(wanted - current))
    session.flush()
    audit.append(session, actor=actor, action="reference-list.updated", subject=f"list:{name}",
                 at=at, payload={"count": len(wanted), "added": len(wanted - current),
                                 "removed": len(current - wanted),
                                 "content": audit.content_digest(sorted(wanted))})


class _AccountTaken(Exception):
    """A roster account that the ledger has for another person."""

    def __init__(self, account: RosterAccount, owner_id: int | None) -> None:
        super().__init__(account.platform.value)
        self.account, self.owner_id = account, owner_id

    def describe(self, session: Session, entry: RosterPerson) -> str:
        """``person 'ash' (line 12): discord account 'ash_b' already belongs to 'birch'``."""
        owner = session.get(Person, self.owner_id) if self.owner_id else None
        name = self.account.username or self.account.external_id
        line = f" (line {entry.line})" if entry.line else ""
        return (f"person {entry.handle!r}{line}: {self.account.platform.value} account {name!r} "
                f"already belongs to {owner.handle if owner else 'another person'!r}")


def _import_person(session: Session, entry: RosterPerson, *, actor: str, at: datetime,
                   report: ImportReport) -> None:
    person = session.scalar(select(Person).where(Person.handle == entry.handle))
    if person is None:
        person = repo.create_person(session, handle=entry.handle, actor=actor,
                                    display_name=entry.name, home_platform=entry.home_platform,
                                    at=at)
        report.created.append(entry.handle)
        changed = True
    else:
        changed = repo.update_person(session, person, actor=actor, display_name=entry.name,
                                     home_platform=entry.home_platform, at=at)
    for acc in entry.accounts:
        mine = [i for i in (repo.find_identity(session, platform=acc.platform,
                                               external_id=acc.external_id),
                            repo.find_identity(session, platform=acc.platform,
                                               username=acc.username))
                if i is not None]
        if not mine and acc.platform != Platform.EMAIL:
            # Same platform, new id and name: the person's existing account of that platform.
            mine = list(session.scalars(select(Identity).where(
                Identity.person_id == person.id, Identity.platform == acc.platform)))[:1]
        if not mine:
            repo.add_identity(session, person, platform=acc.platform, actor=actor,
                              external_id=acc.external_id, username=acc.username, at=at)
            changed = True
            continue
        identity = mine[0]
        if identity.person_id != person.id:
            raise _AccountTaken(acc, identity.person_id)
        kwargs: dict[str, Any] = {}
        if acc.username is not None:
            kwargs["username"] = acc.username
        if acc.external_id is not None:
            kwargs["external_id"] = acc.external_id
        try:
            changed |= repo.update_identity(session, identity, actor=actor, at=at, **kwargs)
        except Conflict:  # renamed to a name another person's account has
            other = repo.find_identity(session, platform=acc.platform, username=acc.username)
            raise _AccountTaken(acc, other.person_id if other else None) from None
    changed |= _import_membership(session, person, entry, actor=actor, at=at)
    if changed and entry.handle not in report.created:
        report.updated.append(entry.handle)


def _latest_membership(session: Session, person: Person) -> Membership | None:
    return session.scalar(select(Membership).where(Membership.person_id == person.id)
                          .order_by(Membership.id.desc()).limit(1))


def _import_membership(session: Session, person: Person, entry: RosterPerson, *, actor: str,
                       at: datetime) -> bool:
    if entry.membership == "none":
        return False
    changed = False
    membership = _latest_membership(session, person)
    if membership is None or (membership.ended_at is not None and entry.membership == "active"
                              and entry.terms[0].start >= membership.ended_at):
        first = entry.terms[0]
        membership = repo.start_membership(session, person, actor=actor, starts_at=first.start,
                                           ends_at=first.end, origin=TermOrigin.IMPORT, at=at)
        changed = True
    have = {t.starts_at for t in session.scalars(select(Term).where(
        Term.membership_id == membership.id))}
    for term in entry.terms:
        if term.start not in have:
            repo.add_term(session, membership, actor=actor, starts_at=term.start,
                          ends_at=term.end, origin=TermOrigin.IMPORT, at=at)
            changed = True
    if entry.membership in _END_STATUSES and membership.ended_at is None:
        repo.end_membership(session, membership, status=_END_STATUSES[entry.membership],
                            actor=actor, at=entry.ended)
        changed = True
    return changed


# --- export ----------------------------------------------------------------------------------


def _toml_str(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX included).
    return json.dumps(value, ensure_ascii=False)


def _toml_time(value: datetime) -> str:
    value = value.astimezone(UTC)
    if value.time() == time(0):
        return value.date().isoformat()
    return value.strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{value.microsecond:06d}" if value.microsecond else "") + "Z"


def export_roster(session: Session) -> str:
    """The ledger's people, identities, latest membership with its terms, WG roles and
    reference lists as roster TOML (importable again; erased people are left out)."""
    out = ["# charterflow roster, written by `charterflow roster export`.", "",
           "[roster]", f"format = {FORMAT}", ""]
    lists = {name: stored_list(session, name) for name in LISTS}
    if any(lists.values()):
        out.append("[lists]")
        for name, handles in lists.items():
            if handles:
                out.append(f"{name} = [{', '.join(_toml_str(h) for h in handles)}]")
        out.append("")
    people = session.scalars(select(Person).where(Person.erased_at.is_(None))
                             .order_by(Person.id))
    for person in people:
        out.append("[[person]]")
        out.append(f"handle = {_toml_str(person.handle)}")
        if person.display_name:
            out.append(f"name = {_toml_str(person.display_name)}")
        if person.home_platform:
            out.append(f"home_platform = {_toml_str(person.home_platform.value)}")
        for identity in person.identities:
            if identity.platform == Platform.EMAIL:
                if identity.username:
                    out.append(f"email = {_toml_str(identity.username)}")
                continue
            parts = []
            if identity.external_id is not None:
                parts.append(f"id = {_toml_str(identity.external_id)}")
            if identity.username is not None:
                parts.append(f"username = {_toml_str(identity.username)}")
            if parts:
                out.append(f"{identity.platform.value} = {{ {', '.join(parts)} }}")
        membership = _latest_membership(session, person)
        if membership is not None and membership.terms:
            status = membership.status.value
            out.append(f"membership = {_toml_str(status)}")
            if membership.ended_at is not None:
                out.append(f"ended = {_toml_time(membership.ended_at)}")
            terms = ", ".join(f"{{ start = {_toml_time(t.starts_at)}, end = "
                              f"{_toml_time(t.ends_at)} }}" for t in membership.terms)
            out.append(f"terms = [{terms}]")
        out.append("")
    roles = repo.current_wg_roles(session)
    if roles:
        out.append("[roles]")
        for role in WgRole:
            if role in roles:
                a = roles[role]
                holder = session.get(Person, a.person_id)
                assert holder is not None
                out.append(f"{role.value} = {{ handle = {_toml_str(holder.handle)}, since = "
                           f"{_toml_time(a.starts_at)}, assigned_by = "
                           f"{_toml_str(a.assigned_by)} }}")
        out.append("")
    return "\n".join(out)
