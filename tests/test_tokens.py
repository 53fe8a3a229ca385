"""API tokens (graphrec.store.tokens, `graphrec tokens`): create, verify, list, revoke, expiry,
scope hierarchy, no secret at rest, one-line errors, the CLI, and migration 0002 both ways; on
SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, select, text, update

from graphrec.cli import cli
from graphrec.errors import InputError, NotFoundError
from graphrec.store import migrate
from graphrec.store.schema import ApiToken
from graphrec.store.store import GraphStore
from graphrec.store.tokens import SCOPES, TokenInfo, create_token, hash_secret, list_tokens, revoke_token, verify_token

SECRET_RE = re.compile(r"^grt_[A-Za-z0-9_-]{43}$")


def _utc(**delta: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(**delta)


def _expire_now(store: GraphStore, token_id: int) -> None:
    """Move a token's expiry into the past (create_token refuses a past expiry)."""
    with store.write() as conn:
        conn.execute(update(ApiToken).where(ApiToken.id == token_id).values(expires_at=_utc(seconds=-1)))


# -- library -----------------------------------------------------------------------------------
def test_create_then_verify(store: GraphStore) -> None:
    new = create_token(store, "ci", ["write", "read", "write"])
    assert SECRET_RE.match(new.secret)
    info = new.info
    assert info.name == "ci" and info.id >= 1
    assert info.prefix == new.secret[:12] and info.prefix.startswith("grt_")
    assert info.scopes == ("read", "write")  # sorted, no duplicates
    assert info.expires_at is None and info.revoked_at is None and info.active
    assert info.created_at.tzinfo is not None and abs((info.created_at - _utc()).total_seconds()) < 60
    assert new.secret not in repr(new)
    assert verify_token(store, new.secret) == info
    assert verify_token(store, new.secret + "x") is None
    assert verify_token(store, "grt_" + "A" * 43) is None
    assert verify_token(store, "") is None and verify_token(store, "not-a-token") is None
    assert verify_token(store, "grt_" + "x" * 10_000) is None
    other = create_token(store, "other", ["read"])
    assert other.secret != new.secret and verify_token(store, other.secret) == other.info


def test_scope_hierarchy() -> None:
    def info(*scopes: str) -> TokenInfo:
        return TokenInfo(1, "t", "grt_abcdefgh", tuple(scopes), _utc(), None, None)

    assert SCOPES == ("read", "write", "admin")
    assert [info("admin").allows(s) for s in SCOPES] == [True, True, True]
    assert [info("write").allows(s) for s in SCOPES] == [True, True, False]
    assert [info("read").allows(s) for s in SCOPES] == [True, False, False]
    assert [info("read", "write").allows(s) for s in SCOPES] == [True, True, False]
    assert not info("admin").allows("root") and not info("admin").allows("")


def test_active_expiry_and_revocation_flags() -> None:
    base = TokenInfo(1, "t", "grt_abcdefgh", ("read",), _utc(days=-2), None, None)
    assert base.active
    assert TokenInfo(1, "t", "p", ("read",), _utc(), _utc(hours=1), None).active
    assert not TokenInfo(1, "t", "p", ("read",), _utc(), _utc(seconds=-1), None).active
    assert not TokenInfo(1, "t", "p", ("read",), _utc(), None, _utc()).active
    # a naive expiry is UTC, as the store keeps it
    assert not TokenInfo(1, "t", "p", ("read",), _utc(), dt.datetime.utcnow() - dt.timedelta(seconds=5), None).active


def test_secret_and_hash_are_stored_nowhere_but_as_hash(store: GraphStore) -> None:
    new = create_token(store, "scan-me", ["admin"], expires_at=_utc(days=3))
    digest = hash_secret(new.secret)
    with store.engine.connect() as conn:
        tables = [t for t in inspect(conn).get_table_names()]
        dumped = []
        for table in tables:
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                dumped.extend(str(v) for v in row)
        row = conn.execute(select(ApiToken.token_hash, ApiToken.prefix, ApiToken.scopes).where(ApiToken.name == "scan-me")).one()
    blob = "\n".join(dumped)
    assert new.secret not in blob
    assert new.secret[12:] not in blob  # not even the part after the shown prefix
    assert row.token_hash == digest and len(digest) == 64 and re.fullmatch(r"[0-9a-f]{64}", digest)
    assert row.prefix == new.secret[:12] and row.scopes == "admin"
    d = new.info.as_dict()
    assert json.loads(json.dumps(d)) == d
    assert set(d) == {"id", "name", "prefix", "scopes", "created_at", "expires_at", "revoked_at", "active"}
    assert new.secret not in json.dumps(d) and digest not in json.dumps(d)


def test_list_and_revoke(store: GraphStore) -> None:
    a = create_token(store, "alpha", ["read"])
    b = create_token(store, "beta", ["write"])
    c = create_token(store, "gamma", ["admin"])
    assert [t.name for t in list_tokens(store)] == ["alpha", "beta", "gamma"]

    revoked = revoke_token(store, "beta")  # by name
    assert revoked.id == b.info.id and revoked.revoked_at is not None and not revoked.active
    assert verify_token(store, b.secret) is None
    revoked = revoke_token(store, str(c.info.id))  # by id
    assert revoked.name == "gamma" and verify_token(store, c.secret) is None
    assert verify_token(store, a.secret) == a.info

    assert [t.name for t in list_tokens(store)] == ["alpha"]
    everything = list_tokens(store, include_revoked=True)
    assert [(t.name, t.revoked_at is not None) for t in everything] == [("alpha", False), ("beta", True), ("gamma", True)]

    with pytest.raises(InputError, match=r"^API token 'beta' \(id \d+\) was already revoked at \d{4}-"):
        revoke_token(store, "beta")
    with pytest.raises(NotFoundError, match=r"^no API token with id or name 'delta'$"):
        revoke_token(store, "delta")
    with pytest.raises(NotFoundError, match="'999'"):
        revoke_token(store, "999")
    # a secret given as the ref is not echoed back
    with pytest.raises(NotFoundError) as err:
        revoke_token(store, a.secret)
    assert a.secret not in str(err.value) and "looks like a token's secret" in str(err.value)
    # a revoked token's name stays taken (the row is kept)
    with pytest.raises(InputError, match="a token named 'beta' already exists"):
        create_token(store, "beta", ["read"])


def test_expiry(store: GraphStore) -> None:
    soon = create_token(store, "soon", ["read"], expires_at=_utc(hours=1))
    assert soon.info.expires_at is not None and soon.info.expires_at.tzinfo is not None
    assert abs((soon.info.expires_at - _utc(hours=1)).total_seconds()) < 60
    assert verify_token(store, soon.secret) == soon.info
    naive = create_token(store, "naive", ["read"], expires_at=dt.datetime.utcnow() + dt.timedelta(hours=2))
    assert naive.info.active
    _expire_now(store, soon.info.id)
    assert verify_token(store, soon.secret) is None
    listed = {t.name: t for t in list_tokens(store)}
    assert not listed["soon"].active and listed["naive"].active  # expired tokens are still listed
    assert revoke_token(store, "soon").revoked_at is not None  # and can be revoked
    with pytest.raises(InputError, match=r"^expires_at .* is in the past"):
        create_token(store, "late", ["read"], expires_at=_utc(seconds=-5))
    assert "late" not in {t.name for t in list_tokens(store, include_revoked=True)}


@pytest.mark.parametrize(
    ("name", "scopes", "message"),
    [
        ("", ["read"], "must not be empty or only whitespace"),
        ("   ", ["read"], "must not be empty or only whitespace"),
        ("x" * 65, ["read"], "at most 64 characters"),
        ("bad\nname", ["read"], "must be printable"),
        ("tab\there", ["read"], "must be printable"),
        ("42", ["read"], "must not be only digits"),
        ("ok", [], "at least one scope"),
        ("ok", ["read", "sudo"], "unknown scope 'sudo'"),
        ("ok", ["READ"], "unknown scope 'READ'"),
    ],
)
def test_invalid_input_is_one_line(store: GraphStore, name: str, scopes: list[str], message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)) as err:
        create_token(store, name, scopes)
    assert "\n" not in str(err.value)
    assert list_tokens(store, include_revoked=True) == []


def test_name_limits(store: GraphStore) -> None:
    assert create_token(store, "x" * 64, ["read"]).info.name == "x" * 64
    assert create_token(store, "équipe données", "read").info.scopes == ("read",)  # one scope as text
    with pytest.raises(InputError, match="^a token named 'équipe données' already exists$"):
        create_token(store, "équipe données", ["admin"])


def test_verify_reads_only(store: GraphStore) -> None:
    """verify_token writes nothing: the store revision and the row stay as they were."""
    new = create_token(store, "ro", ["read"])
    before = store.revision()
    for _ in range(3):
        assert verify_token(store, new.secret) is not None
    assert store.revision() == before
    assert list_tokens(store) == [new.info]


# -- CLI ---------------------------------------------------------------------------------------
def _run(url: str, *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env={"GRAPHREC_DATABASE_URL": url}, catch_exceptions=False)


def test_cli_round_trip(store: GraphStore, database_url: str) -> None:
    url = database_url
    r = _run(url, "tokens", "create", "--name", "deploy", "--scope", "read", "--scope", "write", "--expires-days", "30",
             "--format", "json")
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout)
    assert SECRET_RE.match(created["secret"]) and created["scopes"] == ["read", "write"] and created["active"] is True
    assert r.stderr.strip() == "store it now: it cannot be shown again"
    info = verify_token(store, created["secret"])
    assert info is not None and info.id == created["id"] and info.allows("write") and not info.allows("admin")
    assert info.expires_at is not None and 29 < (info.expires_at - _utc()).total_seconds() / 86400 <= 30

    r = _run(url, "tokens", "create", "--name", "ops", "--scope", "admin")
    assert r.exit_code == 0, r.output
    secret = re.search(r"^secret\s+(grt_\S+)$", r.stdout, re.M)
    assert secret and verify_token(store, secret.group(1)) is not None

    r = _run(url, "tokens", "list")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["id", "name", "prefix", "scopes", "created", "expires", "revoked"]
    assert len(lines) == 3 and "deploy" in lines[1] and created["prefix"] in lines[1] and "read, write" in lines[1]
    assert created["secret"] not in r.stdout and secret.group(1) not in r.stdout

    r = _run(url, "tokens", "revoke", "deploy", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["revoked_at"] is not None
    assert verify_token(store, created["secret"]) is None

    r = _run(url, "tokens", "list", "--format", "json")
    assert [t["name"] for t in json.loads(r.stdout)] == ["ops"]
    r = _run(url, "tokens", "list", "--all", "--format", "json")
    listed = json.loads(r.stdout)
    assert [t["name"] for t in listed] == ["deploy", "ops"] and all("secret" not in t for t in listed)

    r = _run(url, "tokens", "revoke", str(listed[1]["id"]))
    assert r.exit_code == 0 and re.search(r"^revoked_at\s+\d{4}-", r.stdout, re.M)
    r = _run(url, "tokens", "list")
    assert r.exit_code == 0 and r.stdout.strip() == "no API tokens"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["tokens", "create", "--name", "dup", "--scope", "read"], 2, "error: a token named 'dup' already exists"),
        (["tokens", "create", "--name", "x", "--scope", "root"], 2, "error: unknown scope 'root': the scopes are read, write, admin"),
        (["tokens", "create", "--name", "x", "--scope", "read", "--expires-days", "0"], 2,
         "error: --expires-days must be between 1 and 36500, not 0"),
        (["tokens", "revoke", "nobody"], 3, "error: no API token with id or name 'nobody'"),
        (["tokens", "revoke", "dup"], 0, None),
        (["tokens", "revoke", "dup"], 2, "error: API token 'dup' (id 1) was already revoked at "),
    ],
)
def test_cli_errors_and_exit_codes(sqlite_url: str, args: list[str], code: int, message: str | None) -> None:
    store = GraphStore(sqlite_url)
    store.initialize()
    create_token(store, "dup", ["read"])
    if args[-1] == "dup" and message is not None:
        revoke_token(store, "dup")
    r = _run(sqlite_url, *args)
    assert r.exit_code == code, r.output
    if message is not None:
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(message)
        assert "Traceback" not in r.output


def test_cli_missing_options_are_usage_errors(sqlite_url: str) -> None:
    GraphStore(sqlite_url).initialize()
    assert _run(sqlite_url, "tokens", "create", "--scope", "read").exit_code == 2
    assert _run(sqlite_url, "tokens", "create", "--name", "x").exit_code == 2
    assert _run(sqlite_url, "tokens", "revoke").exit_code == 2


def test_cli_on_uninitialised_store_is_not_ready(sqlite_url: str) -> None:
    r = _run(sqlite_url, "tokens", "list")
    assert r.exit_code == 4 and "error:" in r.stderr


# -- migration 0002 ----------------------------------------------------------------------------
def test_migration_0002_round_trip(database_url: str) -> None:
    store = GraphStore(database_url)
    assert store.initialize("0001") == (None, "0001")
    with store.engine.connect() as conn:
        assert not inspect(conn).has_table("api_tokens")
    assert store.initialize() == ("0001", migrate.SCHEMA_HEAD)
    with store.engine.connect() as conn:
        insp = inspect(conn)
        assert insp.has_table("api_tokens")
        cols = {c["name"]: c for c in insp.get_columns("api_tokens")}
        uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("api_tokens")}
        pk = insp.get_pk_constraint("api_tokens")
    assert list(cols) == ["id", "name", "token_hash", "prefix", "scopes", "created_at", "expires_at", "revoked_at"]
    assert [n for n, c in cols.items() if c["nullable"]] == ["expires_at", "revoked_at"]
    assert {("name",), ("token_hash",)} <= uniques
    assert pk["name"] == "pk_api_tokens" and pk["constrained_columns"] == ["id"]
    new = create_token(store, "survives-nothing", ["read"])
    assert store.downgrade("0001") == (migrate.SCHEMA_HEAD, "0001")
    with store.engine.connect() as conn:
        assert not inspect(conn).has_table("api_tokens") and migrate.current_revision(conn) == "0001"
    store.initialize()
    assert list_tokens(store, include_revoked=True) == [] and verify_token(store, new.secret) is None
