"""The inspector's reports page (issue 22) over a real ledger and the sandboxes: a Discord report
listed with its state, platform, age and who claimed it, linked to where the moderators see it,
and the common room's relays; never who reported, who was reported or what was said."""

from __future__ import annotations

import httpx

from charterflow.inspector.app import create_app
from charterflow.inspector.serve import Running
from charterflow.seed import build
from ledger.models_commons import CommonsMessage
from tests.flows.safety.test_reports import _form_report, only_report, report_message, room
from tests.support.moderation import NOW, World, press
from tests.support.net import LoopbackServer


def _relay(world: World) -> None:
    """A message of the Discord moderators' channel and its copy on the Forum, as the common
    room's relay records them (flows.commons)."""
    channel = next(m["channel_id"] for m in world.moderators_channel())
    with world.ledger.transaction() as session:
        source = CommonsMessage(
            bridge="moderators",
            platform="discord",
            instance="sandbox",
            message_id="1400",
            room="moderators",
            thread_id=channel,
            author_username="bram_tolliver",
            content_hash="0" * 32,
            state="live",
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(source)
        session.flush()
        session.add(
            CommonsMessage(
                bridge="moderators",
                platform="discourse",
                instance="sandbox",
                message_id="88",
                room="Moderators",
                thread_id="41",
                origin_id=source.id,
                content_hash="0" * 32,
                state="live",
                created_at=NOW,
                updated_at=NOW,
            )
        )


def test_r_safe_1_the_inspector_lists_reports_and_relays_without_names(world: World) -> None:
    report_message(world, reporter="cleo_marsh", author="rowan_vale", content="an unkind remark about a newcomer")
    report = only_report(world)
    (message,) = room(world)
    press(world, user="bram_tolliver", message=message, custom_id=f"cfs:claim:{report.id}")
    _form_report(world, coc="yes", reason="a threat sent to dario_fenwick privately")
    _relay(world)
    running = Running(
        urls={"discord": world.discord_url, "discourse": world.forum_url},
        gateway_url="http://127.0.0.1:9",
        community=build(),
        ready=True,
    )
    with LoopbackServer(create_app(running=running, ledger_url=str(world.ledger.engine.url))) as server:
        page = httpx.get(f"{server.url}/reports", timeout=30)
        home = httpx.get(f"{server.url}/", timeout=30)
    assert page.status_code == 200, page.text
    html = page.text
    row = html.split(f'id="report{report.id}"')[1].split("</tr>")[0]
    assert "claimed" in row and "Discord" in row and "bram_tolliver" in row and "&lt; 1 h" in row
    assert f'href="/discord?channel={message["channel_id"]}"' in row and 'href="/forum?topic=' in row
    assert "referred to the CoC WG" in html
    for secret in ("cleo_marsh", "rowan_vale", "unkind remark", "threat", "dario_fenwick"):
        assert secret not in html, secret
    relay = html.split('class="relay"')[1].split("</tr>")[0]
    assert "moderators" in relay and 'href="/forum?topic=41"' in relay and "Forum" in relay
    assert 'href="/reports"' in home.text  # in the header of every page
