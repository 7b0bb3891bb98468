"""Migration 0012 (issue 19): keys built from platform ids get the platform instance, on SQLite
and PostgreSQL, from each row's own evidence or the configured instance; downgrade strips it
again and refuses when two instances' rows would then be merged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from ledger import Ledger
from ledger import moderation as modlog
from ledger.migrate import downgrade, upgrade
from ledger.models_moderation import ModerationAction
from ledger.types import UTCDateTime

AT = datetime(2026, 3, 1, tzinfo=UTC)
ideas = sa.table(
    "ideas",
    sa.column("id", sa.Integer),
    sa.column("title", sa.String),
    sa.column("source", sa.String),
    sa.column("status", sa.String),
    sa.column("source_key", sa.String),
    sa.column("source_url", sa.String),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
inbox = sa.table(
    "inbox",
    sa.column("id", sa.Integer),
    sa.column("source", sa.String),
    sa.column("kind", sa.String),
    sa.column("dedupe_key", sa.String),
    sa.column("payload", sa.JSON),
    sa.column("received_at", UTCDateTime()),
)
actions = sa.table(
    "moderation_actions",
    sa.column("id", sa.Integer),
    sa.column("platform", sa.String),
    sa.column("entry_id", sa.String),
    sa.column("action", sa.String),
    sa.column("platform_action", sa.String),
    sa.column("link", sa.String),
    sa.column("occurred_at", UTCDateTime()),
    sa.column("recorded_at", UTCDateTime()),
    sa.column("raw", sa.JSON),
)
cursors = sa.table(
    "moderation_cursors",
    sa.column("platform", sa.String),
    sa.column("last_entry_id", sa.String),
    sa.column("updated_at", UTCDateTime()),
)


def _seed_at_0008(lg: Ledger) -> None:
    idea = {"title": "t", "source": "forum", "status": "new", "created_at": AT, "updated_at": AT}
    with lg.engine.begin() as conn:
        conn.execute(
            ideas.insert(),
            [
                {
                    **idea,
                    "source_key": "discourse:topic:123",
                    "source_url": "https://Forum.example.org/t/office-hours/123",
                },
                {**idea, "source_key": "discourse:topic:124", "source_url": None},
                {
                    **idea,
                    "source": "discord",
                    "source_key": "discord:interaction:900",
                    "source_url": "https://discord.com/channels/4000/4001",
                },
                {**idea, "source": "operator", "source_key": "operator:abc", "source_url": None},
            ],
        )
        conn.execute(
            inbox.insert(),
            [
                {
                    "source": "discourse",
                    "kind": "topic_created",
                    "received_at": AT,
                    "payload": {},
                    "dedupe_key": "discourse:https://forum.example.org:41",
                },
                {
                    "source": "discourse",
                    "kind": "ping",
                    "received_at": AT,
                    "payload": {},
                    "dedupe_key": "discourse:http://127.0.0.1:5123:7",
                },
                {"source": "discourse", "kind": "ping", "received_at": AT, "payload": {}, "dedupe_key": "discourse::8"},
                {
                    "source": "discord",
                    "kind": "idea",
                    "received_at": AT,
                    "payload": {"data": {"guild_id": "4000"}, "attributes": {"application_id": "77"}},
                    "dedupe_key": "discord:77:555",
                },
                {
                    "source": "discord",
                    "kind": "ping",
                    "received_at": AT,
                    "payload": {},
                    "dedupe_key": "discord:ping:556",
                },
                {
                    "source": "slack",
                    "kind": "block_actions",
                    "received_at": AT,
                    "payload": {},
                    "dedupe_key": "slack:T1:trig",
                },
            ],
        )
        entry = {
            "action": "suspend",
            "platform_action": "suspend_user",
            "occurred_at": AT,
            "recorded_at": AT,
            "raw": {},
        }
        conn.execute(
            actions.insert(),
            [
                {
                    **entry,
                    "platform": "discourse",
                    "entry_id": "17",
                    "link": "https://forum.example.org/admin/logs/staff_action_logs",
                },
                {**entry, "platform": "discord", "entry_id": "17", "link": None},
            ],
        )
        conn.execute(
            cursors.insert(),
            [
                {"platform": "discourse", "last_entry_id": "17", "updated_at": AT},
                {"platform": "discord", "last_entry_id": "17", "updated_at": AT},
            ],
        )


def _keys(lg: Ledger) -> dict[str, list]:
    with lg.engine.connect() as conn:
        return {
            "ideas": list(conn.scalars(sa.select(ideas.c.source_key).order_by(ideas.c.id))),
            "inbox": list(conn.scalars(sa.select(inbox.c.dedupe_key).order_by(inbox.c.id))),
            "actions": list(conn.scalars(sa.select(actions.c.entry_id).order_by(actions.c.id))),
            "cursors": [
                tuple(r)
                for r in conn.execute(sa.text("SELECT platform, instance FROM moderation_cursors ORDER BY platform"))
            ]
            if _has_cursor_instance(conn)
            else [],
        }


def _has_cursor_instance(conn: sa.Connection) -> bool:
    return "instance" in {c["name"] for c in sa.inspect(conn).get_columns("moderation_cursors")}


def test_0012_names_the_instance_in_old_keys_and_downgrade_strips_it(db_url: str) -> None:
    lg = Ledger(db_url)
    upgrade(lg, "0008")
    _seed_at_0008(lg)
    before = _keys(lg)
    upgrade(lg, instances={"discourse": "forum.example.org", "discord": "4000"})
    after = _keys(lg)
    assert after["ideas"] == [
        "discourse:forum.example.org:topic:123",  # the host of its own link
        "discourse:forum.example.org:topic:124",  # the configured Forum
        "discord:4000:interaction:900",  # the guild of its own link
        "operator:abc",  # not built from a platform id: kept
    ]
    assert after["inbox"] == [
        "discourse:forum.example.org:41",
        "discourse:127.0.0.1:5123:7",
        "discourse:forum.example.org:8",
        "discord:4000:555",
        "discord:ping:556",
        "slack:T1:trig",
    ]
    assert after["actions"] == ["forum.example.org:17", "4000:17"]
    assert after["cursors"] == [("discord", "4000"), ("discourse", "forum.example.org")]

    # Back down: ideas and moderation entries get their old keys again (inbox keys stay).
    downgrade(lg, "0008")
    back = _keys(lg)
    assert back["ideas"] == before["ideas"] and back["actions"] == before["actions"]
    assert back["inbox"] == after["inbox"]
    lg.dispose()


def test_0012_without_configuration_uses_the_rows_evidence_and_downgrade_refuses_a_merge(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHARTERFLOW_DISCORD_GUILD_ID", raising=False)
    monkeypatch.setenv("CHARTERFLOW_DISCOURSE_URL", "https://env.example.org/")
    lg = Ledger(db_url)
    upgrade(lg, "0008")
    _seed_at_0008(lg)
    upgrade(lg)
    keys = _keys(lg)
    assert keys["ideas"][:2] == ["discourse:forum.example.org:topic:123", "discourse:env.example.org:topic:124"]
    assert keys["actions"] == ["forum.example.org:17", "unknown:17"]
    # No guild known: the Discord cursor stays unassigned (adopted by the first reader).
    assert keys["cursors"] == [("discord", None), ("discourse", "env.example.org")]

    # A second Forum's topic 123 is filed apart from the first ...
    with lg.engine.begin() as conn:
        conn.execute(
            ideas.insert(),
            [
                {
                    "title": "t",
                    "source": "forum",
                    "status": "new",
                    "created_at": AT,
                    "updated_at": AT,
                    "source_key": "discourse:other.example.org:topic:123",
                }
            ],
        )
    # ... so going back, where both would be discourse:topic:123, is refused, naming them.
    with pytest.raises(RuntimeError, match="would both become 'discourse:topic:123'"):
        downgrade(lg, "0008")
    assert _keys(lg)["ideas"][-1] == "discourse:other.example.org:topic:123"  # nothing changed
    lg.dispose()


def test_moderation_entries_and_cursor_are_per_instance(ledger: Ledger) -> None:
    """Entry 17 of one Forum is not entry 17 of another; a cursor of another Forum is not ours."""
    row = {"entry_id": "17", "action": "suspend", "platform_action": "suspend_user", "occurred_at": AT, "raw": {}}
    with ledger.transaction() as s:
        assert (
            len(
                modlog.store_entries(
                    s, platform="discourse", instance="a.example.org", rows=[row], last_entry_id="17", at=AT
                )
            )
            == 1
        )
    with ledger.read() as s:
        assert modlog.cursor(s, "discourse", "a.example.org") == "17"
        assert modlog.cursor(s, "discourse", "b.example.org") is None  # read B from its start
    with ledger.transaction() as s:
        assert (
            len(
                modlog.store_entries(
                    s, platform="discourse", instance="b.example.org", rows=[row], last_entry_id="17", at=AT
                )
            )
            == 1
        )
        # A re-read of A's entry is still recognised.
        assert (
            modlog.store_entries(
                s, platform="discourse", instance="a.example.org", rows=[row], last_entry_id="17", at=AT
            )
            == []
        )
    with ledger.read() as s:
        keys = sorted(s.scalars(sa.select(ModerationAction.entry_id)))
    assert keys == ["a.example.org:17", "b.example.org:17"]
    with pytest.raises(ValueError, match="instance"):
        modlog.entry_key("", "17")
