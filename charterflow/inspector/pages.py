"""The inspector's pages: GETs that read each sandbox's ``GET /_sandbox/state`` and change
nothing (``/``, ``/discord``, ``/forum``, ``/slack``, ``/mail``), its stylesheet and
``/healthz``."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from charterflow.inspector.state import HERE, LABELS, PLATFORM_OF, InspectorDep, RunningDep
from connectors.base import PlaceLinks
from connectors.registry import community_connectors, load_connector

router = APIRouter()
STYLESHEET = HERE / "static" / "inspector.css"


def place_links() -> list[tuple[str, list[tuple[str, str]]]]:
    """The places (rooms, a space) of each installed platform plugin whose connector is a
    ``PlaceLinks`` and whose settings load here (a Matrix homeserver under `up`), by platform;
    the built-in platforms have their own pages. A plugin that fails is left out."""
    out = []
    for name in community_connectors():
        if name in PLATFORM_OF.values():
            continue
        try:
            connector = load_connector(name).from_env()
        except Exception:  # noqa: BLE001 - not configured here: nothing to link
            continue
        try:
            if isinstance(connector, PlaceLinks):
                out.append((name, connector.place_links()))
        finally:
            connector.close()
    return out


@router.get("/healthz")
async def healthz(running: RunningDep) -> Response:
    body = {"ready": running.ready, "problems": running.problems, "sandboxes": sorted(running.urls)}
    return JSONResponse(body, status_code=200 if running.ready else 503)


@router.get("/static/inspector.css")
async def stylesheet() -> Response:
    return Response(STYLESHEET.read_bytes(), media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, inspector: InspectorDep) -> HTMLResponse:
    running = inspector.running
    community = running.community
    rows = [
        {
            "label": LABELS[page],
            "mode": "sandbox" if PLATFORM_OF[page] in running.urls else "real",
            "url": running.urls.get(PLATFORM_OF[page]),
        }
        for page in ("discord", "forum", "slack")
    ]
    roles = {handle: role.replace("_", "-") for role, handle in community.wg_roles.items()}
    # Who holds the roles now, as each platform shows it (the demo adds a moderator).
    staff = []
    if "discourse" in running.urls:
        users = [u for u in (await inspector.state("discourse"))["users"] if u["id"] > 0]
        staff.append(
            (
                "Forum",
                [u["username"] for u in users if u["admin"]],
                [u["username"] for u in users if u["moderator"] and not u["admin"]],
            )
        )
    if "discord" in running.urls:
        members = (await inspector.state("discord"))["members"]
        staff.append(
            (
                "Discord",
                [m["username"] for m in members if "admin" in m["roles"]],
                [m["username"] for m in members if "moderator" in m["roles"]],
            )
        )
    return inspector.render(
        "home.html",
        request,
        page="home",
        sandboxes=rows,
        wg=community.wg,
        roles=roles,
        staff=staff,
        people=len(community.people),
        board=[p.handle for p in community.board],
        problems=running.problems,
        places=await run_in_threadpool(place_links),
    )


def discord_names(s: dict[str, Any]) -> dict[str, str]:
    """Member id → username, the bot included."""
    names = {m["id"]: m["username"] for m in s["members"]}
    names[s["guild"]["application_id"]] = "charterflow (bot)"
    return names


def discord_channels(s: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The side bar: text channels, their threads, and the DMs by recipient."""
    threads: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in s["channels"]:
        if c["type"] in (11, 12) and c.get("parent_id"):
            threads[c["parent_id"]].append(c)
    dms = [
        {"id": c["id"], "username": names.get(c.get("recipient_id"), c.get("recipient_id"))}
        for c in s["channels"]
        if c["type"] == 1
    ]
    # Private as Discord shows it: @everyone (the guild's id) denied View Channel (1 << 10).
    guild = s["guild"]["id"]
    text = [
        {**c, "private": any(o["id"] == guild and int(o["deny"]) & 1 << 10 for o in c.get("permission_overwrites", []))}
        for c in s["channels"]
        if c["type"] == 0
    ]
    return {"channels": text, "threads": threads, "dms": dms}


def discord_heading(s: dict[str, Any], names: dict[str, str], current: str) -> str:
    chosen: dict[str, Any] = next((c for c in s["channels"] if c["id"] == current), {})
    if chosen.get("type") == 1:
        return f"@ {names.get(str(chosen.get('recipient_id')), '?')}"
    return f"# {chosen.get('name', '?')}"


def discord_view(s: dict[str, Any], *, channel: str | None, acting: str) -> dict[str, Any]:
    """What the Discord page shows of the sandbox's state, as ``acting`` sees it."""
    names = discord_names(s)
    side = discord_channels(s, names)
    current = channel or next(
        (c["id"] for c in side["channels"] if c["name"] == "wg-private"), side["channels"][0]["id"]
    )
    # An ephemeral reply is shown to its only reader, as Discord does.
    readers = (None, *(u for u, n in names.items() if n == acting))
    messages = [m for m in s["messages"] if m["channel_id"] == current and m.get("visible_to") in readers]
    commands = sorted({name for names_ in s["commands"].values() for name in names_})
    bot = s["guild"]["application_id"]
    return dict(
        guild=s["guild"]["name"],
        current=current,
        heading=discord_heading(s, names, current),
        messages=messages,
        names=names,
        acting=acting,
        commands=commands or ["idea", "propose", "role", "optin", "leave", "apply"],
        members=sorted(names[m["id"]] for m in s["members"] if m["id"] in names and m["id"] != bot),
        **side,
    )


async def seen_by(inspector: Any, request: Request, page: str) -> tuple[dict[str, Any], str, set[str]]:
    """A sandbox's state, who the page shows it as (``?as=``, else the first WG member) and the
    WG's usernames there."""
    account = "discord" if page == "discord" else "forum"
    wg = inspector.running.community.wg
    acting = request.query_params.get("as") or getattr(wg[0], account)["username"]
    return (
        await inspector.state(PLATFORM_OF[page]),
        acting,
        {getattr(p, account)["username"] for p in wg if getattr(p, account)},
    )


@router.get("/discord", response_class=HTMLResponse)
async def discord(request: Request, inspector: InspectorDep, channel: str | None = None) -> HTMLResponse:
    if "discord" not in inspector.running.urls:
        return inspector.off(request, "discord")
    s, acting, wg = await seen_by(inspector, request, "discord")
    return inspector.render(
        "discord.html", request, page="discord", wg=wg, **discord_view(s, channel=channel, acting=acting)
    )


def forum_polls(s: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """Each post's polls with their counts, as a member sees them: a ``results=on_close`` poll
    shows no counts while open."""
    polls: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for poll in s["polls"]:
        counts = Counter(o for opts in poll["votes"].values() for o in opts)
        hidden = poll.get("results") == "on_close" and poll["status"] == "open"
        polls[poll["post_id"]].append({**poll, "counts": None if hidden else counts})
    return polls


def forum_flaggers(s: dict[str, Any], names: dict[int, str]) -> dict[int, list[str]]:
    """Who flagged each post (the Forum sandbox's flags)."""
    out: dict[int, set[str]] = defaultdict(set)
    for f in s.get("flags", []):
        out[f["post_id"]].add(names.get(f["user_id"], str(f["user_id"])))
    return {post: sorted(who) for post, who in out.items()}


def forum_recipients(s: dict[str, Any], chosen: dict[str, Any] | None, names: dict[int, str]) -> list[str]:
    """Who a personal message is for (users by name, groups as ``group <name>``)."""
    if not chosen or chosen["archetype"] != "private_message":
        return []
    groups = {g["id"]: g["name"] for g in s["groups"]}
    return [
        names.get(ref, ref) if kind == "user" else f"group {groups.get(ref, ref)}"
        for kind, ref in chosen.get("allowed", [])
    ]


def forum_view(s: dict[str, Any], *, topic: int | None) -> dict[str, Any]:
    """What the Forum page shows of the sandbox's state, with ``topic`` open."""
    names = {u["id"]: u["username"] for u in s["users"]}
    by_category: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for t in s["topics"]:
        if t["archetype"] != "private_message":
            by_category[t["category_id"]].append(t)
    chosen = next((t for t in s["topics"] if t["id"] == topic), None)
    posts = [p for p in s["posts"] if chosen and p["topic_id"] == chosen["id"]]
    return dict(
        categories=s["categories"],
        topics_by_category=by_category,
        current=topic,
        pms=[t for t in s["topics"] if t["archetype"] == "private_message"],
        topic=chosen,
        posts=posts,
        polls=forum_polls(s),
        flagged=forum_flaggers(s, names),
        names=names,
        recipients=forum_recipients(s, chosen, names),
        users=sorted(u["username"] for u in s["users"] if u["id"] > 0),
    )


@router.get("/forum", response_class=HTMLResponse)
async def forum(request: Request, inspector: InspectorDep, topic: int | None = None) -> HTMLResponse:
    if "discourse" not in inspector.running.urls:
        return inspector.off(request, "forum")
    s, acting, wg = await seen_by(inspector, request, "forum")
    return inspector.render("forum.html", request, page="forum", acting=acting, wg=wg, **forum_view(s, topic=topic))


@router.get("/mail", response_class=HTMLResponse)
async def mail(request: Request, inspector: InspectorDep) -> HTMLResponse:
    mailbox = getattr(inspector.running, "mailbox", None)
    if mailbox is None:
        return inspector.render(
            "off.html",
            request,
            page="mail",
            title="Mail",
            text="E-mail goes to the configured SMTP server (CHARTERFLOW_SMTP_HOST), "
            "not to a sandbox: there is nothing to inspect here.",
        )
    return inspector.render(
        "mail.html",
        request,
        page="mail",
        messages=list(reversed(mailbox.messages())),
        smtp=f"{mailbox.host}:{mailbox.port}",
    )


@router.get("/slack", response_class=HTMLResponse)
async def slack(request: Request, inspector: InspectorDep, channel: str | None = None) -> HTMLResponse:
    running = inspector.running
    if "slack" not in running.urls:
        return inspector.off(request, "slack")
    s = await inspector.state("slack")
    current = channel or "C0BOARD01"
    all_messages = s["messages"].get(current, [])
    top = [m for m in all_messages if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]
    replies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in all_messages:
        if m.get("thread_ts") and m["thread_ts"] != m["ts"]:
            replies[m["thread_ts"]].append(m)
    return inspector.render(
        "slack.html",
        request,
        page="slack",
        team=s["team"]["name"],
        channels=[c for c in s["channels"] if not c.get("is_archived")],
        current=current,
        messages=top,
        replies=replies,
        names={u["id"]: u["real_name"] for u in s["users"]},
        users=[u for u in s["users"] if not u.get("is_bot")],
        board={p.slack_id for p in running.community.board},
        acting=request.query_params.get("as") or running.community.board[-1].slack_id,
        events=s["events"],
        deliveries=list(reversed(s["events"]["deliveries"][-5:])),  # the newest first
        bot_in=any(c["id"] == current and s["bot_user_id"] in c["members"] for c in s["channels"]),
    )
