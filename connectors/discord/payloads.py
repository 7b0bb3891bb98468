"""Pure builders of Discord payloads: messages, ballots, modals, interaction responses, commands.

Nothing here sends anything (DESIGN convention 4). Limits enforced here:

- message ``content`` at most **2000** characters. The OpenAPI spec says ``maxLength: 4000`` on
  ``MessageCreateRequest.content``; the docs say 2000 for bots
  (https://discord.com/developers/docs/resources/message#create-message-jsonform-params) and the
  spec's own README says to follow the docs where they disagree, so 2000 it is. Longer text is
  split on line boundaries into several messages (``split_text``).
- every message built from user or charter text carries ``allowed_mentions: {"parse": []}``, so
  no ``@everyone``, role or user mention in it pings anyone
  (https://discord.com/developers/docs/resources/message#allowed-mentions-object).
- buttons: at most 5 per action row, 5 rows, ``custom_id`` at most 100 characters, labels at
  most 80 (https://discord.com/developers/docs/components/reference#button).
- modals: title at most 45 characters, text inputs with ``max_length`` up to 4000
  (https://discord.com/developers/docs/components/reference#text-input).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "APPLY_MODAL_ID",
    "APPLY_QUESTIONS",
    "BALLOT_PREFIX",
    "COMMANDS",
    "EPHEMERAL",
    "MESSAGE_LIMIT",
    "NO_MENTIONS",
    "apply_modal",
    "ballot_custom_id",
    "ballot_message",
    "ballot_result_message",
    "onboarding_update",
    "deferred",
    "deferred_update",
    "ephemeral",
    "followup",
    "message",
    "messages",
    "parse_ballot_custom_id",
    "plain_text",
    "pong",
    "shorten",
    "split_text",
    "vote_confirmation",
]

MESSAGE_LIMIT = 2000
NO_MENTIONS: dict[str, list[str]] = {"parse": []}
EPHEMERAL = 1 << 6  # message flag 64
BALLOT_PREFIX = "cfb"
APPLY_MODAL_ID = "cf:apply"
_CUSTOM_ID_MAX = 100
_LABEL_MAX = 80
_MAX_BUTTONS = 25

# Interaction callback types (https://discord.com/developers/docs/interactions/receiving-and-responding).
PONG = 1
CHANNEL_MESSAGE_WITH_SOURCE = 4
DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
MODAL = 9

# R-APP-1: an application carries the applicant's usernames (the Discord one is known from the
# interaction), why they want to join, and the experience and skills they bring.
APPLY_QUESTIONS: tuple[dict[str, Any], ...] = (
    {
        "custom_id": "forum_username",
        "label": "Your Forum username (if you have one)",
        "style": 1,
        "required": False,
        "max_length": 64,
    },
    {
        "custom_id": "why",
        "label": "Why do you want to join the working group?",
        "style": 2,
        "required": True,
        "min_length": 1,
        "max_length": 4000,
    },
    {
        "custom_id": "experience",
        "label": "What experience and skills do you bring?",
        "style": 2,
        "required": True,
        "min_length": 1,
        "max_length": 4000,
    },
)

# Commands registered by `charterflow discord register-commands`: slash commands (CHAT_INPUT,
# type 1) and one message command (type 3).
COMMANDS: tuple[dict[str, Any], ...] = (
    {"name": "apply", "type": 1, "description": "Apply to join the Online Community Working Group"},
    {
        "name": "idea",
        "type": 1,
        "description": "Suggest an idea to the working group",
        "options": [
            {
                "type": 3,
                "name": "text",
                "description": "Your idea",
                "required": True,
                "min_length": 1,
                "max_length": 4000,
            }
        ],
    },
    {"name": "optin", "type": 1, "description": "Opt in to a new one-year term in the working group"},
    {
        "name": "leave",
        "type": 1,
        "description": "Leave the working group",
        "options": [
            {
                "type": 3,
                "name": "reason",
                "description": "Why (optional, shared with the group)",
                "required": False,
                "max_length": 1000,
            }
        ],
    },
    # The kinds are the charter's R-BOARD list (a connector cannot read the charter file).
    {
        "name": "propose",
        "type": 1,
        "description": "Propose something for the DSF Board",
        "options": [
            {
                "type": 3,
                "name": "kind",
                "description": "What it is",
                "required": True,
                "choices": [
                    {"name": n, "value": n} for n in ("trial-platform", "migrate-platform", "retire-platform", "budget")
                ],
            },
            {"type": 3, "name": "title", "description": "Title", "required": True, "max_length": 300},
            {"type": 3, "name": "summary", "description": "What and why", "required": True, "max_length": 4000},
            {"type": 3, "name": "amount", "description": "Budget: amount", "required": False},
            {
                "type": 3,
                "name": "currency",
                "description": "Budget: ISO 4217 code, e.g. EUR",
                "required": False,
                "max_length": 3,
            },
            {"type": 3, "name": "purpose", "description": "Budget: purpose", "required": False, "max_length": 1000},
            {
                "type": 3,
                "name": "links",
                "description": "Links, separated by spaces",
                "required": False,
                "max_length": 1000,
            },
            # R-PLATFORM: a platform proposal names its platform (a migration the one it replaces).
            {
                "type": 3,
                "name": "platform",
                "description": "Platform proposals: the platform, e.g. matrix",
                "required": False,
                "max_length": 24,
            },
            {
                "type": 3,
                "name": "replaces",
                "description": "Migration: the platform it replaces",
                "required": False,
                "max_length": 24,
            },
            {
                "type": 3,
                "name": "trial_ends",
                "description": "Trial: its end date, YYYY-MM-DD",
                "required": False,
                "max_length": 10,
            },
        ],
    },
    # R-MOD: a member proposes a platform role change (flows.roles handles it).
    {
        "name": "role",
        "type": 1,
        "description": "Propose a platform role change (moderator, admin, ...)",
        "options": [
            {
                "type": 3,
                "name": "action",
                "description": "grant or revoke",
                "required": True,
                "choices": [{"name": n, "value": n} for n in ("grant", "revoke")],
            },
            {"type": 3, "name": "role", "description": "The role, e.g. moderator", "required": True, "max_length": 64},
            {
                "type": 3,
                "name": "platform",
                "description": "discord, discourse or slack",
                "required": True,
                "choices": [{"name": n, "value": n} for n in ("discord", "discourse", "slack")],
            },
            {
                "type": 3,
                "name": "person",
                "description": "The person's handle in the ledger",
                "required": True,
                "max_length": 100,
            },
            {"type": 3, "name": "reason", "description": "Why", "required": True, "max_length": 1000},
        ],
    },
    # R-IDEA-1: a member changes a backlog item's status (flows.ideas handles it).
    {
        "name": "idea-status",
        "type": 1,
        "description": "Change the status of a backlog idea",
        "options": [
            {"type": 4, "name": "id", "description": "The idea's number", "required": True, "min_value": 1},
            {
                "type": 3,
                "name": "status",
                "description": "The new status",
                "required": True,
                "choices": [
                    {"name": n, "value": n} for n in ("accepted", "declined", "duplicate", "in-progress", "done")
                ],
            },
            {"type": 3, "name": "note", "description": "Why (optional)", "required": False, "max_length": 1000},
        ],
    },
    # R-ROLE-APPOINT: a member proposes a Chair or Co-Chair (flows.wg_roles opens the WG ballot).
    {
        "name": "appoint",
        "type": 1,
        "description": "Propose a Chair or Co-Chair (a WG ballot)",
        "options": [
            {
                "type": 3,
                "name": "role",
                "description": "The WG role",
                "required": True,
                "choices": [{"name": "Chair", "value": "chair"}, {"name": "Co-Chair", "value": "co_chair"}],
            },
            {
                "type": 3,
                "name": "member",
                "description": "The member's handle in the ledger",
                "required": True,
                "max_length": 100,
            },
        ],
    },
    # R-GUIDE: the community guides matching a topic (flows.guides handles it).
    {
        "name": "help",
        "type": 1,
        "description": "Find the community guides on a topic",
        "options": [
            {
                "type": 3,
                "name": "topic",
                "description": "What you need help with (empty: where to start)",
                "required": False,
                "max_length": 100,
            }
        ],
    },
    # R-SAFE-1: a message command (type 3, in the message's Apps menu; no description), handled
    # by flows.safety. https://discord.com/developers/docs/interactions/application-commands#message-commands
    {"name": "Report to moderators", "type": 3, "description": ""},
)


def split_text(text: str, *, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters, at line boundaries.

    A line longer than ``limit`` is cut at its last space before the limit (or hard at the limit
    when it has none). Empty text gives no pieces; joining the pieces with ``"\\n"`` gives back the
    text (apart from the line breaks and spaces a cut falls on).
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    text = text.rstrip()
    if not text:
        return []
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while True:
            sep = 1 if current else 0
            room = limit - len(current) - sep
            if len(line) <= room:
                current = f"{current}\n{line}" if current else line
                break
            if current and len(line) <= limit:
                pieces.append(current)  # the line fits a piece of its own: do not cut it
                current = ""
                continue
            cut = line.rfind(" ", 0, room + 1) if room > 0 else -1
            if cut <= 0:
                if current:
                    pieces.append(current)
                    current = ""
                    continue
                cut = limit
            head, line = line[:cut], line[cut:].lstrip(" ")
            pieces.append(f"{current}\n{head}" if current else head)
            current = ""
    if current.strip():
        pieces.append(current)
    return [p for p in pieces if p.strip()]


def message(
    content: str,
    *,
    components: Sequence[Mapping[str, Any]] | None = None,
    nonce: str | None = None,
    flags: int | None = None,
) -> dict[str, Any]:
    """One ``MessageCreateRequest``; ``ValueError`` when ``content`` exceeds 2000 characters.

    ``nonce`` (at most 25 characters) is sent with ``enforce_nonce: true``: Discord then returns
    the message already created with that nonce (within a few minutes) instead of a second one.
    """
    if len(content) > MESSAGE_LIMIT:
        raise ValueError(f"a Discord message holds at most {MESSAGE_LIMIT} characters (got {len(content)})")
    if not content.strip() and not components:
        raise ValueError("a Discord message needs content or components")
    body: dict[str, Any] = {"content": content, "allowed_mentions": dict(NO_MENTIONS)}
    if components:
        body["components"] = [dict(c) for c in components]
    if nonce is not None:
        if len(nonce) > 25:
            raise ValueError("a nonce holds at most 25 characters")
        body["nonce"] = nonce
        body["enforce_nonce"] = True
    if flags:
        body["flags"] = flags
    return body


def messages(text: str, *, title: str | None = None, nonce: str | None = None) -> list[dict[str, Any]]:
    """The messages that carry ``text`` (with ``title`` in bold first), split at 2000 characters.

    With ``nonce``, message ``i`` gets a nonce derived from it, so each piece is deduplicated.
    """
    body = f"**{_one_line(title)}**\n{text}" if title else text
    pieces = split_text(body)
    if not pieces:
        raise ValueError("nothing to send: the text is empty")
    return [message(piece, nonce=None if nonce is None else f"{nonce[:21]}.{i}"[:25]) for i, piece in enumerate(pieces)]


# Discord's markup for mentions, channels, roles, commands, custom emoji and timestamps
# (https://discord.com/developers/docs/reference#message-formatting): <@id>, <@!id>, <#id>,
# <@&id>, </name:id>, <:name:id>, <a:name:id>, <t:seconds>, <t:seconds:style>.
_MARKUP = re.compile(r"<(@&|@!?|#|/|a?:|t:)([^<>\s:]+(?: [^<>:]+)*)(?::([\w~-]+))?>")


def plain_text(
    content: str,
    *,
    users: Mapping[str, str],
    roles: Mapping[str, str] = {},
    channels: Mapping[str, str] = {},
) -> str:
    """A message's ``content`` as people read it in Discord, for another platform: ``<@id>`` is
    ``@name`` (``users``: the message's ``mentions``), ``<@&id>`` ``@role``, ``<#id>``
    ``#channel``, ``</name:id>`` ``/name``, ``<:name:id>`` ``:name:``, ``<t:…>`` a UTC time;
    an id Discord's client cannot name either reads as it shows it (``@unknown-user``)."""

    def plain(match: re.Match[str]) -> str:
        kind, first, second = match.group(1), match.group(2), match.group(3)
        if kind in ("@", "@!", "@&", "#") and not first.isdigit():
            return match.group(0)
        if kind in ("@", "@!"):
            return f"@{users.get(first, 'unknown-user')}"
        if kind == "@&":
            return f"@{roles.get(first, 'deleted-role')}"
        if kind == "#":
            return f"#{channels.get(first, 'unknown')}"
        if kind == "/" and second:
            return f"/{first}"
        if kind in (":", "a:") and second:
            return f":{first}:"
        if kind == "t:" and first.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(first), UTC).strftime("%Y-%m-%d %H:%M UTC")
        return match.group(0)

    return _MARKUP.sub(plain, content)


def _one_line(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


# ---- ballots -------------------------------------------------------------------------------------


def ballot_custom_id(ballot_id: str, option_id: str) -> str:
    """``cfb:<ballot>:<option>``: what a button press tells us about the vote."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", ballot_id) or not re.fullmatch(r"[0-9]{1,2}", option_id):
        raise ValueError("ballot ids are 1-64 of [A-Za-z0-9_-]; option ids are numbers")
    return f"{BALLOT_PREFIX}:{ballot_id}:{option_id}"


def parse_ballot_custom_id(custom_id: str) -> tuple[str, str] | None:
    """``(ballot_id, option_id)`` from a ballot button's ``custom_id``; ``None`` for other ids."""
    match = re.fullmatch(rf"{BALLOT_PREFIX}:([A-Za-z0-9_-]{{1,64}}):([0-9]{{1,2}})", custom_id or "")
    return (match.group(1), match.group(2)) if match else None


def _buttons(
    ballot_id: str, labels: Sequence[str], *, disabled: bool = False, suffixes: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    if not 2 <= len(labels) <= _MAX_BUTTONS:
        raise ValueError(f"a ballot has 2 to {_MAX_BUTTONS} options")
    buttons = []
    for i, label in enumerate(labels):
        text = _one_line(label) + (suffixes[i] if suffixes else "")
        if not text:
            raise ValueError("ballot options need a label")
        buttons.append(
            {
                "type": 2,
                "style": 1 if i == 0 else 2,
                "label": text[:_LABEL_MAX],
                "custom_id": ballot_custom_id(ballot_id, str(i)),
                "disabled": disabled,
            }
        )
    return [{"type": 1, "components": buttons[i : i + 5]} for i in range(0, len(buttons), 5)]


def _closes_line(closes_at: datetime | None) -> str:
    # <t:unix:F> renders in each reader's time zone (https://discord.com/developers/docs/reference#message-formatting).
    return f"\nVoting closes <t:{int(closes_at.timestamp())}:F>." if closes_at else ""


def shorten(text: str, room: int, *, note: str = "") -> str:
    """``text`` cut at a word to at most ``room`` characters, ending with a visible mark (and
    ``note``, e.g. where to read the rest) so a reader knows it was cut; unchanged if it fits."""
    if len(text) <= room:
        return text
    tail = f" … [shortened{': ' + note if note else ''}]"
    keep = max(0, room - len(tail))
    cut = text.rfind(" ", 0, keep + 1)
    head = text[: cut if cut > keep // 2 else keep].rstrip()
    return (head + tail)[:room] if room > 0 else ""


def ballot_message(
    *,
    ballot_id: str,
    question: str,
    options: Sequence[str],
    closes_at: datetime | None = None,
    voters_note: str | None = None,
    nonce: str | None = None,
    text: str = "",
) -> dict[str, Any]:
    """The ballot: the question, ``text`` (the case voters read), who may vote, when it closes,
    and one button per option. ``text`` is shortened, with a visible mark, to fit 2000
    characters; the question itself must fit."""
    head = f"**Ballot:** {_one_line(question)}"
    tail = "\n".join(
        p
        for p in (
            voters_note,
            _closes_line(closes_at).strip(),
            "Press a button to vote; press another to change your vote until the ballot closes.",
        )
        if p
    )
    room = MESSAGE_LIMIT - len(head) - len(tail) - 3
    if room < 0:
        raise ValueError("the ballot question is too long for one Discord message")
    body = shorten(text.strip(), room, note="too long for one Discord message") if text.strip() else ""
    content = f"{head}\n{body}\n\n{tail}" if body else f"{head}\n{tail}"
    return message(content, components=_buttons(ballot_id, options), nonce=nonce)


def ballot_result_message(
    *,
    ballot_id: str,
    question: str,
    options: Sequence[str],
    counts: Sequence[int] | None = None,
    result: str | None = None,
) -> dict[str, Any]:
    """The ballot after it closed, its buttons removed: ``result`` (the tally merged across
    platforms) when given, else the counts of ``counts`` (one per option); no count line at all
    when there are none to show, so a closed ballot never reads "0 votes" by mistake."""
    lines = [f"**Ballot closed:** {_one_line(question)}"]
    if result:
        lines.append(_one_line(result))
    elif counts is not None and sum(counts) != 0:
        if len(counts) != len(options):
            raise ValueError("one count per option")
        total = sum(counts)
        lines.append(f"{total} vote{'s' if total != 1 else ''} cast.")
        lines += [f"- {_one_line(label)}: {n}" for label, n in zip(options, counts, strict=True)]
    content = shorten("\n".join(lines), MESSAGE_LIMIT)
    body = message(content)
    body["components"] = []  # an empty list removes the buttons on edit
    return body


def vote_confirmation(
    *, option_label: str, changed: bool = False, accepted: bool = True, reason: str = ""
) -> dict[str, Any]:
    """The ephemeral answer to a vote button: recorded, changed, or refused (with why)."""
    if not accepted:
        return ephemeral(f"Your vote was not recorded: {reason or 'this ballot is closed'}.")
    verb = "changed to" if changed else "recorded:"
    return ephemeral(
        f"Your vote is {verb} **{_one_line(option_label)}**. "
        "You can change it by pressing another button until the ballot closes."
    )


# ---- interaction responses ----------------------------------------------------------------------


def pong() -> dict[str, Any]:
    """The answer to a PING (type 1)."""
    return {"type": PONG}


def ephemeral(text: str) -> dict[str, Any]:
    """A reply only the user sees (type 4, flag 64). Longer than 2000: ``ValueError`` (use
    ``deferred`` and several ``followup``s)."""
    data = message(text, flags=EPHEMERAL)
    return {"type": CHANNEL_MESSAGE_WITH_SOURCE, "data": data}


def deferred(*, ephemeral: bool = True) -> dict[str, Any]:
    """ "Thinking…" (type 5): the real answer follows through the interaction webhook within 15 min."""
    return {"type": DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE, "data": {"flags": EPHEMERAL} if ephemeral else {}}


def deferred_update() -> dict[str, Any]:
    """Acknowledge a button press without changing its message (type 6)."""
    return {"type": DEFERRED_UPDATE_MESSAGE}


def followup(text: str, *, ephemeral: bool = True) -> list[dict[str, Any]]:
    """Follow-up message bodies (``POST /webhooks/{app}/{token}``) for ``text``, split at 2000."""
    pieces = split_text(text)
    if not pieces:
        raise ValueError("nothing to send: the text is empty")
    return [message(p, flags=EPHEMERAL if ephemeral else None) for p in pieces]


def apply_modal(*, title: str = "Apply to the working group") -> dict[str, Any]:
    """The ``/apply`` form (type 9): the three questions of R-APP-1, one text input per row."""
    if not 1 <= len(title) <= 45:
        raise ValueError("a modal title holds 1 to 45 characters")
    rows = [{"type": 1, "components": [{"type": 4, **q}]} for q in APPLY_QUESTIONS]
    return {"type": MODAL, "data": {"custom_id": APPLY_MODAL_ID, "title": title, "components": rows}}


# The welcome screen's limits (WelcomeScreenPatchRequestPartial and GuildWelcomeChannel in the
# spec): https://discord.com/developers/docs/resources/guild#modify-guild-welcome-screen
WELCOME_DESCRIPTION_MAX = 140
WELCOME_CHANNEL_LABEL_MAX = 50
WELCOME_CHANNELS_MAX = 5


def welcome_screen(description: str, channels: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """A ``PATCH /guilds/{id}/welcome-screen`` body: enabled, ``description`` (at most 140
    characters) and up to 5 ``(channel_id, label)`` with labels of 1 to 50 characters;
    ``ValueError`` when a limit is passed (never cut silently)."""
    text = description.strip()
    if not 1 <= len(text) <= WELCOME_DESCRIPTION_MAX:
        raise ValueError(
            f"a welcome screen description holds 1 to {WELCOME_DESCRIPTION_MAX} characters, not {len(text)}"
        )
    if len(channels) > WELCOME_CHANNELS_MAX:
        raise ValueError(f"a welcome screen lists at most {WELCOME_CHANNELS_MAX} channels")
    rows = []
    for channel_id, label in channels:
        if not 1 <= len(label.strip()) <= WELCOME_CHANNEL_LABEL_MAX:
            raise ValueError(f"a welcome channel's label holds 1 to {WELCOME_CHANNEL_LABEL_MAX} characters")
        rows.append({"channel_id": str(channel_id), "description": label.strip(), "emoji_id": None, "emoji_name": None})
    return {"enabled": True, "description": text, "welcome_channels": rows}


# Guild Onboarding (R-GUIDE: new members find the guides there); limits from the OpenAPI spec's
# UpdateGuildOnboardingRequest: https://discord.com/developers/docs/resources/guild#modify-guild-onboarding
ONBOARDING_PROMPTS_MAX = 15
ONBOARDING_OPTIONS_MAX = 50
ONBOARDING_OPTION_TITLE_MAX = 50
ONBOARDING_OPTION_DESCRIPTION_MAX = 100


def _label(text: str, limit: int) -> str:
    # A label shortened visibly (an ellipsis), at a word where one is near.
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return (cut if len(cut) > limit // 2 else text[: limit - 1]) + "\u2026"


def _option_as_sent(option: Mapping[str, Any]) -> dict[str, Any]:
    # An option as GET answers it, in PUT's shape (emoji object -> emoji_* fields, as the docs say).
    emoji = option.get("emoji") or {}
    return {
        "id": option.get("id"),
        "title": option.get("title"),
        "description": option.get("description") or None,
        "emoji_id": option.get("emoji_id", emoji.get("id")),
        "emoji_name": option.get("emoji_name", emoji.get("name")),
        "emoji_animated": bool(option.get("emoji_animated", emoji.get("animated"))),
        "role_ids": list(option.get("role_ids") or []),
        "channel_ids": list(option.get("channel_ids") or []),
    }


def _prompt_as_sent(prompt: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "title", "single_select", "required", "in_onboarding", "type")
    return {**{k: prompt.get(k) for k in keys}, "options": [_option_as_sent(o) for o in prompt.get("options") or []]}


def _prompt_at(prompts: Sequence[Mapping[str, Any]], *, prompt_id: str, title: str) -> int | None:
    # Ours is the prompt with our id, else the one with our title (case aside).
    by_id = [i for i, p in enumerate(prompts) if prompt_id and p["id"] == prompt_id]
    by_title = [i for i, p in enumerate(prompts) if str(p["title"]).casefold() == title.casefold()]
    return (by_id or by_title)[0] if by_id or by_title else None


def _option_rows(
    options: Sequence[tuple[str, str]], channel_id: str, old_ids: Mapping[str, Any]
) -> list[dict[str, Any]]:
    # Each option opens the guides' channel; an option keeps the id it had under the same label.
    rows = []
    for label, description in options:
        if len(description) > ONBOARDING_OPTION_DESCRIPTION_MAX:
            raise ValueError(f"an onboarding option's description holds at most {ONBOARDING_OPTION_DESCRIPTION_MAX}")
        name = _label(label, ONBOARDING_OPTION_TITLE_MAX)
        sent = _option_as_sent({"title": name, "description": description, "channel_ids": [str(channel_id)]})
        rows.append({**sent, "id": old_ids.get(name)})
    return rows


def onboarding_update(
    current: Mapping[str, Any],
    *,
    title: str,
    options: Sequence[tuple[str, str]],
    channel_id: str,
    new_id: str,
    prompt_id: str = "",
) -> tuple[dict[str, Any] | None, str]:
    """The ``PUT /guilds/{id}/onboarding`` body that keeps every prompt and setting of
    ``current`` (what GET answered: PUT replaces them all) and shows one prompt ``title`` (the
    prompt ``prompt_id`` when present, else the one so titled, else a new one with ``new_id``)
    with ``options`` as ``(label, description)`` opening ``channel_id``; and that prompt's id.
    ``None`` for the body when the prompt shows exactly that already. Labels longer than 50
    characters are shortened with an ellipsis; ``ValueError`` for more than 50 options, a
    description over 100 characters or a 16th prompt."""
    if not 1 <= len(options) <= ONBOARDING_OPTIONS_MAX:
        raise ValueError(f"an onboarding prompt holds 1 to {ONBOARDING_OPTIONS_MAX} options, not {len(options)}")
    prompts = [_prompt_as_sent(p) for p in current.get("prompts") or []]
    at = _prompt_at(prompts, prompt_id=prompt_id, title=title)
    old = prompts[at] if at is not None else None
    rows = _option_rows(options, channel_id, {o["title"]: o["id"] for o in (old or {}).get("options", [])})
    ours = {
        "id": old["id"] if old else new_id,
        "title": title,
        "single_select": False,
        "required": False,
        "in_onboarding": True,
        "type": 0,
        "options": rows,
    }
    if old == ours:
        return None, str(ours["id"])
    if at is None:
        if len(prompts) >= ONBOARDING_PROMPTS_MAX:
            raise ValueError(f"the onboarding holds at most {ONBOARDING_PROMPTS_MAX} prompts; no room for {title!r}")
        prompts.append(ours)
    else:
        prompts[at] = ours
    body = {
        "prompts": prompts,
        "default_channel_ids": list(current.get("default_channel_ids") or []),
        "enabled": bool(current.get("enabled")),
        "mode": int(current.get("mode") or 0),
    }
    return body, str(ours["id"])
