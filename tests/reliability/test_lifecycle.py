"""The full lifecycle, once without faults and once with 10% 5xx, 429 storms, 2 s latency spikes
and dropped connections on all three sandboxes: the same ledger, the same platforms, and every
side effect exactly once (``tests/reliability/scenario.py`` plays it)."""

from __future__ import annotations

import difflib
import json

import pytest

from tests.reliability.world import APPLICANTS

pytestmark = [pytest.mark.reliability, pytest.mark.slow]


def _diff(a, b) -> str:
    left = json.dumps(a, indent=1, sort_keys=True).splitlines()
    right = json.dumps(b, indent=1, sort_keys=True).splitlines()
    return "\n".join(list(difflib.unified_diff(left, right, "clean", "faulted", lineterm=""))[:80])


# The session fixture plays both runs within the first test that asks for it.
@pytest.mark.timeout(900)
def test_clean_run_does_the_whole_lifecycle(lifecycle_runs):
    clean, _ = lifecycle_runs
    r = clean.run.results
    assert clean.run.reruns == []
    assert r["removal"] == {"electorate": 6, "votes": ["ballot:1:vote"] * 4}
    assert r["escalations"]["escalated"] == ["escalated", "escalated"]
    assert [d.rsplit(":", 1)[1] for d in r["escalations"]["decisions"]] == ["approved", "rejected"]
    assert r["applications"]["outcomes"] == ["failed"] + ["passed"] * (len(APPLICANTS) - 1)
    assert r["ideas"]["stored"] == 3
    assert r["renewals"]["founders lapsed"] == ["gale_morrow"]
    assert r["renewals"]["reminded"] == len(APPLICANTS) - 1 and len(r["renewals"]["lapsed"]) == 3
    assert clean.audit_ok and clean.duplicates == []
    # Something happened on every platform (the yardstick below is not empty).
    assert clean.effects["discord role changes"] and clean.effects["forum role changes"]
    assert clean.effects["discord DMs"] and clean.effects["forum private messages"]
    assert clean.effects["slack messages"]


@pytest.mark.timeout(900)
def test_faults_change_nothing_in_the_outcome(lifecycle_runs, record_property):
    clean, faulted = lifecycle_runs
    for name, played in (("clean run", clean), ("faulted run", faulted)):
        record_property(
            "measure:lifecycle",
            f"lifecycle {name}: {played.run.seconds:.0f} s; steps run again: {played.run.reruns or 'none'}",
        )
    assert faulted.run.results == clean.run.results
    assert faulted.audit_ok
    assert faulted.duplicates == [], "a side effect was done twice"
    differences = [
        f"ledger table {table}:\n{_diff(clean.ledger[table], faulted.ledger[table])}"
        for table in sorted(set(clean.ledger) - {"interaction answer effects"})
        if faulted.ledger[table] != clean.ledger[table]
    ]
    for platform in clean.platforms:
        left, right = (dict(p.platforms[platform]) for p in (clean, faulted))
        left.pop("interaction answers", None), right.pop("interaction answers", None)
        if right != left:
            differences.append(f"{platform}:\n{_diff(left, right)}")
    assert differences == [], "\n\n".join(differences)
    effects = {k: v for k, v in clean.effects.items() if k != "discord interaction answers"}
    assert {k: faulted.effects[k] for k in effects} == effects, "a side effect was lost or done twice"


@pytest.mark.timeout(900)
def test_private_interaction_answers_survive_faults(lifecycle_runs, record_property):
    # The first answer replaces the deferred "thinking…" message (an edit, safe to retry): a 5xx
    # or a dropped connection on the way does not lose it.
    clean, faulted = lifecycle_runs
    left = clean.platforms["discord"]["interaction answers"]
    right = faulted.platforms["discord"]["interaction answers"]
    record_property("measure:answers", f"interaction answers: clean {len(left)}, faulted {len(right)}")
    assert right == left, _diff(left, right)
    assert faulted.ledger["interaction answer effects"] == clean.ledger["interaction answer effects"]
