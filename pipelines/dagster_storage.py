"""Dagster's SQLite instance storage with its connections kept open (HOME_STORAGE, in the
dagster.yaml Nightjar writes into DAGSTER_HOME; `storage: sqlite:` is the same files,
written more slowly).

Dagster's SQLite storages create a SQLAlchemy engine and open a new SQLite connection for
every statement they run: storing one event of a run opens two to eight of them (the run's
own database, then the index database that asset events are mirrored to). A night stores
about 600 events, so on an empty day that was most of Dagster's own cost: 2.8 ms for a plain
event and 6.2 ms for a materialization on this machine, against 1.0 and 1.9 ms with the
connections kept (docs/performance.md). The databases, their schema and their durability are
Dagster's own, unchanged: the same files can be opened with `storage: sqlite:` again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as db
from dagster._core.event_api import EventHandlerFn
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.polling_event_watcher import SqlPollingEventWatcher
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine

# Added to the project's dagster.yaml when it is written into a DAGSTER_HOME (pipelines/run.py):
# `storage: sqlite:`'s files under DAGSTER_HOME, written through kept connections.
HOME_STORAGE = """
# Dagster's SQLite files, written through connections kept open (pipelines/dagster_storage.py):
# a night stores ~600 events.
storage:
  custom:
    module: pipelines.dagster_storage
    class: KeptSqliteStorage
    config:
      base_dir: {env: DAGSTER_HOME}
"""

# Each run has a database of its own; a long-lived process (the webserver reads many runs)
# keeps the engines of only the latest few, so that open files do not grow with the runs.
KEPT_ENGINES = 8
# Connections kept open by each engine when idle. SQLAlchemy's queue pool hands each
# checkout a connection of its own, as a new connection did: nested and concurrent uses are
# as separate as before.
POOL_SIZE = 2


def _engine(conn_string: str) -> Engine:
    return db.create_engine(
        conn_string,
        poolclass=db.QueuePool,
        pool_size=POOL_SIZE,
        # no cap on connections in use at once, as Dagster's had none (the webserver answers
        # from many threads)
        max_overflow=-1,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )


class KeptSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, with an engine kept for each of the latest databases.

    A run's new events are found by polling its database, as Dagster's PostgreSQL storage
    does: Dagster's SQLite one watches the run's .db file, which changed when the last
    connection closed and SQLite moved its write-ahead log into it. With connections kept,
    events stay in the -wal file until a checkpoint, and a run's page in the UI would stop
    at the events it found first."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        self._poller: SqlPollingEventWatcher | None = None
        super().__init__(base_dir, inst_data)

    def _shard_engine(self, shard: str) -> Engine:
        with self._engines_lock:
            engine = self._engines.pop(shard, None) or _engine(self.conn_string_for_shard(shard))
            self._engines[shard] = engine
            while len(self._engines) > KEPT_ENGINES:
                # a connection checked out of a disposed engine stays usable until returned
                self._engines.popitem(last=False)[1].dispose()
            return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # As Dagster's own, but for where the engine comes from: one statement at a time.
        with self._db_lock:
            engine = self._shard_engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def watch(self, run_id: str, cursor: str | None, callback: EventHandlerFn) -> None:
        if self._poller is None:
            self._poller = SqlPollingEventWatcher(self)
        self._poller.watch_run(run_id, cursor, callback)

    def end_watch(self, run_id: str, handler: EventHandlerFn) -> None:
        if self._poller is not None:
            self._poller.unwatch_run(run_id, handler)

    def _dispose_engines(self) -> None:
        # under the event log's lock: no connection is in use, none is opened meanwhile
        with self._db_lock, self._engines_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        # Wiping deletes the run databases' files: no connection may stay open on them.
        self._dispose_engines()
        super().wipe()

    def dispose(self) -> None:
        # the pollers first: they would open connections again
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        super().dispose()
        self._dispose_engines()


class KeptSqliteRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage, with one engine kept for its one database."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None):
        self._engine = _engine(conn_string)
        super().__init__(conn_string, inst_data)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self._engine.dispose()
        super().dispose()


class KeptSqliteStorage(DagsterSqliteStorage):
    """`storage: sqlite:`'s files (runs, event logs, schedules under base_dir), with the
    run and event-log connections kept open."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        # DagsterSqliteStorage.__init__ would open Dagster's own storages first.
        DagsterStorage.__init__(self)
        self.base_dir = base_dir
        self._inst_data = inst_data
        self._run_storage = KeptSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = KeptSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: dict[str, str]
    ) -> KeptSqliteStorage:
        # Dagster's builds a DagsterSqliteStorage whatever the class.
        return cls.from_local(inst_data=inst_data, **config_value)
