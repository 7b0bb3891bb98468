"""Interval schedules keep their slots however often the workers restart (``flows.serve.anchored``):
Prefect anchors an interval at the moment the deployment is made, so each restart used to put
every interval run off by up to a whole interval."""

from __future__ import annotations

from datetime import timedelta

from prefect.client.schemas.schedules import IntervalSchedule

from flows.serve import INTERVAL_ANCHOR, deployments


def _intervals() -> dict[str, IntervalSchedule]:
    return {
        f"{d.flow_name}/{d.name}": s.schedule
        for d in deployments()
        for s in d.schedules or ()
        if isinstance(s.schedule, IntervalSchedule)
    }


def test_interval_schedules_are_the_same_whenever_the_process_made_them():
    first, again = _intervals(), _intervals()
    assert "hooks-redeliver/every-2-minutes" in first and "commons-poll/every-minute" in first
    assert again == first
    assert {s.anchor_date for s in first.values()} == {INTERVAL_ANCHOR}


def test_every_interval_divides_a_day_so_runs_fall_on_round_clock_times():
    for name, schedule in _intervals().items():
        assert timedelta(days=1) % schedule.interval == timedelta(0), name
