"""A confirmation token works only where it was sent (issue 19): the Discord DM's button token
is refused on the web page, the Forum PM's link token is refused as a Discord button press."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connectors.errors import PolicyViolation
from flows.membership.handlers import handle_confirm, handle_intake
from flows.membership.intake import confirm_identity
from ledger.models import Application, ApplicationStatus
from tests.flows.membership.test_join import _dm_button, _form, _forum_token
from tests.support.membership import NOW, press_button


def test_each_token_is_refused_on_the_other_channel(world):
    event = _form(world, "sub-channels-0001", discourse_username="quinn_harbor", discord_username="quinn_harbor")
    app_id = int(handle_intake(event_id=event, ledger=world.ledger, platforms=world.platforms, now=NOW).split(":")[1])
    message, custom_id = _dm_button(world, "quinn_harbor")
    forum_token = _forum_token(world)
    dm_token = custom_id.removeprefix("cfc:")
    assert ".d." in dm_token[:4] and ".w." in forum_token[:4]

    # The DM's token on the web page (the POST the gateway stores): refused, naming the button.
    with pytest.raises(PolicyViolation) as refused:
        confirm_identity(token=dm_token, now=NOW + timedelta(minutes=1))
    assert "button in the Discord direct message" in refused.value.reason
    # The Forum link's token pressed as a Discord button by the named account: refused.
    press = press_button(world, "quinn_harbor", message, "cfc:" + forum_token)
    assert (
        handle_confirm(event_id=press, ledger=world.ledger, platforms=world.platforms, now=NOW + timedelta(minutes=2))
        == "refused:R-APP-2"
    )
    with world.ledger.read() as session:
        app = session.get(Application, app_id)
        assert app.status == ApplicationStatus.OPEN and len(app.confirmations) == 0

    # Each where it was sent: both accounts confirmed.
    good = press_button(world, "quinn_harbor", message, custom_id)
    assert (
        handle_confirm(event_id=good, ledger=world.ledger, platforms=world.platforms, now=NOW + timedelta(minutes=3))
        == f"application:{app_id}:waiting"
    )
    assert (
        confirm_identity(token=forum_token + ".", now=NOW + timedelta(minutes=4)) == f"application:{app_id}:confirmed"
    )
