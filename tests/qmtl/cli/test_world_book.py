"""`qmtl world book`, `halt`, `resume` and `reconcile [--adopt]` on a book with a paper
broker: what they print, their exit codes, and what they write to the ledger."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from connectors.brokers.paper import PaperBroker
from qmtl.book_run.service import BookConfig, BookService
from qmtl.book_run.store import open_book_store
from qmtl.cli import app

R = CliRunner()


def traded(tmp: Path) -> tuple[str, str]:
    db, paper = str(tmp / "b.db"), tmp / "paper.json"
    svc = BookService(
        open_book_store(db), PaperBroker(cash=1000.0, state=paper), BookConfig("w", symbols=("X",))
    )
    svc.start()
    svc.set_weights({"long": 0.5, "short": 0.5})
    svc.on_target("long", 1, {"X": 0.8}, {"X": 10.0})
    svc.on_target("short", 1, {"X": -0.4}, {"X": 10.0})
    svc.step(now=0.0)
    svc.broker.on_bar("X", 2, 10.0, 10.0)
    svc.sync()
    svc.store.close()
    return db, f"paper:{paper}"


def test_book_shows_positions_fills_and_each_strategy(tmp_path: Path) -> None:
    db, _ = traded(tmp_path)
    out = R.invoke(app, ["world", "book", "w", "--book-store", db])
    assert out.exit_code == 0, out.output
    assert "ACTIVE" in out.output and "equity 1,000.00" in out.output
    for word in ("positions", "recent fills", "long", "short", "model vs realized"):
        assert word in out.output
    missing = R.invoke(app, ["world", "book", "nope", "--book-store", db])
    assert missing.exit_code == 1 and "has no book" in missing.output


def test_halt_resume_and_reconcile_are_in_the_ledger(tmp_path: Path) -> None:
    db, broker = traded(tmp_path)
    out = R.invoke(
        app, ["world", "halt", "w", "--reason", "incident", "--who", "ann", "--book-store", db]
    )
    assert out.exit_code == 0 and "HALTED" in out.output
    assert open_book_store(db).load("w").state == "HALTED"
    assert (
        R.invoke(app, ["world", "resume", "w", "--who", "ann", "--book-store", db]).exit_code == 0
    )
    states = [e for e in open_book_store(db).events("w") if e["kind"] == "state"]
    assert [(e["state"], e["who"]) for e in states] == [("HALTED", "ann"), ("ACTIVE", "ann")]
    ok = R.invoke(
        app, ["world", "reconcile", "w", "--broker", broker, "--symbols", "X", "--book-store", db]
    )
    assert ok.exit_code == 0 and "agree" in ok.output, ok.output
    # money moved at the broker behind the book's back
    paper = PaperBroker(state=tmp_path / "paper.json")
    paper.cash -= 50.0
    paper._save()
    differ = R.invoke(
        app, ["world", "reconcile", "w", "--broker", broker, "--symbols", "X", "--book-store", db]
    )
    assert differ.exit_code == 3
    assert "balance USDT: ledger" in differ.output and "refuses to trade" in differ.output
    adopt = R.invoke(
        app,
        [
            "world",
            "reconcile",
            "w",
            "--broker",
            broker,
            "--symbols",
            "X",
            "--adopt",
            "--who",
            "ann",
            "--why",
            "fee rebate",
            "--book-store",
            db,
        ],
    )
    assert adopt.exit_code == 0 and "adopted" in adopt.output
    audit = [e for e in open_book_store(db).events("w") if e["kind"] == "adopt"][-1]
    assert (audit["who"], audit["why"]) == ("ann", "fee rebate") and audit["diffs"]
    assert (
        R.invoke(
            app,
            ["world", "reconcile", "w", "--broker", broker, "--symbols", "X", "--book-store", db],
        ).exit_code
        == 0
    )
