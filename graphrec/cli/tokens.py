"""Token commands: create, list and revoke the API tokens ``graphrec serve`` accepts
(:mod:`graphrec.store.tokens`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from graphrec.cli.app import FORMAT, cell, cli, emit, kv_table, open_store
from graphrec.errors import InputError

#: Longest --expires-days accepted (a hundred years; beyond it a date overflows).
_MAX_DAYS = 36500

_LIST_COLUMNS = (("id", "id"), ("name", "name"), ("prefix", "prefix"), ("scopes", "scopes"), ("created", "created_at"),
                 ("expires", "expires_at"), ("revoked", "revoked_at"))


def _when(value: str | None) -> str:
    """An ISO time as a table shows it: to the second, UTC."""
    return value[:19].replace("T", " ") if value else "-"


def _list_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no API tokens"
    cells = [[_when(r[key]) if key.endswith("_at") else cell(r[key]) for _, key in _LIST_COLUMNS] for r in rows]
    widths = [max(len(head), *(len(c[i]) for c in cells)) for i, (head, _) in enumerate(_LIST_COLUMNS)]
    lines = ["  ".join(head.ljust(w) for (head, _), w in zip(_LIST_COLUMNS, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


@cli.group()
def tokens() -> None:
    """API tokens for `graphrec serve`: create (the secret is shown once), list, revoke."""


@tokens.command("create")
@click.option("--name", required=True, help="Unique name of the token (1-64 printable characters, not only digits).")
@click.option("--scope", "scopes", multiple=True, required=True, metavar="read|write|admin",
              help="A scope to grant; repeat for several. admin grants write and read; write grants read.")
@click.option("--expires-days", type=int, default=None, help=f"Expire the token after N days (1-{_MAX_DAYS}; default: never).")
@FORMAT
@click.pass_context
def tokens_create(ctx: click.Context, name: str, scopes: tuple[str, ...], expires_days: int | None, fmt: str) -> None:
    """Create a token and print its secret, once: only its hash is stored, so it cannot be shown
    again."""
    from graphrec.store.tokens import create_token

    expires_at = None
    if expires_days is not None:
        if not 1 <= expires_days <= _MAX_DAYS:
            raise InputError(f"--expires-days must be between 1 and {_MAX_DAYS}, not {expires_days}")
        expires_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=expires_days)
    new = create_token(open_store(ctx), name, scopes, expires_at=expires_at)
    emit({**new.info.as_dict(), "secret": new.secret}, fmt, kv_table)
    click.echo("store it now: it cannot be shown again", err=True)


@tokens.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@FORMAT
@click.pass_context
def tokens_list(ctx: click.Context, include_revoked: bool, fmt: str) -> None:
    """List tokens (id, name, prefix, scopes, created, expires, revoked; never a secret)."""
    from graphrec.store.tokens import list_tokens

    emit([t.as_dict() for t in list_tokens(open_store(ctx), include_revoked=include_revoked)], fmt, _list_table)


@tokens.command("revoke")
@click.argument("ref")
@FORMAT
@click.pass_context
def tokens_revoke(ctx: click.Context, ref: str, fmt: str) -> None:
    """Revoke the token REF names (its numeric id or its name); it is refused from now on."""
    from graphrec.store.tokens import revoke_token

    emit(revoke_token(open_store(ctx), ref).as_dict(), fmt)
