"""The catalogue of real error texts: every entry's documented text gets its entry's cause, through
the same vectorized DuckDB matching ingest uses; normalisation; user entries from config."""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb
import pytest

from conflictradar.ingest.catalogue import CATALOGUE, Entry, systems
from conflictradar.ingest.classify import Classifier
from conflictradar.ingest.database import REQUEST_COLUMNS
from conflictradar.ingest.settings import ClassifySettings, load_settings
from conflictradar.ingest.store import Store
from conflictradar.ingest.texts import Matcher, normalise, normalised
from tests.test_classify import Req, rows


def classify_texts(tmp_path: Path, texts: list[str], settings: ClassifySettings | None = None
                   ) -> list[tuple[str, str, str]]:  # fmt: skip
    """(cause, confidence, evidence) of a GET 409 per text: only the text can explain it."""
    reqs = [Req(10.0 * i, "GET", f"/r/{i}", 409, message=t) for i, t in enumerate(texts)]
    frame = rows(reqs).select(REQUEST_COLUMNS)
    with Store.open(tmp_path / f"k{uuid.uuid4().hex}.duckdb") as store, store.transaction() as con:
        con.register("part", frame.to_arrow())
        con.execute("INSERT INTO requests SELECT * FROM part")
        Classifier(settings or ClassifySettings()).classify_range(
            con,
            frame["ts"].min(),  # type: ignore[arg-type]
            frame["ts"].max(),  # type: ignore[arg-type]
        )
        got = con.execute(
            "SELECT cause, confidence, evidence FROM conflicts ORDER BY ts"
        ).fetchall()
    return [(str(c), str(k), str(e)) for c, k, e in got]


@pytest.fixture(scope="module")
def explained(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str]]:
    return classify_texts(tmp_path_factory.mktemp("catalogue"), [e.example for e in CATALOGUE])


@pytest.mark.parametrize("i", range(len(CATALOGUE)), ids=[e.label for e in CATALOGUE])
def test_entry_real_text_gets_its_cause(explained: list[tuple[str, str, str]], i: int) -> None:
    entry = CATALOGUE[i]
    cause, confidence, evidence = explained[i]
    assert (cause, confidence) == (entry.cause.value, "certain"), evidence
    assert entry.example[:40] in evidence


@pytest.mark.parametrize("entry", CATALOGUE, ids=[e.label for e in CATALOGUE])
def test_entry_pattern_matches_its_own_text(entry: Entry) -> None:
    """The entry itself recognises its text (not only an earlier entry of the same cause)."""
    matcher = Matcher(entries=(entry,), keywords=())
    con = duckdb.connect()
    con.execute("CREATE TABLE texts AS SELECT ?::VARCHAR AS msg", [entry.example])
    ((cause, label),) = con.execute(f"SELECT cause, label FROM ({matcher.sql('texts')})").fetchall()
    assert (cause, label) == (entry.cause.value, entry.label)
    assert entry.source.startswith("https://")


def test_catalogue_covers_thirty_systems() -> None:
    assert len(systems()) >= 30


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ContainerAlreadyExists", "container already exists"),
        ("already_exists", "already exists"),
        ("AlreadyExistsException", "already exists exception"),
        ("org.hibernate.StaleObjectStateException", "org hibernate stale object state exception"),
        ("HTTPConflict: ETagMismatch", "http conflict: etag mismatch"),
        ("ConditionalCheckFailedException", "conditional check failed exception"),
        ("charge_already_refunded", "charge already refunded"),
    ],
)
def test_normalise_in_python_and_sql(text: str, words: str) -> None:
    assert normalise(text) == words
    assert duckdb.connect().execute(f"SELECT {normalised('?')}", [text]).fetchall() == [(words,)]


def test_camel_and_snake_case_meet_the_keywords(tmp_path: Path) -> None:
    got = classify_texts(
        tmp_path, ["WidgetAlreadyExists", "order_is_locked", "InvalidStateTransition"]
    )
    assert [c for c, _k, _e in got] == ["duplicate_create", "resource_locked", "state_conflict"]


def test_first_match_in_cause_order_decides(tmp_path: Path) -> None:
    """SPEC 5: catalogue and keywords together, first match in cause order. A Stripe
    state_conflict code beside the keyword "version" is a version_mismatch; alone it is the
    catalogue's state_conflict, and within one cause the catalogue entry names the system."""
    got = classify_texts(
        tmp_path,
        ["charge_already_refunded (stale version of the charge)", "charge_already_refunded",
         "Lock wait timeout exceeded; try restarting transaction"],
    )  # fmt: skip
    assert [(c, k) for c, k, _ in got] == [
        ("version_mismatch", "certain"), ("state_conflict", "certain"),
        ("resource_locked", "certain"),
    ]  # fmt: skip
    assert got[0][2].endswith('matched "stale"'), got[0][2]  # the keyword, not Stripe
    assert "Stripe" in got[1][2], got[1][2]
    assert "MySQL" in got[2][2], got[2][2]


def test_user_entries_from_config_come_first(tmp_path: Path) -> None:
    cfg = tmp_path / "conflictradar.toml"
    cfg.write_text(
        '[[classify.catalogue]]\nsystem = "Acme Ledger"\nname = "ACME-4091"\n'
        'pattern = "ACME-4091|ledger frozen"\ncause = "resource_locked"\n'
        'source = "https://wiki.acme.example/errors/4091"\n'
    )
    s = load_settings(config=cfg, env={}).classify
    ((cause, confidence, evidence),) = classify_texts(tmp_path, ["ACME-4091 duplicate posting"], s)
    assert (cause, confidence) == ("resource_locked", "certain")
    assert evidence.endswith(": Acme Ledger ACME-4091")


def test_bad_user_entries_are_one_sentence_errors(tmp_path: Path) -> None:
    from conflictradar.ingest.errors import ConfigError

    cfg = tmp_path / "conflictradar.toml"
    cfg.write_text('[[classify.catalogue]]\nsystem = "X"\npattern = "("\ncause = "unknown"\n')
    with pytest.raises(ConfigError, match=r"classify.catalogue\[0\].cause = 'unknown'"):
        load_settings(config=cfg, env={})
    cfg.write_text(
        '[[classify.catalogue]]\nsystem = "X"\npattern = "("\ncause = "state_conflict"\n'
    )
    with pytest.raises(ConfigError, match="is not a regular expression"):
        load_settings(config=cfg, env={})


def test_bracketed_message_is_kept_and_explains(tmp_path: Path) -> None:
    """Elasticsearch writes `[index][id]: ...`; that is text, not a JSON array."""
    from conflictradar.ingest.pipeline import Ingester

    log, db = tmp_path / "svc.jsonl", tmp_path / "b.duckdb"
    es = (
        "[orders][42]: version conflict, current version [3] is different than the one provided [2]"
    )
    log.write_text(
        '{"@timestamp":"2025-06-02T10:00:00Z","message":"' + es + '","http":{"request":'
        '{"method":"POST"},"response":{"status_code":409}},"url":{"path":"/orders"}}\n'
        '{"@timestamp":"2025-06-02T10:00:09Z","error":{"message":["not","text"]},"http":'
        '{"request":{"method":"POST"},"response":{"status_code":409}},"url":{"path":"/x"}}\n'
    )
    with Store.open(db) as store:
        Ingester(store, load_settings(db=db, env={})).ingest([log])
        got = store.con.execute("SELECT message, cause FROM conflicts ORDER BY ts").fetchall()
    assert got == [(es, "version_mismatch"), (None, "duplicate_create")]
