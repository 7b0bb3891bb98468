"""The sandbox inspector: server-rendered pages showing the sandboxes as people see the platforms,
and buttons that act as any seeded person through the requests the platforms send.

Reads only each sandbox's ``GET /_sandbox/state``. Acting goes through the sandboxes' own
controls, which sign as the platform does: Discord's ``POST /_sandbox/interactions`` (an
Ed25519-signed interaction delivered to the gateway), Slack's ``POST /_sandbox/interact`` (a
signed ``block_actions`` request to the gateway's ``/hooks/slack``), and the Forum's poll API as
the voter (``PUT /polls/vote`` with the sandbox's all-users key). Every page is a GET that
changes nothing; every action is a POST accepted only from this origin (``Origin``, else
``Referer``, must be the inspector itself) and answered with a redirect back to the page.

Every request must name an allowed host (``Host``): the address the inspector is bound to,
``localhost``, and the names the operator lists in ``CHARTERFLOW_INSPECTOR_ALLOWED_HOSTS``;
anything else is 403, so a page on another site that rebinds its own name to 127.0.0.1 (DNS
rebinding) can neither read the pages nor act. The redirect after an action goes to one of the
inspector's own pages, built from the ``Referer``'s page name, never to the ``Referer`` as is.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, parse_qs, urlencode, urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from jinja2 import DictLoader, Environment, select_autoescape
from markupsafe import Markup, escape

from charterflow.inspector.templates import TEMPLATES

LABELS = {"discord": "Discord", "forum": "Forum", "slack": "Slack", "mail": "Mail"}
PAGES = ("/", "/discord", "/forum", "/slack")  # where an action may send the browser back to
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
PLATFORM_OF = {"discord": "discord", "forum": "discourse", "slack": "slack"}


def _options(text: str) -> dict[str, str]:
    """``a=1; b=two`` → ``{"a": "1", "b": "two"}`` (the command form's option field)."""
    out = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


class BadNumber(ValueError):
    """A form field that must be a number is not one."""


def place_links() -> list[tuple[str, list[tuple[str, str]]]]:
    """The places (rooms, a space) of each installed platform plugin whose connector is a
    ``PlaceLinks`` and whose settings load here (a Matrix homeserver under `up`), by platform;
    the built-in platforms have their own pages. A plugin that fails is left out."""
    from connectors.base import PlaceLinks
    from connectors.registry import community_connectors, load_connector

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


def allowed_host(host: str, *, port: int | None, names: tuple[str, ...]) -> bool:
    """Whether a ``Host`` header names this inspector: a loopback name or a listed ``name`` on
    the bound ``port`` (any port when None), or a listed ``name:port`` exactly."""
    host = host.strip().lower()
    name, _, given = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not name:
        name, given = host, ""
    if given and not given.isdigit():
        return False
    for entry in (*LOOPBACK_NAMES, *names):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == host:
            return True
        if entry == name and (port is None or given == str(port)):
            return True
    return False


def create_app(*, running: Any, prefect_ui: str | None = None, port: int | None = None,
               allowed_hosts: tuple[str, ...] | list[str] = ()) -> FastAPI:
    """The inspector for ``running`` (a ``charterflow.inspector.serve.Running``), bound to
    ``port`` on loopback; ``allowed_hosts`` are the other host names it answers to."""
    client = httpx.AsyncClient(timeout=20.0)
    names = tuple(h for h in allowed_hosts if h.strip())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = FastAPI(title="charterflow sandbox inspector", docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=lifespan)
    env = Environment(loader=DictLoader(TEMPLATES), autoescape=select_autoescape(default=True))
    env.filters["discord"] = discord_markup
    env.filters["when"] = when
    env.filters["forum"] = forum_markup
    env.filters["slack"] = slack_markup

    def shown() -> list[tuple[str, str]]:
        pages = [(page, LABELS[page]) for page in ("discord", "forum", "slack")
                 if PLATFORM_OF[page] in running.urls]
        return pages + ([("mail", LABELS["mail"])] if getattr(running, "mailbox", None) else [])

    def render(name: str, request: Request, **values: Any) -> HTMLResponse:
        values.setdefault("title", LABELS.get(values.get("page", ""), "Overview"))
        html = env.get_template(name).render(platforms=shown(), prefect_ui=prefect_ui,
                                             gateway_url=running.gateway_url.rstrip("/"),
                                             note=request.query_params.get("note"), **values)
        return HTMLResponse(html)

    async def state(platform: str) -> dict[str, Any]:
        response = await client.get(f"{running.urls[platform]}/_sandbox/state")
        response.raise_for_status()
        return response.json()

    def same_origin(request: Request) -> bool:
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        origin = request.headers.get("origin")
        if origin:
            return origin == own
        referer = request.headers.get("referer")
        return bool(referer) and f"{urlsplit(referer).scheme}://{urlsplit(referer).netloc}" == own

    @app.middleware("http")
    async def actions_from_own_pages(request: Request, call_next: Any) -> Response:
        # Only requests naming this inspector (DNS rebinding), and every action (POST /act/...)
        # from the inspector's own pages.
        if not allowed_host(request.headers.get("host", ""), port=port, names=names):
            return HTMLResponse("Refused: this inspector does not answer to that host name. "
                                "List it in CHARTERFLOW_INSPECTOR_ALLOWED_HOSTS.", 403)
        if request.method == "POST" and not same_origin(request):
            return HTMLResponse("Refused: actions are accepted from the inspector's own pages only.", 403)
        return await call_next(request)

    @app.exception_handler(BadNumber)
    async def bad_number(request: Request, exc: BadNumber) -> Response:
        return HTMLResponse(f"Refused: {exc}.", 400)

    @app.exception_handler(RequestValidationError)
    async def bad_query(request: Request, exc: RequestValidationError) -> Response:
        fields = ", ".join(str(e.get("loc", ["?"])[-1]) for e in exc.errors()) or "the request"
        return HTMLResponse(f"Refused: {fields} is not valid.", 400)

    def back(request: Request, note: str) -> RedirectResponse:
        # A path we build: one of our pages (the Referer's, when it is one), its own query
        # parameters re-encoded; never the Referer as is (``//evil.example/x`` is another site).
        parts = urlsplit(request.headers.get("referer") or "/")
        path = parts.path if parts.path in PAGES else "/"
        query = [(k, v) for k, v in parse_qsl(parts.query) if k in ("channel", "topic", "as")]
        return RedirectResponse(f"{path}?{urlencode([*query, ('note', note)])}", status_code=303)

    def off(request: Request, page: str) -> HTMLResponse:
        return render("off.html", request, page=page, title=LABELS[page],
                      text=f"{LABELS[page]} runs on the real platform (credentials are set), not "
                           "in a sandbox: there is nothing to inspect here.")

    @app.get("/healthz")
    async def healthz() -> Response:
        body = {"ready": running.ready, "problems": running.problems,
                "sandboxes": sorted(running.urls)}
        return JSONResponse(body, status_code=200 if running.ready else 503)

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> HTMLResponse:
        community = running.community
        rows = [{"label": LABELS[page], "mode": "sandbox" if PLATFORM_OF[page] in running.urls else "real",
                 "url": running.urls.get(PLATFORM_OF[page])} for page in ("discord", "forum", "slack")]
        roles = {handle: role.replace("_", "-") for role, handle in community.wg_roles.items()}
        # Who holds the roles now, as each platform shows it (the demo adds a moderator).
        staff = []
        if "discourse" in running.urls:
            users = [u for u in (await state("discourse"))["users"] if u["id"] > 0]
            staff.append(("Forum", [u["username"] for u in users if u["admin"]],
                          [u["username"] for u in users if u["moderator"] and not u["admin"]]))
        if "discord" in running.urls:
            members = (await state("discord"))["members"]
            staff.append(("Discord", [m["username"] for m in members if "admin" in m["roles"]],
                          [m["username"] for m in members if "moderator" in m["roles"]]))
        return render("home.html", request, page="home", sandboxes=rows, wg=community.wg,
                      roles=roles, staff=staff, people=len(community.people),
                      board=[p.handle for p in community.board], problems=running.problems,
                      places=await run_in_threadpool(place_links))

    @app.get("/discord", response_class=HTMLResponse)
    async def discord(request: Request, channel: str | None = None) -> HTMLResponse:
        if "discord" not in running.urls:
            return off(request, "discord")
        s = await state("discord")
        acting = request.query_params.get("as") or running.community.wg[0].discord["username"]
        names = {m["id"]: m["username"] for m in s["members"]}
        names[s["guild"]["application_id"]] = "charterflow (bot)"
        text = [c for c in s["channels"] if c["type"] == 0]
        threads: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for c in s["channels"]:
            if c["type"] in (11, 12) and c.get("parent_id"):
                threads[c["parent_id"]].append(c)
        dms = [{"id": c["id"], "username": names.get(c.get("recipient_id"), c.get("recipient_id"))}
               for c in s["channels"] if c["type"] == 1]
        by_id = {c["id"]: c for c in s["channels"]}
        current = channel or next((c["id"] for c in text if c["name"] == "wg-private"), text[0]["id"])
        chosen = by_id.get(current, {})
        heading = (f"@ {names.get(chosen.get('recipient_id'), '?')}" if chosen.get("type") == 1
                   else f"# {chosen.get('name', '?')}")
        # An ephemeral reply is shown to its only reader, as Discord does.
        messages = [m for m in s["messages"] if m["channel_id"] == current
                    and m.get("visible_to") in (None, *(u for u, n in names.items() if n == acting))]
        commands = sorted({name for names_ in s["commands"].values() for name in names_}) or \
            ["idea", "propose", "role", "optin", "leave", "apply"]
        wg = {p.discord["username"] for p in running.community.wg if p.discord}
        return render("discord.html", request, page="discord", guild=s["guild"]["name"],
                      channels=text, threads=threads, dms=dms, current=current, heading=heading,
                      messages=messages, names=names, acting=acting,
                      members=sorted(names[m["id"]] for m in s["members"] if m["id"] in names
                                     and m["id"] != s["guild"]["application_id"]),
                      wg=wg, commands=commands)

    @app.get("/forum", response_class=HTMLResponse)
    async def forum(request: Request, topic: int | None = None) -> HTMLResponse:
        if "discourse" not in running.urls:
            return off(request, "forum")
        s = await state("discourse")
        acting = request.query_params.get("as") or running.community.wg[0].forum["username"]
        names = {u["id"]: u["username"] for u in s["users"]}
        regular = [t for t in s["topics"] if t["archetype"] != "private_message"]
        pms = [t for t in s["topics"] if t["archetype"] == "private_message"]
        by_category: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for t in regular:
            by_category[t["category_id"]].append(t)
        chosen = next((t for t in s["topics"] if t["id"] == topic), None)
        posts = [p for p in s["posts"] if chosen and p["topic_id"] == chosen["id"]]
        polls: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for poll in s["polls"]:
            counts = Counter(o for opts in poll["votes"].values() for o in opts)
            # As a member sees it: a results=on_close poll shows no counts while open.
            hidden = poll.get("results") == "on_close" and poll["status"] == "open"
            polls[poll["post_id"]].append({**poll, "counts": None if hidden else counts})
        recipients = []
        if chosen and chosen["archetype"] == "private_message":
            groups = {g["id"]: g["name"] for g in s["groups"]}
            for kind, ref in chosen.get("allowed", []):
                recipients.append(names.get(ref, ref) if kind == "user" else f"group {groups.get(ref, ref)}")
        wg = {p.forum["username"] for p in running.community.wg if p.forum}
        return render("forum.html", request, page="forum", categories=s["categories"],
                      topics_by_category=by_category, pms=pms, current=topic, topic=chosen,
                      posts=posts, polls=polls, names=names, acting=acting, recipients=recipients,
                      users=sorted(u["username"] for u in s["users"] if u["id"] > 0), wg=wg)

    @app.get("/mail", response_class=HTMLResponse)
    async def mail(request: Request) -> HTMLResponse:
        mailbox = getattr(running, "mailbox", None)
        if mailbox is None:
            return render("off.html", request, page="mail", title="Mail",
                          text="E-mail goes to the configured SMTP server (CHARTERFLOW_SMTP_HOST), "
                               "not to a sandbox: there is nothing to inspect here.")
        return render("mail.html", request, page="mail", messages=list(reversed(mailbox.messages())),
                      smtp=f"{mailbox.host}:{mailbox.port}")

    @app.get("/slack", response_class=HTMLResponse)
    async def slack(request: Request, channel: str | None = None) -> HTMLResponse:
        if "slack" not in running.urls:
            return off(request, "slack")
        s = await state("slack")
        board = {p.slack_id for p in running.community.board}
        users = [u for u in s["users"] if not u.get("is_bot")]
        acting = request.query_params.get("as") or running.community.board[-1].slack_id
        current = channel or "C0BOARD01"
        names = {u["id"]: u["real_name"] for u in s["users"]}
        all_messages = s["messages"].get(current, [])
        top = [m for m in all_messages if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]
        replies: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for m in all_messages:
            if m.get("thread_ts") and m["thread_ts"] != m["ts"]:
                replies[m["thread_ts"]].append(m)
        return render("slack.html", request, page="slack", team=s["team"]["name"],
                      channels=[c for c in s["channels"] if not c.get("is_archived")],
                      current=current, messages=top, replies=replies, names=names, users=users,
                      board=board, acting=acting)

    @app.post("/act/discord/press")
    async def discord_press(request: Request) -> Response:
        form = await _form(request)
        body = {"type": "component", "user": form.get("user"), "channel_id": form.get("channel_id"),
                "message_id": form.get("message_id"), "custom_id": form.get("custom_id")}
        answer = await client.post(f"{running.urls['discord']}/_sandbox/interactions", json=body)
        return back(request, _discord_note(answer, f"{form.get('user')} pressed the button"))

    @app.post("/act/discord/command")
    async def discord_command(request: Request) -> Response:
        form = await _form(request)
        body = {"type": "command", "user": form.get("user"), "name": form.get("name"),
                "options": _options(str(form.get("options") or "")),
                "channel_id": form.get("channel_id") or None}
        answer = await client.post(f"{running.urls['discord']}/_sandbox/interactions", json=body)
        return back(request, _discord_note(answer, f"{form.get('user')} ran /{form.get('name')}"))

    @app.post("/act/forum/vote")
    async def forum_vote(request: Request) -> Response:
        form = await _form(request)
        answer = await client.put(
            f"{running.urls['discourse']}/polls/vote",
            headers={"Api-Key": running.discourse_api_key or "", "Api-Username": str(form.get("user"))},
            json={"post_id": _number(form, "post_id"), "poll_name": form.get("poll_name"),
                  "options": [form.get("option_id")]})
        note = (f"{form.get('user')} voted" if answer.status_code == 200
                else f"The Forum refused the vote (HTTP {answer.status_code}): {answer.text[:200]}")
        return back(request, note)

    @app.post("/act/slack/click")
    async def slack_click(request: Request) -> Response:
        form = await _form(request)
        body = {"url": f"{running.gateway_url.rstrip('/')}/hooks/slack", "user": form.get("user"),
                "channel": form.get("channel"), "ts": form.get("ts"), "action_id": form.get("action_id")}
        answer = await client.post(f"{running.urls['slack']}/_sandbox/interact", json=body)
        data = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        note = (f"Clicked as {form.get('user')}: the gateway answered HTTP {data.get('status')}"
                if answer.status_code == 200 else f"Slack sandbox refused: {answer.text[:200]}")
        return back(request, note)

    return app


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_STAMP = re.compile(r"&lt;t:(\d{1,12})(?::[tTdDfFR])?&gt;")


def discord_markup(text: str) -> Markup:
    """Discord's **bold** and ``<t:unix:F>`` timestamps as HTML (the rest escaped)."""
    html = str(escape(text or ""))
    html = _BOLD.sub(r"<b>\1</b>", html)
    return Markup(_STAMP.sub(lambda m: datetime.fromtimestamp(int(m.group(1)), UTC)
                             .strftime("%d %b %Y %H:%M UTC"), html))


def when(value: str | None) -> str:
    """An ISO time as ``24 Nov 23:05``."""
    try:
        if re.fullmatch(r"\d+\.\d+", str(value)):  # a Slack ts
            return datetime.fromtimestamp(float(str(value)), UTC).strftime("%d %b %H:%M")
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).strftime("%d %b %H:%M")
    except (ValueError, OverflowError):
        return ""


_POLL = re.compile(r"\[poll[^\]]*\].*?\[/poll\]", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)


def forum_markup(raw: str) -> Markup:
    """A post's Markdown as a reader sees it: the poll block (shown as the poll) and hidden
    comments left out, **bold** kept."""
    text = _COMMENT.sub("", _POLL.sub("", raw or "")).strip()
    return Markup(_BOLD.sub(r"<b>\1</b>", str(escape(text))))


_SLACK_DATE = re.compile(r"&lt;!date\^\d+\^[^|]*\|([^&]*)&gt;")
_SLACK_USER = re.compile(r"&lt;@([A-Z0-9]+)&gt;")
_SLACK_LINK = re.compile(r"&lt;(https?://[^|&]+)\|([^&]*)&gt;")
_SLACK_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_SLACK_CODE = re.compile(r"`([^`\n]+)`")


def slack_markup(text: str, names: dict[str, str] | None = None) -> Markup:
    """Slack mrkdwn as HTML: *bold*, `code`, <@user>, <!date…|fallback>, <url|text>."""
    html = str(escape(text or ""))
    html = _SLACK_DATE.sub(r"\1", html)
    html = _SLACK_USER.sub(lambda m: "@" + str(escape((names or {}).get(m.group(1), m.group(1)))), html)
    html = _SLACK_LINK.sub(r'<a href="\1" target="_blank">\2</a>', html)
    html = _SLACK_CODE.sub(r"<code>\1</code>", html)
    return Markup(_SLACK_BOLD.sub(r"<b>\1</b>", html))


def _number(form: dict[str, str], name: str) -> int:
    value = str(form.get(name) or "").strip()
    if not value.isdigit() or len(value) > 18:
        raise BadNumber(f"{name} must be a number")
    return int(value)


async def _form(request: Request) -> dict[str, str]:
    # Parsed here (as the gateway does): no multipart support is needed for these small forms.
    body = (await request.body())[:64 * 1024]
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _discord_note(answer: httpx.Response, done: str) -> str:
    if answer.status_code != 200:
        return f"Discord refused: {answer.text[:200]}"
    outcome = answer.json()
    if outcome.get("failed"):
        return f"{done}, but the interaction failed: {outcome.get('error')}"
    return f"{done}; the gateway answered HTTP {outcome.get('status')}."

