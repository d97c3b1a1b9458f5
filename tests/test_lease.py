"""The run lease (common/io/lease.py, table audit.run_lease) on a private lakehouse, in-process:
a second claimant is refused with the holder named, an expired lease is taken over with a
warning, renewals move the expiry, two simultaneous claims are decided by Delta (one wins), and
a process joins the lease it already holds (the pipeline's stages). Cases `run_lease_*` of
docs/ROBUSTNESS.md; the cross-process ones (a second job, a SIGKILLed holder) are in
tests/slow/test_run_lease.py.

Clocks are passed in, so expiry is decided by the recorded times, not by waiting.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone

import pytest

from common.io.lease import LEASE_TABLE, LeaseHeld, Owner, acquire, hold_run_lease, read_lease, release_held_leases
from tests.conftest import make_config

T0 = datetime(2024, 3, 4, 8, 0, tzinfo=timezone.utc)
HOLDER = Owner("etl-host-1", 4242, "pipeline", "pipeline-20240304T080000Z-abc123")
OTHER = Owner("etl-host-2", 777, "clean", "clean-20240304T080500Z-def456")


def at(ts: datetime):
    return lambda: ts


@pytest.fixture()
def lease_cfg(tmp_path):
    return make_config(tmp_path, "lease.ttl_s=60", "lease.heartbeat_s=10")


def test_second_claim_is_refused_naming_the_holder(spark, lease_cfg):
    held = acquire(spark, lease_cfg, HOLDER, clock=at(T0))
    with pytest.raises(LeaseHeld) as err:
        acquire(spark, lease_cfg, OTHER, clock=at(T0 + timedelta(seconds=30)))
    msg = str(err.value)
    print(msg)
    for part in ("'pipeline'", HOLDER.run_id, "host etl-host-1", "pid 4242", "since 2024-03-04 08:00:00 UTC",
                 "last heartbeat 2024-03-04 08:00:00 UTC", "expires at 2024-03-04 08:01:00 UTC"):  # fmt: skip
        assert part in msg
    assert err.value.holder.token == held.token
    state = read_lease(spark, lease_cfg.storage.path(LEASE_TABLE))
    assert state.owner == HOLDER and state.released_at is None


def test_expired_lease_is_taken_over_with_a_warning(spark, lease_cfg, caplog):
    dead = acquire(spark, lease_cfg, HOLDER, clock=at(T0))
    caplog.set_level(logging.WARNING, logger="ev_fleet.lease")
    # Exactly at expiry (last heartbeat + ttl_s) the lease is free.
    taker = acquire(spark, lease_cfg, OTHER, clock=at(T0 + timedelta(seconds=60)))
    warning = caplog.text
    print(warning)
    assert "EXPIRED" in warning and HOLDER.run_id in warning and "pid 4242" in warning
    state = read_lease(spark, lease_cfg.storage.path(LEASE_TABLE))
    assert state.owner == OTHER and state.token == taker.token
    # The old holder, if it was only slow, learns that it lost the lease at its next renewal.
    dead.clock = at(T0 + timedelta(seconds=61))
    assert dead.renew() is False and dead.lost
    assert read_lease(spark, lease_cfg.storage.path(LEASE_TABLE)).token == taker.token


def test_renewal_moves_the_expiry_and_release_frees_the_lease(spark, lease_cfg, caplog):
    held = acquire(spark, lease_cfg, HOLDER, clock=at(T0))
    held.clock = at(T0 + timedelta(seconds=50))
    assert held.renew()
    state = read_lease(spark, lease_cfg.storage.path(LEASE_TABLE))
    assert (state.heartbeat_at, state.expires_at) == (T0 + timedelta(seconds=50), T0 + timedelta(seconds=110))
    with pytest.raises(LeaseHeld):  # not expired at the first expiry any more
        acquire(spark, lease_cfg, OTHER, clock=at(T0 + timedelta(seconds=70)))
    held.release()
    assert read_lease(spark, lease_cfg.storage.path(LEASE_TABLE)).released_at == T0 + timedelta(seconds=50)
    caplog.set_level(logging.WARNING, logger="ev_fleet.lease")
    acquire(spark, lease_cfg, OTHER, clock=at(T0 + timedelta(seconds=70)))  # released: free, no takeover warning
    assert "EXPIRED" not in caplog.text


def test_simultaneous_claims_are_decided_by_delta(spark, lease_cfg):
    """Two claimants at the same instant on a fresh lakehouse: each claim is a MERGE commit on
    audit.run_lease, Delta's optimistic concurrency lets one commit win and the other run reads
    the winner and is refused."""
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def claim(owner: Owner) -> None:
        barrier.wait()
        try:
            outcomes[owner.job] = acquire(spark, lease_cfg, owner, clock=at(T0))
        except BaseException as exc:  # noqa: BLE001 - asserted below
            outcomes[owner.job] = exc

    threads = [threading.Thread(target=claim, args=(o,)) for o in (HOLDER, OTHER)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    print({k: type(v).__name__ for k, v in outcomes.items()})
    winners = [v for v in outcomes.values() if not isinstance(v, BaseException)]
    losers = [v for v in outcomes.values() if isinstance(v, BaseException)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], LeaseHeld), repr(losers[0])
    assert losers[0].holder.token == winners[0].token
    assert read_lease(spark, lease_cfg.storage.path(LEASE_TABLE)).token == winners[0].token


def test_a_process_joins_the_lease_it_holds(spark, lease_cfg):
    """The pipeline takes the lease in bootstrap; its stages run in the same process and must not
    claim it again (a second claim would be refused by their own pipeline)."""
    pipeline = hold_run_lease(spark, lease_cfg, "pipeline")
    try:
        assert hold_run_lease(spark, lease_cfg, "clean") is pipeline
        state = read_lease(spark, lease_cfg.storage.path(LEASE_TABLE))
        assert state.owner.job == "pipeline" and state.token == pipeline.token
    finally:
        release_held_leases()
    assert read_lease(spark, lease_cfg.storage.path(LEASE_TABLE)).released_at is not None
