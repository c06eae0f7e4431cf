"""The SQL layer under both stores, on SQLite and on the machine's PostgreSQL: store URLs,
transactions, the unavailable error, concurrent writers, kill -9 inside a transaction, and
migrations that run whole or not at all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from qmtl.core.db import (
    Database,
    DatabaseUnavailable,
    DatabaseUrlError,
    IntegrityError,
    database_url,
    head_revision,
)
from qmtl.core.errors import QmtlError
from tests.world_api.conftest import backend_url

ROOT = Path(__file__).resolve().parents[3]
meta = sa.MetaData()
counters = sa.Table(
    "counters", meta,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> Iterator[str]:
    yield from backend_url(request.param, tmp_path, "t.db", create_schema=True)


@pytest.fixture
def db(db_url) -> Iterator[Database]:
    d = Database(db_url)
    with d.transaction() as conn:
        meta.create_all(conn)
    yield d
    d.close()


@pytest.mark.parametrize(("url", "want", "schema"), [
    ("/tmp/x.db", "sqlite:////tmp/x.db", None),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db", None),
    ("postgresql://u:pw@h:5433/db?schema=s1", "postgresql+psycopg://u:pw@h:5433/db", "s1"),
    ("postgres://u@h/db", "postgresql+psycopg://u@h/db", None),
    ("postgresql+psycopg://u@h/db?sslmode=require&schema=x",
     "postgresql+psycopg://u@h/db?sslmode=require", "x"),
])
def test_store_urls(url, want, schema):
    got, got_schema = database_url(url)
    assert (got.render_as_string(hide_password=False), got_schema) == (want, schema)


def test_a_home_relative_path_is_expanded():
    assert database_url("~/w.db")[0].database == str(Path.home() / "w.db")


@pytest.mark.parametrize(("url", "why"), [
    ("mysql://h/db", "unsupported store URL 'mysql://h/db'"),
    ("sqlite://", "names no file"),
    ("postgresql://h/db?schema=a&schema=b", "more than one schema"),
])
def test_bad_store_urls_say_what_is_wrong(url, why):
    with pytest.raises(DatabaseUrlError, match=why) as info:
        Database(url)
    assert isinstance(info.value, QmtlError) and isinstance(info.value, ValueError)


def test_the_display_url_hides_the_password():
    d = Database("postgresql://u:secret@127.0.0.1:1/db?schema=s")
    assert d.url == "postgresql://u:***@127.0.0.1:1/db?schema=s" and d.schema == "s"


def test_a_transaction_commits_whole_or_not_at_all(db):
    with db.transaction() as conn:
        conn.execute(counters.insert().values(name="a", n=1))
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute(counters.insert().values(name="b", n=2))
        raise RuntimeError("the caller failed half-way")
    with pytest.raises(IntegrityError), db.transaction() as conn:
        conn.execute(counters.insert().values(name="c", n=3))
        conn.execute(counters.insert().values(name="a", n=4))  # a duplicate key
    with db.transaction() as conn:
        assert conn.execute(sa.select(counters.c.name, counters.c.n)).all() == [("a", 1)]


def test_insert_on_conflict_reads_the_same_on_both_backends(db):
    add = db.insert(counters).on_conflict_do_nothing(index_elements=["name"])
    put = db.insert(counters)
    put = put.on_conflict_do_update(index_elements=["name"], set_={"n": put.excluded.n})
    with db.transaction() as conn:
        assert conn.execute(add.returning(counters.c.n), {"name": "a", "n": 1}).all() == [(1,)]
        assert conn.execute(add.returning(counters.c.n), {"name": "a", "n": 2}).all() == []
        conn.execute(put, [{"name": "a", "n": 5}, {"name": "b", "n": 6}])
        assert conn.execute(sa.select(counters).order_by(counters.c.name)).all() == [
            ("a", 5), ("b", 6)]


def test_a_read_only_transaction_reads_one_snapshot_without_waiting_for_a_writer(db):
    """While another thread holds a write transaction open, a read-only one neither waits
    for it nor sees its uncommitted row; a later read sees the commit."""
    with db.transaction() as conn:
        conn.execute(counters.insert().values(name="a", n=1))
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with db.transaction() as conn:
            conn.execute(counters.insert().values(name="b", n=2))
            holding.set()
            release.wait(30)

    th = threading.Thread(target=writer)
    th.start()
    assert holding.wait(30)
    done = threading.Event()
    seen: list[object] = []

    def reader() -> None:
        with db.transaction(read_only=True) as conn:
            seen.extend(conn.execute(sa.select(counters.c.name).order_by(counters.c.name))
                        .scalars())
        done.set()

    threading.Thread(target=reader).start()
    finished_first = done.wait(10)  # the writer still holds its lock meanwhile
    release.set()
    th.join()
    assert finished_first and seen == ["a"]
    with db.transaction(read_only=True) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(counters)).scalar() == 2


def test_concurrent_read_modify_writes_lose_nothing(db):
    """Eight threads each add 1 twenty times through read-then-write; SQLite serializes them
    with the write lock taken at BEGIN, PostgreSQL with the row lock (FOR UPDATE)."""
    with db.transaction() as conn:
        conn.execute(counters.insert().values(name="x", n=0))

    def bump() -> None:
        for _ in range(20):
            with db.transaction() as conn:
                n = conn.execute(sa.select(counters.c.n).where(counters.c.name == "x")
                                 .with_for_update()).scalar_one()
                conn.execute(counters.update().where(counters.c.name == "x").values(n=n + 1))

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    with db.transaction() as conn:
        assert conn.execute(sa.select(counters.c.n)).scalar_one() == 160


def test_a_process_killed_inside_a_transaction_leaves_nothing_behind(db, db_url):
    child = textwrap.dedent(f"""
        import sys, time
        import sqlalchemy as sa
        from qmtl.core.db import Database
        db = Database({db_url!r})
        with db.transaction() as conn:
            conn.execute(sa.text("INSERT INTO counters (name, n) VALUES ('k', 1)"))
            conn.execute(sa.text("UPDATE counters SET n = 99 WHERE name = 'keep'"))
            print("inside", flush=True)
            time.sleep(120)
    """)
    with db.transaction() as conn:
        conn.execute(counters.insert().values(name="keep", n=7))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, env=env,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "inside"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with db.transaction() as conn:  # waits for the lock the dead process held, then writes
        conn.execute(counters.insert().values(name="after", n=2))
    with db.transaction() as conn:
        assert dict(conn.execute(sa.select(counters.c.name, counters.c.n)).all()) == {
            "keep": 7, "after": 2}


def test_an_unreachable_postgresql_raises_the_stores_unavailable_error():
    class OrdersDown(DatabaseUnavailable):
        pass

    db = Database("postgresql://postgres:pw@127.0.0.1:1/test", unavailable=OrdersDown,
                  what="order store")
    with pytest.raises(OrdersDown, match=r"^PostgreSQL order store 127\.0\.0\.1:1/test: ") as info:
        with db.transaction():
            pass
    assert isinstance(info.value, QmtlError) and "pw" not in str(info.value)


def test_a_sqlite_file_that_cannot_be_made_raises_unavailable(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(DatabaseUnavailable, match=r"cannot open SQLite store .*file/sub"):
        Database(str(tmp_path / "file" / "sub" / "x.db"))


ENV_PY = (ROOT / "world_api" / "service" / "migrations" / "env.py").read_text()
REVISION = '''
import sqlalchemy as sa
from alembic import op

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    op.create_table({table!r}, sa.Column("id", sa.Integer(), primary_key=True))
    {then}


def downgrade():
    op.drop_table({table!r})
'''


def scripts(tmp_path: Path, fail_second: bool) -> Path:
    """Two revisions (tables ``a`` then ``b``); the second raises after its table when
    ``fail_second``."""
    directory = tmp_path / "migrations"
    (directory / "versions").mkdir(parents=True, exist_ok=True)
    (directory / "env.py").write_text(ENV_PY)
    (directory / "versions" / "r1.py").write_text(
        REVISION.format(rev="r1", down=None, table="a", then="pass"))
    for old in (directory / "versions").glob("r2*.py"):
        old.unlink()
    name = "r2_failing.py" if fail_second else "r2_fixed.py"  # a new file: no stale bytecode
    then = 'raise RuntimeError("step two failed")' if fail_second else "pass"
    (directory / "versions" / name).write_text(
        REVISION.format(rev="r2", down="r1", table="b", then=then))
    return directory


def tables(db: Database) -> set[str]:
    with db.transaction() as conn:
        return set(sa.inspect(conn).get_table_names())


def test_migrations_run_whole_or_not_at_all_and_once(db, tmp_path):
    before = tables(db)
    with pytest.raises(RuntimeError, match="step two failed"):
        db.migrate(scripts(tmp_path, fail_second=True), "my_version")
    assert tables(db) == before and db.revision("my_version") is None  # step one undone too
    directory = scripts(tmp_path, fail_second=False)
    db.migrate(directory, "my_version")
    assert db.revision("my_version") == head_revision(directory) == "r2"
    assert tables(db) == before | {"a", "b", "my_version"}
    db.migrate(directory, "my_version")  # at the head already: nothing to do
    assert db.revision("my_version") == "r2"
