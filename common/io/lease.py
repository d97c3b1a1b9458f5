"""Run lease: one pipeline or job run at a time writes to a lakehouse.

Table audit.run_lease holds one row per lakehouse: who holds the lease (host, pid, job, run id),
since when, its last heartbeat and when it expires. Taking, renewing and releasing it are Delta
MERGE commits guarded by a condition on that row, so two runs that try at once conflict in
Delta's optimistic concurrency and exactly one wins; the other reads the winner and stops with
its name. (On S3 this mutual exclusion needs the DynamoDB LogStore: docs/DEPLOY.md.)

- `hold_run_lease` (called by `common.io.cli.bootstrap` for every job, the pipeline included) takes
  the lease for the life of the driver process: a daemon thread renews it every
  `lease.heartbeat_s`, and it is released at interpreter exit, also after an exception. A
  pipeline's stages run in its process, so they join the lease it holds instead of taking it again.
- A holder killed without releasing (SIGKILL, lost node) stops renewing: after `lease.ttl_s` its
  lease is expired and the next run takes it over with a warning naming the dead holder.

Expiry compares the claimant's clock with the holder's last heartbeat; clocks of the drivers
must agree to well within `lease.ttl_s` (NTP on EMR/Glue hosts).
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from common.core.config import Config, LeaseConfig
from common.io.tables import is_commit_conflict

log = logging.getLogger("ev_fleet.lease")

LEASE_TABLE = "audit.run_lease"
# One lease per lakehouse: every job writes into the same set of tables.
LEASE_NAME = "lakehouse"
# Scheduler pool of the renewals: under FAIR scheduling (common.io.spark) a renewal gets a task slot
# while a long stage of the job holds all the others, instead of waiting behind it (FIFO).
HEARTBEAT_POOL = "run_lease"
# Attempts at taking the lease when a concurrent claim makes the commit conflict.
MAX_CLAIM_ATTEMPTS = 5

LEASE_SCHEMA = T.StructType(
    [
        T.StructField("lease_name", T.StringType(), False),
        T.StructField("token", T.StringType(), False),  # unique per acquisition
        T.StructField("host", T.StringType()),
        T.StructField("pid", T.LongType()),
        T.StructField("job", T.StringType()),
        T.StructField("run_id", T.StringType()),
        T.StructField("acquired_at", T.TimestampType()),
        T.StructField("heartbeat_at", T.TimestampType()),
        T.StructField("expires_at", T.TimestampType()),
        T.StructField("released_at", T.TimestampType()),
    ]
)


class LeaseHeld(RuntimeError):
    """Another run holds the lakehouse's lease; the message names it.

    Parameters
    ----------
    holder : LeaseState
        The lease row of the run that holds it.
    lakehouse : str
        The lakehouse root, named in the message.
    """

    def __init__(self, holder: LeaseState, lakehouse: str):
        self.holder = holder
        super().__init__(
            f"the lakehouse {lakehouse} is in use by {holder.describe()}; this run stops before writing anything. "
            f"Wait until that run ends, or, if it was killed, until its lease expires at {_iso(holder.expires_at)} "
            f"(lease.ttl_s after its last heartbeat); the next run then takes it over"
        )


@dataclass(frozen=True)
class Owner:
    """Who takes a lease: this process, running `job` as run `run_id`.

    Attributes
    ----------
    host : str
        Host name of the driver.
    pid : int
        Process id of the driver.
    job : str
        Job (stage) name.
    run_id : str
        Id of this run.
    """

    host: str
    pid: int
    job: str
    run_id: str

    @classmethod
    def current(cls, job: str, run_id: str | None = None) -> Owner:
        """This process as the owner of a run of `job`.

        Parameters
        ----------
        job : str
            Job (stage) name.
        run_id : str, optional
            Default ``<job>-<UTC yyyymmddThhmmssZ>-<6 hex>``.

        Returns
        -------
        Owner
        """
        now = datetime.now(timezone.utc)
        return cls(socket.gethostname(), os.getpid(), job, run_id or f"{job}-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}")


@dataclass(frozen=True)
class LeaseState:
    """The lease row as read from audit.run_lease (times are aware UTC datetimes).

    Attributes
    ----------
    token : str
        Unique per acquisition.
    owner : Owner
    acquired_at : datetime.datetime
        When the lease was taken.
    heartbeat_at : datetime.datetime
        Last renewal.
    expires_at : datetime.datetime
        Last renewal + lease.ttl_s.
    released_at : datetime.datetime or None
        When it was given back; None while held.
    """

    token: str
    owner: Owner
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    released_at: datetime | None

    def describe(self) -> str:
        """The holder for messages: job, run, host, pid, since when and the last heartbeat (UTC).

        Returns
        -------
        str
        """
        o = self.owner
        return f"job '{o.job}' (run {o.run_id}, host {o.host}, pid {o.pid}) since {_iso(self.acquired_at)}, last heartbeat {_iso(self.heartbeat_at)}"


def is_free(state: LeaseState | None, now: datetime) -> bool:
    """A lease can be taken when nobody ever held it, it was released, or it expired at or before `now`.

    Parameters
    ----------
    state : LeaseState or None
        The lease row; None when there is none.
    now : datetime.datetime
        Current time (aware, UTC).

    Returns
    -------
    bool
    """
    return state is None or state.released_at is not None or state.expires_at <= now


def expires(now: datetime, lease_cfg: LeaseConfig) -> datetime:
    """Expiry of a lease renewed at `now`: `now` + lease.ttl_s.

    Parameters
    ----------
    now : datetime.datetime
        Time of the claim or renewal (aware, UTC).
    lease_cfg : LeaseConfig

    Returns
    -------
    datetime.datetime
    """
    return now + timedelta(seconds=lease_cfg.ttl_s)


@dataclass
class Lease:
    """A lease this process holds; `release()` (idempotent) gives it back.

    Attributes
    ----------
    spark : SparkSession
        The session lease commits run on.
    path : str
        Location of audit.run_lease.
    lease_cfg : LeaseConfig
        TTL and heartbeat interval.
    owner : Owner
    token : str
        Unique per acquisition.
    acquired_at : datetime.datetime
        When it was taken (aware, UTC).
    clock : callable
        Current UTC time (tests pass a fixed one).
    lost : bool
        Set when a renewal found the lease taken over or released.
    released : bool
        Set by `release`.
    """

    spark: SparkSession
    path: str
    lease_cfg: LeaseConfig
    owner: Owner
    token: str
    acquired_at: datetime
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc), repr=False)
    lost: bool = False
    released: bool = False
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def renew(self) -> bool:
        """Move the heartbeat and expiry forward.

        Returns
        -------
        bool
            False when the lease is no longer ours (taken over after it expired, or released):
            `lost` is then set and the new holder logged.
        """
        now = self.clock()
        _merge(self.spark, self.path, self._row(now, expires(now, self.lease_cfg)), "renew")
        state = read_lease(self.spark, self.path)
        if state is None or state.token != self.token or state.released_at is not None:
            self.lost = True
            holder = state.describe() if state is not None else "nobody"
            log.error("run lease LOST: %s's lease on %s is now held by %s; stop this run", self.owner.job, self.path, holder)
            return False
        return True

    def release(self) -> None:
        """Stop the heartbeat and mark the row released; a second call does nothing."""
        if self.released:
            return
        self.stop_heartbeat()
        now = self.clock()
        _merge(self.spark, self.path, self._row(now, now, released_at=now), "release")
        self.released = True
        log.info("run lease released by %s (run %s)", self.owner.job, self.owner.run_id)

    def start_heartbeat(self) -> None:
        """Renew every `lease.heartbeat_s` from a daemon thread (it dies with the process)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._beat, name="run-lease-heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        """Stop the renewals, waiting up to lease.ttl_s (s) for the thread unless called from it."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.lease_cfg.ttl_s)

    def _beat(self) -> None:
        self.spark.sparkContext.setLocalProperty("spark.scheduler.pool", HEARTBEAT_POOL)
        while not self._stop.wait(self.lease_cfg.heartbeat_s):
            try:
                if not self.renew():
                    return
            except Exception as exc:  # noqa: BLE001 - a failed renewal is retried at the next beat
                log.warning("run lease renewal failed (retried in %.0fs): %s", self.lease_cfg.heartbeat_s, str(exc).splitlines()[0])

    def _row(self, heartbeat_at: datetime, expires_at: datetime, released_at: datetime | None = None) -> tuple:
        o = self.owner
        return (LEASE_NAME, self.token, o.host, o.pid, o.job, o.run_id, self.acquired_at, heartbeat_at, expires_at, released_at)


# ---------------------------------------------------------------------------------------------
# Delta IO of the lease table
# ---------------------------------------------------------------------------------------------
def read_lease(spark: SparkSession, path: str) -> LeaseState | None:
    """The lease row, or None when the table or the row does not exist yet.

    Parameters
    ----------
    spark : SparkSession
    path : str
        Location of audit.run_lease.

    Returns
    -------
    LeaseState or None
        Times as aware UTC datetimes.
    """
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    row = spark.read.format("delta").load(path).where(f"lease_name = '{LEASE_NAME}'").first()
    if row is None:
        return None
    return LeaseState(
        token=row["token"],
        owner=Owner(row["host"], int(row["pid"]), row["job"], row["run_id"]),
        acquired_at=_aware(row["acquired_at"]),
        heartbeat_at=_aware(row["heartbeat_at"]),
        expires_at=_aware(row["expires_at"]),
        released_at=_aware(row["released_at"]) if row["released_at"] is not None else None,
    )


# MERGE conditions per operation: claim takes a free (released or expired) row; renew and
# release touch only the row of the same acquisition (token), renew only while not released.
_CONDITIONS = {
    "claim": "t.released_at IS NOT NULL OR t.expires_at <= s.heartbeat_at",
    "renew": "t.token = s.token AND t.released_at IS NULL",
    "release": "t.token = s.token",
}


def _merge(spark: SparkSession, path: str, row: tuple, operation: str) -> None:
    source = spark.createDataFrame([row], LEASE_SCHEMA)
    if not DeltaTable.isDeltaTable(spark, path):
        DeltaTable.createIfNotExists(spark).location(path).addColumns(LEASE_SCHEMA).comment("Run lease: which pipeline/job run may write to this lakehouse (common/io/lease.py)").execute()
    builder = DeltaTable.forPath(spark, path).alias("t").merge(source.alias("s"), "t.lease_name = s.lease_name")
    builder = builder.whenMatchedUpdateAll(condition=_CONDITIONS[operation])
    if operation == "claim":
        builder = builder.whenNotMatchedInsertAll()
    builder.execute()


def acquire(
    spark: SparkSession,
    cfg: Config,
    owner: Owner,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> Lease:
    """Take the lakehouse's lease for `owner`, or raise LeaseHeld naming the current holder.

    Parameters
    ----------
    spark : SparkSession
        Any session of the driver; the lease works on its own child session (separate SQL conf,
        so commit metadata a job sets for its writes never lands on lease commits).
    cfg : Config
        `storage` locates audit.run_lease; `lease` gives the TTL.
    owner : Owner
        Host, pid, job and run id recorded in the lease.
    clock : callable
        Current UTC time (tests pass a fixed one).

    Returns
    -------
    Lease
        Held by `owner`; call `start_heartbeat()` to keep it, `release()` to give it back.

    Raises
    ------
    LeaseHeld
        Another run holds an unexpired lease.
    RuntimeError
        MAX_CLAIM_ATTEMPTS claims in a row conflicted with concurrent commits.
    """
    session = spark.newSession()
    path = cfg.storage.path(LEASE_TABLE)
    for _attempt in range(MAX_CLAIM_ATTEMPTS):
        now = clock()
        current = read_lease(session, path)
        if current is not None and not is_free(current, now):  # is_free(None) is True: nobody ever held it
            raise LeaseHeld(current, cfg.storage.resolve(cfg.storage.root))
        token = uuid.uuid4().hex
        lease = Lease(session, path, cfg.lease, owner, token, acquired_at=now, clock=clock)
        try:
            _merge(session, path, lease._row(now, expires(now, cfg.lease)), "claim")
        except Exception as exc:  # noqa: BLE001 - only commit conflicts are retried
            if not is_commit_conflict(exc):
                raise
            log.info("run lease: concurrent claim on %s, reading the winner", path)
            continue
        won = read_lease(session, path)
        if won is not None and won.token == token:
            if current is not None and current.released_at is None:
                log.warning(
                    "run lease: took over the EXPIRED lease of %s (expired %s; that run was killed or lost its driver); "
                    "its partial writes are not committed (Delta) and the ingest ledger re-reads its files",
                    current.describe(),
                    _iso(current.expires_at),
                )
            log.info("run lease on %s taken by %s (run %s, host %s, pid %s)", path, owner.job, owner.run_id, owner.host, owner.pid)
            return lease
        if won is not None and not is_free(won, clock()):
            raise LeaseHeld(won, cfg.storage.resolve(cfg.storage.root))
    raise RuntimeError(f"run lease on {path}: {MAX_CLAIM_ATTEMPTS} claims in a row conflicted with concurrent commits")


# ---------------------------------------------------------------------------------------------
# The lease of this process (jobs via common.io.cli.bootstrap)
# ---------------------------------------------------------------------------------------------
_HELD: dict[str, Lease] = {}
_HELD_LOCK = threading.Lock()


def hold_run_lease(spark: SparkSession, cfg: Config, job: str) -> Lease:
    """Take the lakehouse's lease for this process (once) and keep it until the process exits.

    A second call for the same lakehouse in the same process (a stage started by the pipeline,
    a job's main called twice) returns the lease already held instead of claiming it again.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
        `storage` locates audit.run_lease; `lease` gives TTL and heartbeat.
    job : str
        Job (stage) name recorded as the owner.

    Returns
    -------
    Lease
        Held, its heartbeat thread running.

    Raises
    ------
    LeaseHeld
        Another run holds it.
    """
    path = cfg.storage.path(LEASE_TABLE)
    with _HELD_LOCK:
        held = _HELD.get(path)
        if held is not None and not held.released:
            log.info("run lease on %s already held by this process (%s): %s joins it", path, held.owner.job, job)
            return held
        lease = acquire(spark, cfg, Owner.current(job))
        lease.start_heartbeat()
        _HELD[path] = lease
    return lease


def release_held_leases() -> None:
    """Release every lease this process holds (registered at exit; tests call it between tests)."""
    with _HELD_LOCK:
        leases = list(_HELD.values())
        _HELD.clear()
    for lease in leases:
        try:
            lease.release()
        except Exception as exc:  # noqa: BLE001 - at exit the lease then simply expires
            log.warning("run lease of %s not released (%s); it expires after lease.ttl_s", lease.owner.job, str(exc).splitlines()[0])


# Runs before PySpark's JVM goes away (that is tied to the interpreter's end, not to atexit).
atexit.register(release_held_leases)


def _aware(ts: datetime) -> datetime:
    """PySpark returns timestamps as naive local time: astimezone reads a naive value as local time."""
    return ts.astimezone(timezone.utc)


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
