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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
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
from rules import Charter, WgRoles, check_roles
from rules.errors import describe_validation_error

FORMAT: Final = 1
LISTS = ("board_members", "steering_council")
ACCOUNT_PLATFORMS = (Platform.DISCOURSE, Platform.DISCORD, Platform.SLACK)
_END_STATUSES = {"lapsed": MembershipStatus.LAPSED, "left": MembershipStatus.LEFT, "removed": MembershipStatus.REMOVED}


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


# --- the file's schema (pydantic, as the charter file's) ----------------------------------------


def _when(value: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2025-01-15T10:00:00Z) or a date")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    raise ValueError("expected a date like 2025-01-15")


def _text(max_len: int) -> BeforeValidator:
    """A non-empty text of at most ``max_len`` characters, stripped (a TOML number: its text)."""

    def check(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip() or len(value) > max_len:
            raise ValueError(f"expected a non-empty text of at most {max_len} characters")
        return value.strip()

    return BeforeValidator(check)


def _vacant_or(text: BeforeValidator) -> BeforeValidator:
    """``""`` as given (a vacant role), anything else checked by ``text``."""
    check = cast(Callable[[Any], str], text.func)  # made by _text: takes the value alone
    return BeforeValidator(lambda value: value if value == "" else check(value))


When = Annotated[datetime, BeforeValidator(_when)]
Text = Annotated[str, _text(200)]
Handle = Annotated[str, _text(80)]
AccountText = Annotated[str, _text(64)]


class _Strict(BaseModel):
    # A misspelt key must fail loudly rather than silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountEntry(_Strict):
    """``{ id = …, username = … }``, at least one of them."""

    id: AccountText | None = None
    username: AccountText | None = None

    @model_validator(mode="after")
    def _some(self) -> AccountEntry:
        if self.id is None and self.username is None:
            raise ValueError("expected { id = …, username = … }")
        return self


class TermEntry(_Strict):
    start: When
    end: When | None = None  # None: the charter's term length


class PersonEntry(_Strict):
    """One ``[[person]]`` table; validated with the charter in the context (its platforms and
    its term length)."""

    handle: Handle
    name: Text | None = None
    home_platform: str | None = None
    email: Annotated[str, _text(320)] | None = None
    membership: Literal["active", "lapsed", "left", "removed", "none"] | None = None
    ended: When | None = None
    terms: list[TermEntry] = []
    discourse: AccountEntry | None = None
    discord: AccountEntry | None = None
    slack: AccountEntry | None = None

    @field_validator("handle")
    @classmethod
    def _not_reserved(cls, handle: str) -> str:
        if handle.startswith("erased-"):
            raise ValueError("'erased-' names are reserved")
        return handle

    @field_validator("email")
    @classmethod
    def _address(cls, email: str | None) -> str | None:
        if email is not None and "@" not in email:
            raise ValueError(f"{email!r} is not an e-mail address")
        return email

    @field_validator("home_platform")
    @classmethod
    def _charter_platform(cls, home: str | None, info: ValidationInfo) -> str | None:
        platforms = (info.context or {})["charter"].platforms
        if home is not None and home not in platforms:
            raise ValueError(f"{home!r} is not one of the charter's platforms ({', '.join(platforms)})")
        return home

    @model_validator(mode="after")
    def _membership(self, info: ValidationInfo) -> PersonEntry:
        terms = self.spans((info.context or {})["charter"].terms.length_days)
        status = self.status
        if status != "none" and not terms:
            raise ValueError(f"membership {status!r} needs at least one term")
        if self.ended is not None and status not in _END_STATUSES:
            raise ValueError("ended: only a lapsed, left or removed membership ends")
        return self

    @property
    def status(self) -> str:
        """``membership`` as given, else active with terms and none without."""
        return self.membership or ("active" if self.terms else "none")

    def spans(self, term_days: int) -> tuple[RosterTerm, ...]:
        """The terms with their ends; ``ValueError`` for one that ends first or overlaps."""
        out: list[RosterTerm] = []
        for j, term in enumerate(self.terms):
            end = term.end or term.start + timedelta(days=term_days)
            if end <= term.start:
                raise ValueError(f"terms[{j}]: ends before it starts")
            if out and term.start < out[-1].end:
                raise ValueError(f"terms[{j}]: overlaps the term before it")
            out.append(RosterTerm(start=term.start, end=end))
        return tuple(out)

    def to_person(self, *, term_days: int, line: int | None) -> RosterPerson:
        accounts = [
            RosterAccount(platform=p, external_id=acc.id, username=acc.username)
            for p in ACCOUNT_PLATFORMS
            if (acc := getattr(self, p.value)) is not None
        ]
        if self.email is not None:
            accounts.append(RosterAccount(platform=Platform.EMAIL, external_id=None, username=self.email))
        terms = self.spans(term_days)
        status = self.status
        ended = (self.ended or terms[-1].end) if status in _END_STATUSES else None
        return RosterPerson(
            handle=self.handle,
            name=self.name,
            home_platform=Platform(self.home_platform) if self.home_platform else None,
            accounts=tuple(accounts),
            membership=status,
            ended=ended,
            terms=terms,
            line=line,
        )


def _role_entry(value: Any) -> Any:
    return {"handle": value} if isinstance(value, str) else value


class RoleEntry(_Strict):
    """``chair = "handle"`` or ``{ handle, since, assigned_by }``; an empty handle: vacant."""

    handle: Annotated[str, _vacant_or(_text(80))] = ""
    since: When | None = None
    assigned_by: Text = "roster-import"


class ListsEntry(_Strict):
    """Each reference list inline or as ``<list>_file`` (a path relative to the roster)."""

    board_members: list[Handle] | None = None
    board_members_file: Annotated[str, _text(500)] | None = None
    steering_council: list[Handle] | None = None
    steering_council_file: Annotated[str, _text(500)] | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> ListsEntry:
        for name in LISTS:
            if getattr(self, name) is not None and getattr(self, f"{name}_file") is not None:
                raise ValueError(f"give {name} or {name}_file, not both")
        return self


class RosterHead(BaseModel):
    format: Literal[1] = FORMAT


class RosterFile(_Strict):
    """The whole file; each ``[[person]]`` is validated apart, so its error can name its line."""

    roster: RosterHead = RosterHead()
    lists: ListsEntry = ListsEntry()
    person: list[dict[str, Any]] = []
    roles: dict[WgRole, Annotated[RoleEntry, BeforeValidator(_role_entry)]] = {}

    @field_validator("roles", mode="before")
    @classmethod
    def _known_roles(cls, roles: Any) -> Any:
        known = {r.value for r in WgRole}
        for name in roles if isinstance(roles, dict) else ():
            if name not in known:
                raise ValueError(f"{name}: unknown role (use {', '.join(sorted(known))})")
        return roles


def _invalid(where: str, exc: ValidationError) -> ConfigError:
    return ConfigError(f"{where}: {describe_validation_error(exc)}")


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
        members: Any = [r["handle"] for r in rows]
    else:
        try:
            members = tomllib.loads(text).get("members")
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        if not isinstance(members, list):
            raise ConfigError(f'{path}: expected members = ["handle", …]')
        members = [m.get("handle") if isinstance(m, dict) else m for m in members]
    try:
        return tuple(_HANDLES.validate_python(members))
    except ValidationError as exc:
        raise _invalid(f"{path}: members", exc) from None


_HANDLES = TypeAdapter(list[Handle])


def parse_roster(text: str, *, source: str = "<roster>", charter: Charter, base_dir: Path | None = None) -> Roster:
    """Parse and validate roster TOML; ``ConfigError`` names the file, the line and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        file = RosterFile.model_validate(data)
    except ValidationError as exc:
        raise _invalid(source, exc) from None
    people = _people(file.person, source=source, charter=charter, lines=_person_lines(text))
    roles = {
        role: RosterRole(handle=given.handle or None, since=given.since, assigned_by=given.assigned_by)
        for role, given in file.roles.items()
    }
    lists: dict[str, tuple[str, ...]] = {}
    for name in LISTS:
        inline, listed = getattr(file.lists, name), getattr(file.lists, f"{name}_file")
        if inline is not None:
            lists[name] = tuple(inline)
        elif listed is not None:
            path = Path(listed)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            lists[name] = _read_list_file(path, f"{source}: lists.{name}_file")
    return Roster(source=source, people=people, roles=roles, lists=lists)


def _people(raw: list[dict[str, Any]], *, source: str, charter: Charter, lines: list[int]) -> tuple[RosterPerson, ...]:
    """Each ``[[person]]`` validated, then the checks across people: a handle or an account
    given twice."""
    people: list[RosterPerson] = []
    seen_handles: set[str] = set()
    seen_accounts: dict[tuple[Platform, str, str], str] = {}
    for i, entry in enumerate(raw):
        line = lines[i] if i < len(lines) else None
        at_line = f" (line {line})" if line else ""
        handle = entry.get("handle")
        where = (
            f"{source}: person {handle!r}{at_line}" if isinstance(handle, str) else f"{source}: person[{i}]{at_line}"
        )
        try:
            person = PersonEntry.model_validate(entry, context={"charter": charter}).to_person(
                term_days=charter.terms.length_days, line=line
            )
        except ValidationError as exc:
            raise _invalid(where, exc) from None
        if person.handle in seen_handles:
            raise ConfigError(f"{source}: person[{i}]{at_line}.handle: {person.handle!r} appears twice")
        seen_handles.add(person.handle)
        for acc in person.accounts:
            for kind, value in (("id", acc.external_id), ("username", acc.username)):
                if value is None:
                    continue
                key = (acc.platform, kind, value.casefold() if kind == "username" else value)
                if key in seen_accounts:
                    raise ConfigError(
                        f"{where}: {acc.platform} {kind} {value!r} already given for {seen_accounts[key]}"
                    )
                seen_accounts[key] = repr(person.handle) + at_line
        people.append(person)
    return tuple(people)


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
    return tuple(
        session.scalars(
            select(ReferenceList.handle).where(ReferenceList.list_name == name).order_by(ReferenceList.handle)
        )
    )


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
            raise ConfigError(f"{roster.source}: roles.{role}: {handle!r} is not a person in the roster or the ledger")
    home = {h: (p.value if p else None) for h, p in session.execute(select(Person.handle, Person.home_platform))}
    home.update({p.handle: p.home_platform.value if p.home_platform else home.get(p.handle) for p in roster.people})
    lists = {name: roster.lists.get(name, stored_list(session, name)) for name in LISTS}
    return check_roles(
        WgRoles(**{r.value: h for r, h in holders.items()}),
        home_platform={h: p for h, p in home.items() if p},
        board_members=lists["board_members"],
        steering_council=lists["steering_council"],
        charter=charter,
    )


def import_roster(
    session: Session, roster: Roster, *, charter: Charter, actor: str, at: datetime | None = None
) -> ImportReport:
    """Bring the ledger in line with ``roster`` inside ``session``'s transaction.

    Refuses with ``PolicyViolation`` (before writing) when the resulting WG roles break a hard
    rule; R-ROLE-CHAIR recommendations come back as ``report.warnings``."""
    at = at or utcnow()
    decision = check_roster_roles(session, roster, charter=charter)
    if not decision.allowed:
        raise PolicyViolation(
            f"{roster.source}: {decision.reason}",
            ruling=decision.ruling,
            evidence={"violations": [f.to_dict() for f in decision.violations]},
        )
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
            repo.assign_wg_role(
                session, person, role, actor=actor, assigned_by=given.assigned_by, starts_at=given.since or at, at=at
            )
    report.changes = audit.count(session) - start
    return report


def _sync_list(session: Session, name: str, handles: tuple[str, ...], *, actor: str, at: datetime) -> None:
    current = set(stored_list(session, name))
    wanted = set(handles)
    if current == wanted:
        return
    for row in session.scalars(select(ReferenceList).where(ReferenceList.list_name == name)):
        if row.handle not in wanted:
            session.delete(row)
    session.add_all(ReferenceList(list_name=name, handle=h, updated_at=at) for h in sorted(wanted - current))
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="reference-list.updated",
        subject=f"list:{name}",
        at=at,
        payload={
            "count": len(wanted),
            "added": len(wanted - current),
            "removed": len(current - wanted),
            "content": audit.content_digest(sorted(wanted)),
        },
    )


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
        return (
            f"person {entry.handle!r}{line}: {self.account.platform.value} account {name!r} "
            f"already belongs to {owner.handle if owner else 'another person'!r}"
        )


def _import_person(session: Session, entry: RosterPerson, *, actor: str, at: datetime, report: ImportReport) -> None:
    person = session.scalar(select(Person).where(Person.handle == entry.handle))
    if person is None:
        person = repo.create_person(
            session, handle=entry.handle, actor=actor, display_name=entry.name, home_platform=entry.home_platform, at=at
        )
        report.created.append(entry.handle)
        changed = True
    else:
        changed = repo.update_person(
            session, person, actor=actor, display_name=entry.name, home_platform=entry.home_platform, at=at
        )
    for acc in entry.accounts:
        mine = [
            i
            for i in (
                repo.find_identity(session, platform=acc.platform, external_id=acc.external_id),
                repo.find_identity(session, platform=acc.platform, username=acc.username),
            )
            if i is not None
        ]
        if not mine and acc.platform != Platform.EMAIL:
            # Same platform, new id and name: the person's existing account of that platform.
            mine = list(
                session.scalars(
                    select(Identity).where(Identity.person_id == person.id, Identity.platform == acc.platform)
                )
            )[:1]
        if not mine:
            repo.add_identity(
                session,
                person,
                platform=acc.platform,
                actor=actor,
                external_id=acc.external_id,
                username=acc.username,
                at=at,
            )
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
    return session.scalar(
        select(Membership).where(Membership.person_id == person.id).order_by(Membership.id.desc()).limit(1)
    )


def _import_membership(session: Session, person: Person, entry: RosterPerson, *, actor: str, at: datetime) -> bool:
    if entry.membership == "none":
        return False
    changed = False
    membership = _latest_membership(session, person)
    if membership is None or (
        membership.ended_at is not None and entry.membership == "active" and entry.terms[0].start >= membership.ended_at
    ):
        first = entry.terms[0]
        membership = repo.start_membership(
            session, person, actor=actor, starts_at=first.start, ends_at=first.end, origin=TermOrigin.IMPORT, at=at
        )
        changed = True
    have = {t.starts_at for t in session.scalars(select(Term).where(Term.membership_id == membership.id))}
    for term in entry.terms:
        if term.start not in have:
            repo.add_term(
                session,
                membership,
                actor=actor,
                starts_at=term.start,
                ends_at=term.end,
                origin=TermOrigin.IMPORT,
                at=at,
            )
            changed = True
    if entry.membership in _END_STATUSES and membership.ended_at is None:
        repo.end_membership(session, membership, status=_END_STATUSES[entry.membership], actor=actor, at=entry.ended)
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
    return value.strftime("%Y-%m-%dT%H:%M:%S") + (f".{value.microsecond:06d}" if value.microsecond else "") + "Z"


def _export_lists(session: Session) -> list[str]:
    lists = {name: stored_list(session, name) for name in LISTS}
    if not any(lists.values()):
        return []
    return [
        "[lists]",
        *(f"{name} = [{', '.join(_toml_str(h) for h in handles)}]" for name, handles in lists.items() if handles),
        "",
    ]


def _export_identity(identity: Identity) -> str | None:
    """``email = "…"`` or ``<platform> = { id = "…", username = "…" }``; ``None``: nothing known."""
    if identity.platform == Platform.EMAIL:
        return f"email = {_toml_str(identity.username)}" if identity.username else None
    parts = []
    if identity.external_id is not None:
        parts.append(f"id = {_toml_str(identity.external_id)}")
    if identity.username is not None:
        parts.append(f"username = {_toml_str(identity.username)}")
    return f"{identity.platform.value} = {{ {', '.join(parts)} }}" if parts else None


def _export_membership(session: Session, person: Person) -> list[str]:
    membership = _latest_membership(session, person)
    if membership is None or not membership.terms:
        return []
    out = [f"membership = {_toml_str(membership.status.value)}"]
    if membership.ended_at is not None:
        out.append(f"ended = {_toml_time(membership.ended_at)}")
    terms = ", ".join(
        f"{{ start = {_toml_time(t.starts_at)}, end = {_toml_time(t.ends_at)} }}" for t in membership.terms
    )
    return out + [f"terms = [{terms}]"]


def _export_person(session: Session, person: Person) -> list[str]:
    out = ["[[person]]", f"handle = {_toml_str(person.handle)}"]
    if person.display_name:
        out.append(f"name = {_toml_str(person.display_name)}")
    if person.home_platform:
        out.append(f"home_platform = {_toml_str(person.home_platform.value)}")
    out += [line for line in map(_export_identity, person.identities) if line is not None]
    return out + _export_membership(session, person) + [""]


def _export_roles(session: Session) -> list[str]:
    roles = repo.current_wg_roles(session)
    if not roles:
        return []
    out = ["[roles]"]
    for role in (r for r in WgRole if r in roles):
        a = roles[role]
        holder = session.get(Person, a.person_id)
        assert holder is not None
        out.append(
            f"{role.value} = {{ handle = {_toml_str(holder.handle)}, since = "
            f"{_toml_time(a.starts_at)}, assigned_by = {_toml_str(a.assigned_by)} }}"
        )
    return out + [""]


def export_roster(session: Session) -> str:
    """The ledger's people, identities, latest membership with its terms, WG roles and
    reference lists as roster TOML (importable again; erased people are left out)."""
    out = ["# charterflow roster, written by `charterflow roster export`.", "", "[roster]", f"format = {FORMAT}", ""]
    out += _export_lists(session)
    people = session.scalars(select(Person).where(Person.erased_at.is_(None)).order_by(Person.id))
    for person in people:
        out += _export_person(session, person)
    out += _export_roles(session)
    return "\n".join(out)
