"""Keys built from platform ids name the platform instance (issue 19): two Forums (or guilds,
teams) with the same topic, event or entry ids never meet.

Rewrites, in place:

- ``ideas.source_key``: ``discourse:topic:<id>`` → ``discourse:<forum host>:topic:<id>``,
  ``discord:interaction:<id>`` → ``discord:<guild>:interaction:<id>``;
- ``inbox.dedupe_key``: ``discourse:<site URL>:<event>`` → ``discourse:<host>:<event>``,
  ``discord:<application>:<interaction>`` → ``discord:<guild or @me>:<interaction>``
  (Slack's were ``slack:<team>:…`` already);
- ``moderation_actions.entry_id``: ``<id>`` → ``<instance>:<id>`` (widened to 300), and
  ``moderation_cursors`` gets the ``instance`` its ``last_entry_id`` belongs to.

Which instance: first the row's own evidence (an idea's ``source_url``, the site URL in an
inbox key, a Discord payload's ``guild_id``, a Forum moderation entry's link); else the
configured instance, from the alembic config attribute ``instances`` (``{"discourse": host,
"discord": guild id, "slack": team id}``) or, when not given, the connectors' settings in the
environment (``CHARTERFLOW_DISCOURSE_URL``'s host, ``CHARTERFLOW_DISCORD_GUILD_ID``; Slack's
keys named their team already); else ``unknown``. A cursor whose instance cannot be known stays
``NULL``: the first instance that reads that platform's log adopts it (as before this revision).

Downgrade strips the instance again from ideas and moderation entries, and refuses (naming the
key) when two instances' rows would then collide: that is the merge this revision prevents.
Inbox dedupe keys are left as they are: the old code only compares them with new deliveries
(a redelivery comes within hours), and the site URL's scheme is not kept.
Side-effect keys (``effect.done``) are digests in the append-only audit log, never rewritten;
new effects use the new keys.

Revision ID: 0012
Revises: 0009
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import context, op

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None

UNKNOWN = "unknown"
_ENV = {"discourse": "CHARTERFLOW_DISCOURSE_URL", "discord": "CHARTERFLOW_DISCORD_GUILD_ID"}

ideas = sa.table(
    "ideas", sa.column("id", sa.Integer), sa.column("source_key", sa.String), sa.column("source_url", sa.String)
)
inbox = sa.table(
    "inbox",
    sa.column("id", sa.Integer),
    sa.column("source", sa.String),
    sa.column("dedupe_key", sa.String),
    sa.column("payload", sa.JSON),
)
actions = sa.table(
    "moderation_actions",
    sa.column("id", sa.Integer),
    sa.column("platform", sa.String),
    sa.column("entry_id", sa.String),
    sa.column("link", sa.String),
)
cursors = sa.table("moderation_cursors", sa.column("platform", sa.String), sa.column("instance", sa.String))


def host(url: Any) -> str:
    """The host (and port) of a URL, lower case; "" when there is none."""
    text = str(url or "").strip()
    if "://" not in text:
        return ""
    return urlsplit(text).netloc.rpartition("@")[2].lower()


def configured(attributes: dict[str, Any], environ: Any = os.environ) -> dict[str, str]:
    """The instance of each platform the operator configured (see the module docstring)."""
    given = dict(attributes.get("instances") or {})
    found = {"slack": str(given.get("slack") or "")}
    for platform, variable in _ENV.items():
        value = str(given.get(platform) or "")
        if not value:
            raw = str(environ.get(variable) or "").strip()
            value = host(raw) if platform == "discourse" else raw
        found[platform] = value
    return found


def idea_key(key: str, url: str | None, conf: dict[str, str]) -> str:
    """The new ``source_key`` of an idea (keys of other shapes are kept)."""
    if key.startswith("discourse:topic:"):
        inst = host(url) or conf["discourse"] or UNKNOWN
        return f"discourse:{inst}:topic:{key.removeprefix('discourse:topic:')}"
    if key.startswith("discord:interaction:"):
        found = re.match(r"https://discord\.com/channels/(\d+)/", url or "")
        inst = found.group(1) if found else (conf["discord"] or UNKNOWN)
        return f"discord:{inst}:interaction:{key.removeprefix('discord:interaction:')}"
    return key


def inbox_key(source: str, key: str, payload: Any, conf: dict[str, str]) -> str:
    """The new ``dedupe_key`` of an inbox event (keys of other shapes are kept)."""
    if source == "discourse":
        old = re.fullmatch(r"discourse:(|[a-z][a-z0-9+.-]*://[^/]*?/?):([^:]+)", key)
        if old:
            inst = host(old.group(1)) or conf["discourse"] or UNKNOWN
            return f"discourse:{inst}:{old.group(2)}"
    elif source == "discord" and not key.startswith("discord:ping:"):
        old = re.fullmatch(r"discord:([^:]+):(\d+)", key)
        payload = payload if isinstance(payload, dict) else {}
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        attrs = payload.get("attributes") if isinstance(payload.get("attributes"), dict) else {}
        if old and old.group(1) in (str(attrs.get("application_id") or "app"), "app"):
            inst = str(data.get("guild_id") or attrs.get("guild_id") or "@me")
            return f"discord:{inst}:{old.group(2)}"
    return key


def entry_instance(platform: str, link: str | None, conf: dict[str, str]) -> str:
    """The instance of a stored moderation entry (a Forum's link names its site)."""
    if platform == "discourse" and host(link):
        return host(link)
    return conf.get(platform) or UNKNOWN


def _rewrite(conn: Any, table: Any, column: str, changes: list[tuple[int, str, str]]) -> None:
    """Apply (id, old, new) changes of a unique column; a target taken already keeps the old
    value (two old keys for one event: the first one wins, nothing is merged)."""
    taken = set(conn.scalars(sa.select(table.c[column])))
    for row_id, old, new in changes:
        if new == old or new in taken:
            continue
        conn.execute(table.update().where(table.c.id == row_id).values({column: new}))
        taken.discard(old)
        taken.add(new)


def upgrade() -> None:
    conn = op.get_bind()
    conf = configured(context.config.attributes)
    with op.batch_alter_table("moderation_actions") as batch:
        batch.alter_column(
            "entry_id", existing_type=sa.String(length=80), type_=sa.String(length=300), existing_nullable=False
        )
    with op.batch_alter_table("moderation_cursors") as batch:
        batch.add_column(sa.Column("instance", sa.String(length=255), nullable=True))
    with op.batch_alter_table("ideas") as batch:
        batch.alter_column(
            "source_key", existing_type=sa.String(length=200), type_=sa.String(length=300), existing_nullable=True
        )

    rows = conn.execute(
        sa.select(ideas.c.id, ideas.c.source_key, ideas.c.source_url).where(ideas.c.source_key.is_not(None))
    ).all()
    _rewrite(conn, ideas, "source_key", [(i, k, idea_key(k, u, conf)) for i, k, u in rows])
    events = conn.execute(
        sa.select(inbox.c.id, inbox.c.source, inbox.c.dedupe_key, inbox.c.payload).where(
            inbox.c.source.in_(("discourse", "discord"))
        )
    ).all()
    _rewrite(conn, inbox, "dedupe_key", [(i, k, inbox_key(s, k, p, conf)) for i, s, k, p in events])
    entries = conn.execute(sa.select(actions.c.id, actions.c.platform, actions.c.entry_id, actions.c.link)).all()
    _rewrite(conn, actions, "entry_id", [(i, e, f"{entry_instance(p, link, conf)}:{e}") for i, p, e, link in entries])
    seen: dict[str, str] = {}
    for platform, entry in conn.execute(sa.select(actions.c.platform, actions.c.entry_id).order_by(actions.c.id)):
        seen[platform] = entry.rpartition(":")[0]  # the instance of each platform's newest entry
    for (platform,) in conn.execute(sa.select(cursors.c.platform)).all():
        inst = conf.get(platform) or seen.get(platform, "")
        if inst and inst != UNKNOWN:
            conn.execute(cursors.update().where(cursors.c.platform == platform).values(instance=inst))


def _strip(conn: Any, table: Any, column: str, changes: list[tuple[int, str, str, str]]) -> None:
    """Apply (id, old, new, scope) changes that drop the instance; refuse when two rows of one
    scope (the unique constraint's other columns) would meet."""
    news: dict[tuple[str, str], str] = {}
    for _, old, new, scope in changes:
        if (scope, new) in news and news[scope, new] != old:
            raise RuntimeError(
                f"cannot downgrade below 0012: {table.name}.{column} {news[scope, new]!r} and "
                f"{old!r} (two platform instances) would both become {new!r}; remove one first"
            )
        news[scope, new] = old
    for row_id, old, new, _ in changes:
        if new != old:
            conn.execute(table.update().where(table.c.id == row_id).values({column: new}))


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(ideas.c.id, ideas.c.source_key).where(ideas.c.source_key.is_not(None))).all()
    pattern = re.compile(r"(discourse|discord):.+:(topic|interaction):([^:]+)")

    def old_idea(key: str) -> str:
        found = pattern.fullmatch(key)
        return f"{found.group(1)}:{found.group(2)}:{found.group(3)}" if found else key

    _strip(conn, ideas, "source_key", [(i, k, old_idea(k), "") for i, k in rows])
    entries = conn.execute(sa.select(actions.c.id, actions.c.entry_id, actions.c.platform)).all()
    _strip(conn, actions, "entry_id", [(i, e, e.rpartition(":")[2], p) for i, e, p in entries])
    with op.batch_alter_table("ideas") as batch:
        batch.alter_column(
            "source_key", existing_type=sa.String(length=300), type_=sa.String(length=200), existing_nullable=True
        )
    with op.batch_alter_table("moderation_cursors") as batch:
        batch.drop_column("instance")
    with op.batch_alter_table("moderation_actions") as batch:
        batch.alter_column(
            "entry_id", existing_type=sa.String(length=300), type_=sa.String(length=80), existing_nullable=False
        )
