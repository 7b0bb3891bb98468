"""The charter file: every number and list of RULINGS.md as validated data.

A bad file fails with :class:`CharterFileError` naming the file, the field and what is wrong.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from rules.errors import CharterFileError, describe_validation_error
from rules.safety import Safety

PositiveDays = Field(gt=0, le=3650)


class _Strict(BaseModel):
    # A misspelt key must fail loudly rather than silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class CharterInfo(_Strict):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    platforms: list[str] = Field(min_length=1)
    board_platform: str

    @model_validator(mode="after")
    def _distinct(self) -> CharterInfo:
        if len(set(self.platforms)) != len(self.platforms):
            raise ValueError("platforms: each platform may be listed once")
        return self


class DiscourseActivity(_Strict):
    min_days_visited: int = Field(ge=0)
    min_post_count: int = Field(ge=0)
    seen_within_days: int = PositiveDays


class DiscordActivity(_Strict):
    min_messages: int = Field(ge=0)
    messages_window_days: int = PositiveDays


class Eligibility(_Strict):
    account_min_age_days: int = Field(ge=0, le=3650)
    self_nomination: bool = True
    dsf_members_file: str
    discourse: DiscourseActivity
    discord: DiscordActivity


class Application(_Strict):
    confirm_within_days: int = PositiveDays
    max_answer_chars: int = Field(gt=0)
    max_handle_chars: int = Field(gt=0)


class ApprovalBallot(_Strict):
    voting_days: int = PositiveDays
    quorum_fraction: float = Field(ge=0, le=1)
    early_close: bool = True


class RemovalBallot(_Strict):
    voting_days: int = PositiveDays
    majority_fraction: float = Field(ge=0, lt=1)
    exclude_subject: bool = True
    early_close: bool = True


class EndorsementBallot(ApprovalBallot):
    required: bool = True


class Ballots(_Strict):
    approval: ApprovalBallot
    removal: RemovalBallot
    endorsement: EndorsementBallot


class Terms(_Strict):
    length_days: int = PositiveDays
    opt_in_opens_days_before_end: int = Field(ge=0, le=3650)
    reminder_days_before_end: list[int] = Field(min_length=0)
    grace_days: int = Field(ge=0, le=3650)

    @model_validator(mode="after")
    def _window(self) -> Terms:
        if self.opt_in_opens_days_before_end > self.length_days:
            raise ValueError("opt_in_opens_days_before_end: longer than the term itself")
        if any(d <= 0 for d in self.reminder_days_before_end):
            raise ValueError("reminder_days_before_end: every reminder must be > 0 days before")
        return self


class Roles(_Strict):
    chair_cochair_separate_platforms: Literal["warn", "refuse"] = "warn"
    board_liaison_may_be_coc_liaison: bool = False
    board_members_file: str
    steering_council_file: str


class Admins(_Strict):
    min_admins_per_platform: int = Field(ge=0)
    forbid_admin_on_all_platforms: bool = True
    drift_report_within_minutes: int = Field(gt=0)
    max_removals_per_run: int = Field(ge=0)
    # R-ADMIN-4: how often the WG is reminded that a platform needs a new admin
    revocation_reminder_every_days: int = Field(default=7, gt=0)


class Training(_Strict):
    ack_reminder_after_days: int = PositiveDays


class Board(_Strict):
    needs_board: list[str] = Field(min_length=1)
    direct: list[str]
    reminder_after_days: int = PositiveDays
    reminder_every_days: int = PositiveDays

    @model_validator(mode="after")
    def _disjoint(self) -> Board:
        both = sorted(set(self.needs_board) & set(self.direct))
        if both:
            raise ValueError(f"a proposal kind is both needs_board and direct: {', '.join(both)}")
        return self


class Ideas(_Strict):
    sources: list[str] = Field(min_length=1)
    statuses: list[str] = Field(min_length=2)
    digest_weekday: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    flag_untriaged_after_days: int = PositiveDays
    duplicate_similarity: float = Field(gt=0, le=1)
    transitions: dict[str, list[str]]

    @model_validator(mode="after")
    def _known_statuses(self) -> Ideas:
        known = set(self.statuses)
        for source, targets in self.transitions.items():
            for status in [source, *targets]:
                if status not in known:
                    raise ValueError(f"transitions: unknown status {status!r}")
        return self


class Reporting(_Strict):
    every_months: int = Field(gt=0, le=12)
    public: list[str]
    private: str


class Meetings(_Strict):
    """R-MEET. ``anchor``: the start (UTC) of one meeting; the others are every ``every_months``
    months from it, same day and time (a shorter month takes its last day). No anchor: no
    meeting is scheduled."""

    every_months: int = Field(gt=0, le=12)
    platform: str
    create_days_ahead: int = Field(ge=0)
    reminder_days_ahead: int = Field(ge=0)
    anchor: AwareDatetime | None = None
    duration_minutes: int = Field(default=60, gt=0, le=24 * 60)
    title: str = Field(default="Quarterly community call", min_length=1, max_length=100)
    location: str = Field(default="Discord voice channel", min_length=1, max_length=100)


class Moderation(_Strict):
    """Issue 13: which actions on one platform alert the others' moderators (names as in
    ``rules.moderation``: a typo would silently alert about nothing, so it is refused)."""

    severe_actions: list[
        Literal["ban", "kick", "timeout", "suspend", "silence", "message_delete", "post_delete", "role_change"]
    ]
    severe_timeout_minutes: int = Field(gt=0)
    digest_hour_utc: int = Field(ge=0, le=23)


class Trials(_Strict):
    """R-PLATFORM: how long a Board-approved platform trial runs when the proposal names no end
    date, and the longest one (or one extension) may run."""

    default_days: int = Field(default=90, gt=0, le=3650)
    max_days: int = Field(default=365, gt=0, le=3650)

    @model_validator(mode="after")
    def _order(self) -> Trials:
        if self.default_days > self.max_days:
            raise ValueError("default_days: longer than max_days")
        return self


class Charter(_Strict):
    """A whole charter file. ``source`` is where it was read from (for error messages)."""

    charter: CharterInfo
    eligibility: Eligibility
    application: Application
    ballots: Ballots
    terms: Terms
    roles: Roles
    admins: Admins
    training: Training
    board: Board
    ideas: Ideas
    reporting: Reporting
    meetings: Meetings
    moderation: Moderation
    trials: Trials = Field(default_factory=Trials)
    safety: Safety = Field(default_factory=Safety)  # R-SAFE-1: community reports
    source: str = "<memory>"

    @property
    def platforms(self) -> tuple[str, ...]:
        """The approved community platforms."""
        return tuple(self.charter.platforms)

    @model_validator(mode="after")
    def _platforms_known(self) -> Charter:
        known = set(self.charter.platforms)
        for name, value in (
            ("reporting.public", self.reporting.public),
            ("meetings.platform", [self.meetings.platform]),
        ):
            unknown = [p for p in value if p not in known]
            if unknown:
                raise ValueError(f"{name}: {', '.join(unknown)} is not in charter.platforms")
        return self

    def summary(self) -> dict[str, object]:
        """The numbers an operator most often asks about, for `charterflow rules check`."""
        return {
            "id": self.charter.id,
            "name": self.charter.name,
            "source": self.source,
            "platforms": list(self.platforms),
            "account_min_age_days": self.eligibility.account_min_age_days,
            "approval_voting_days": self.ballots.approval.voting_days,
            "removal_voting_days": self.ballots.removal.voting_days,
            "term_days": self.terms.length_days,
            "grace_days": self.terms.grace_days,
            "min_admins_per_platform": self.admins.min_admins_per_platform,
            "needs_board": list(self.board.needs_board),
        }


def parse_charter(text: str, *, source: str = "<memory>") -> Charter:
    """Parse and validate charter TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CharterFileError(f"{source}: not valid TOML: {exc}") from None
    data.pop("source", None)
    try:
        return Charter.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise CharterFileError(f"{source}: {describe_validation_error(exc)}") from None


def load_charter(path: str | Path) -> Charter:
    """Read and validate a charter file; :class:`CharterFileError` names the file and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CharterFileError(f"{path}: cannot read charter file: {exc.strerror}") from None
    return parse_charter(text, source=str(path))


_DEFAULT: Charter | None = None


def default_charter() -> Charter:
    """The shipped charter of the DSF Online Community Working Group."""
    global _DEFAULT
    if _DEFAULT is None:
        text = resources.files("rules").joinpath("charters/dsf-ocwg.toml").read_text("utf-8")
        _DEFAULT = parse_charter(text, source="rules/charters/dsf-ocwg.toml")
    return _DEFAULT
