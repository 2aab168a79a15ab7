"""The short run of ``tests/reliability/nothing_lost.py`` (20 s of writes instead of minutes).

Every key the service acknowledged is read back with its value, and every acknowledged session
is still readable after Redis is emptied. The long run and its figures are in RELIABILITY.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.nothing_lost import Options, run

# Starts its own servers whatever --redis-topology says: run once, on the single-node pass.
pytestmark = [pytest.mark.e2e, pytest.mark.topology_independent]


def test_every_acknowledged_write_and_session_is_read_back(tmp_path: Path) -> None:
    outcome = run(Options(duration=20, writers=4), tmp_path)
    print(outcome.summary())

    assert outcome.errors == []
    # A healthy stack acknowledges everything (201 single writes, 200 batches and sessions).
    assert set(outcome.statuses) <= {200, 201}
    assert len(outcome.acknowledged) >= 500
    assert len(outcome.sessions) >= 20
    # Redis had no memory limit: nothing may be missing at all, not even "explained".
    assert outcome.evicted_keys == 0
    assert outcome.missing == []
    assert outcome.wrong == []
    assert outcome.sessions_missing == []
    assert outcome.sessions_wrong == []
