"""What the inspector's routers share, kept on ``app.state.inspector``: the sandboxes process
(``running``), the Prefect UI's URL, one HTTP client and the templates; and the helpers every
page and action uses (render a page, read a sandbox's state, go back after an action)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from charterflow.inspector import markup

HERE = Path(__file__).parent
LABELS = {"discord": "Discord", "forum": "Forum", "slack": "Slack", "mail": "Mail"}
PAGES = ("/", "/discord", "/forum", "/slack")  # where an action may send the browser back to
PLATFORM_OF = {"discord": "discord", "forum": "discourse", "slack": "slack"}


def page_templates() -> Environment:
    """The inspector's pages (charterflow/inspector/templates), HTML-escaped, with the
    platforms' markup filters."""
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(default=True), auto_reload=False
    )
    env.filters.update(
        discord=markup.discord_markup, when=markup.when, forum=markup.forum_markup, slack=markup.slack_markup
    )
    return env


@dataclass(kw_only=True)
class InspectorState:
    """One inspector app's collaborators (built by ``create_app``)."""

    running: Any  # charterflow.inspector.serve.Running
    prefect_ui: str | None
    client: httpx.AsyncClient
    templates: Environment
    ledger_url: str | None = None  # the reports page reads the ledger (charterflow.inspector.safety)

    def shown(self) -> list[tuple[str, str]]:
        """The pages in the header: each sandboxed platform, and Mail when there is a mailbox."""
        pages = [
            (page, LABELS[page]) for page in ("discord", "forum", "slack") if PLATFORM_OF[page] in self.running.urls
        ]
        pages += [("mail", LABELS["mail"])] if getattr(self.running, "mailbox", None) else []
        return pages + ([("reports", "Reports")] if self.ledger_url else [])

    def render(self, name: str, request: Request, **values: Any) -> HTMLResponse:
        values.setdefault("title", LABELS.get(values.get("page", ""), "Overview"))
        html = self.templates.get_template(name).render(
            platforms=self.shown(),
            prefect_ui=self.prefect_ui,
            gateway_url=self.running.gateway_url.rstrip("/"),
            note=request.query_params.get("note"),
            **values,
        )
        return HTMLResponse(html)

    def off(self, request: Request, page: str) -> HTMLResponse:
        return self.render(
            "off.html",
            request,
            page=page,
            title=LABELS[page],
            text=f"{LABELS[page]} runs on the real platform (credentials are set), not "
            "in a sandbox: there is nothing to inspect here.",
        )

    async def state(self, platform: str) -> dict[str, Any]:
        """A sandbox's ``GET /_sandbox/state`` (read only)."""
        response = await self.client.get(f"{self.running.urls[platform]}/_sandbox/state")
        response.raise_for_status()
        return response.json()


def back(request: Request, note: str) -> RedirectResponse:
    """The 303 after an action. A path we build: one of our pages (the Referer's, when it is
    one), its own query parameters re-encoded; never the Referer as is (``//evil.example/x``
    is another site)."""
    parts = urlsplit(request.headers.get("referer") or "/")
    path = parts.path if parts.path in PAGES else "/"
    query = [(k, v) for k, v in parse_qsl(parts.query) if k in ("channel", "topic", "as")]
    return RedirectResponse(f"{path}?{urlencode([*query, ('note', note)])}", status_code=303)


async def inspector_state(request: Request) -> InspectorState:
    return request.app.state.inspector


async def running_stack(request: Request) -> Any:
    return request.app.state.inspector.running


InspectorDep = Annotated[InspectorState, Depends(inspector_state)]
RunningDep = Annotated[Any, Depends(running_stack)]
