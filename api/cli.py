"""The ``campsync`` command: run the server, migrate the database, administer camps and users.

Errors are one line on stderr and a non-zero exit, never a traceback. Commands that print a
secret (a token, an enrolment code) print it alone on the last line of stdout, so scripts can
take it with ``tail -n 1``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from sqlalchemy import Engine
from sqlmodel import Session

from api.config import Settings, get_settings
from api.db import IMMEDIATE, current_revision, engine_from_settings, head_revision, upgrade
from api.errors import DomainError

app = typer.Typer(
    help="campsync server: registration and sync for reception camps.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
admin_app = typer.Typer(help="Administration: camps, users, tablets, keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")

T = TypeVar("T")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def ready_engine(settings: Settings) -> Engine:
    """An engine on an up-to-date schema.

    The embedded SQLite is upgraded in place; PostgreSQL must have been upgraded with
    ``campsync db upgrade``.
    """
    engine = engine_from_settings(settings)
    if settings.is_sqlite:
        upgrade(engine)
        return engine
    revision = current_revision(engine)
    if revision != head_revision():
        engine.dispose()
        fail(f"database schema is at {revision or 'nothing'}; run `campsync db upgrade` first")
    return engine


@contextmanager
def admin_session() -> Iterator[Session]:
    engine = ready_engine(get_settings())
    try:
        with Session(engine.execution_options(**IMMEDIATE), expire_on_commit=False) as session:
            yield session
    finally:
        engine.dispose()


def run(action: Callable[[Session], T]) -> T:
    with admin_session() as session:
        try:
            return action(session)
        except DomainError as exc:
            session.rollback()
            fail(exc.message)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes. On SQLite they take turns to write; two use both cores.",
        ),
    ] = 1,
) -> None:
    """Run the HTTP server. On the embedded SQLite it first brings the schema up to date."""
    from api import server

    settings = get_settings()
    ready_engine(settings).dispose()
    os.environ["CAMPSYNC_WORKERS"] = str(workers)  # read by each worker's settings
    database = settings.effective_database_url.split(":", 1)[0]
    typer.echo(f"campsync listening on http://{host}:{port} ({database})", err=True)
    server.serve(settings, host=host, port=port, workers=workers)
    typer.echo("campsync stopped", err=True)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations up to the newest revision."""
    engine = engine_from_settings(get_settings())
    try:
        upgrade(engine, revision)
        typer.echo(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()


@admin_app.command("create-camp")
def create_camp(
    camp_id: Annotated[str, typer.Option("--id", help="Short slug, e.g. torkham-1.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    country: Annotated[str | None, typer.Option()] = None,
    province: Annotated[str | None, typer.Option()] = None,
    district: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create a camp."""
    from pydantic import ValidationError

    from api.camps import service
    from api.camps.schemas import CampCreate

    try:
        data = CampCreate(
            id=camp_id, name=name, country=country, province=province, district=district
        )
    except ValidationError as exc:
        field = ".".join(str(p) for p in exc.errors()[0]["loc"])
        fail(f"invalid {field}: {exc.errors()[0]['msg']}")
    camp = run(lambda s: service.create_camp(session=s, data=data, actor="cli"))
    typer.echo(f"created camp {camp.id}")


@admin_app.command("list-camps")
def list_camps() -> None:
    """List every camp."""
    from api.camps import service

    camps = run(lambda s: service.list_camps(session=s, principal=None))
    for camp in camps:
        where = ", ".join(p for p in (camp.district, camp.province, camp.country) if p)
        typer.echo(f"{camp.id}\t{camp.name}" + (f"\t{where}" if where else ""))


@admin_app.command("create-user")
def create_user(
    username: Annotated[str, typer.Option(help="Login name.")],
    role: Annotated[str, typer.Option(help="admin, coordinator or integrator.")],
    camp: Annotated[list[str] | None, typer.Option(help="A camp the user may see; repeat.")] = None,
    all_camps: Annotated[bool, typer.Option(help="See every camp.")] = False,
    scope: Annotated[
        list[str] | None, typer.Option(help="Extra scope: pii:read, pii:export; repeat.")
    ] = None,
    token_ttl_days: Annotated[
        int, typer.Option(min=1, max=366, help="Days the printed token stays valid.")
    ] = 90,
) -> None:
    """Create a user and print a bearer token for them (alone on the last line)."""
    import datetime as dt

    from api.users import service

    def create(session: Session) -> tuple[str, str, str, dt.datetime]:
        user, token = service.create_user(
            session=session,
            username=username,
            role=role,
            camps=camp or [],
            all_camps=all_camps,
            scopes=scope or [],
            token_ttl=dt.timedelta(days=token_ttl_days),
        )
        return user.role, user.username, token, service.token_expiry(session=session, token=token)

    role_name, name, token, expires_at = run(create)
    typer.echo(
        f"created {role_name} {name}; their token (shown once), "
        f"valid until {expires_at:%Y-%m-%d %H:%M} UTC:"
    )
    typer.echo(token)


@admin_app.command("set-password")
def set_password(
    username: Annotated[str, typer.Option(help="The user's login name.")],
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from standard input (for scripts).")
    ] = False,
) -> None:
    """Set a user's password (Argon2id); they can then log in at POST /v1/auth/login."""
    from api.users import service

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    run(lambda s: service.set_password(session=s, username=username, password=password))
    typer.echo(f"password set for {username}")


@admin_app.command("create-token")
def create_token(
    username: Annotated[str, typer.Option(help="The user's login name.")],
    ttl_days: Annotated[int, typer.Option(min=1, max=366, help="Days the token stays valid.")] = 90,
    scope: Annotated[
        list[str] | None, typer.Option(help="Extra scope: pii:read, pii:export; repeat.")
    ] = None,
) -> None:
    """Print another token for a user (alone on the last line), e.g. to rotate an integrator's.

    Their other tokens keep working until they expire; `revoke-tokens` first ends them.
    """
    import datetime as dt

    from api.users import service

    issued = run(
        lambda s: service.create_token(
            session=s, username=username, ttl=dt.timedelta(days=ttl_days), scopes=scope or []
        )
    )
    typer.echo(
        f"token for {username} (shown once), valid until {issued.expires_at:%Y-%m-%d %H:%M} UTC:"
    )
    typer.echo(issued.token)


@admin_app.command("revoke-tokens")
def revoke_tokens(
    username: Annotated[str, typer.Argument(help="The user's login name.")],
) -> None:
    """Revoke every live token of a user at once (a password still logs them in)."""
    from api.users import service

    revoked = run(lambda s: service.revoke_user_tokens(session=s, username=username, actor="cli"))
    typer.echo(f"revoked {revoked} token{'' if revoked == 1 else 's'} of {username}")


@admin_app.command("disable-user")
def disable_user(
    username: Annotated[str, typer.Argument(help="The user's login name.")],
) -> None:
    """Disable a user: their tokens stop working at once and login is refused."""
    from api.users import service

    run(lambda s: service.disable_user(session=s, username=username, principal=None, actor="cli"))
    typer.echo(f"user {username} is disabled; `enable-user` restores their unexpired tokens")


@admin_app.command("enable-user")
def enable_user(
    username: Annotated[str, typer.Argument(help="The user's login name.")],
) -> None:
    """Enable a disabled user: their unrevoked, unexpired tokens and login work again."""
    from api.users import service

    run(lambda s: service.enable_user(session=s, username=username, actor="cli"))
    typer.echo(f"user {username} is enabled")


@admin_app.command("list-users")
def list_users() -> None:
    """List users: name, role, camps, status and live tokens (never a secret)."""
    from api.users import service
    from api.users.schemas import UserFilters, UserPublic

    def every_user(session: Session) -> list[UserPublic]:
        users, cursor = [], None
        while True:
            page = service.list_users(
                session=session, filters=UserFilters(cursor=cursor, limit=500)
            )
            users += page.items
            if page.next_cursor is None:
                return users
            cursor = page.next_cursor

    for user in run(every_user):
        camps = "all" if user.all_camps else ",".join(user.camps) or "-"
        status = "disabled" if user.disabled_at is not None else "enabled"
        tokens = f"{user.live_tokens} live token{'' if user.live_tokens == 1 else 's'}"
        typer.echo(f"{user.username}\t{user.role}\t{camps}\t{status}\t{tokens}")


@admin_app.command("verify-audit")
def verify_audit() -> None:
    """Check the audit log's hash chain; exit 1 naming the first bad entry.

    Prints the head (newest entry and its hash) when the chain holds: keep it somewhere else,
    and a later run that ends before that head shows entries were removed from the end.
    """
    from api.audit import service

    report = run(service.verify)
    if not report.ok:
        fail(f"audit log broken at entry {report.first_bad_id}: {report.problem}")
    if report.head_id is None:
        typer.echo("audit log is empty")
        return
    typer.echo(f"audit log intact: {report.entries} entries; head entry {report.head_id}")
    typer.echo(report.head_hash or "")


@admin_app.command("enrollment-code")
def enrollment_code(
    camp: Annotated[str, typer.Option(help="The camp the tablet will serve.")],
    ttl: Annotated[int | None, typer.Option(help="Minutes the code stays valid.", min=1)] = None,
) -> None:
    """Create a single-use enrolment code; prints the QR payload, then the code alone."""
    from api.devices import service
    from api.sync.keys import Keyring

    settings = get_settings()
    with admin_session() as session:
        keys = Keyring(session.get_bind(), settings).current()  # type: ignore[arg-type]
        try:
            created = service.create_enrollment_code(
                session=session,
                settings=settings,
                keys=keys,
                camp_id=camp,
                ttl_minutes=ttl,
                actor="cli",
            )
        except DomainError as exc:
            fail(f"{exc.message}: {camp}")
    typer.echo(
        f"enrolment code for camp {camp}, valid until {created.expires_at:%Y-%m-%d %H:%M} UTC"
    )
    typer.echo(f"QR payload: {created.qr_payload}")
    typer.echo(created.code)


@admin_app.command("revoke-device")
def revoke_device(
    device_id: Annotated[str, typer.Argument(help="The device id (a UUID).")],
) -> None:
    """Revoke a tablet: its tokens stop at once, its later batches are quarantined."""
    import uuid

    from api.devices import service

    try:
        parsed = uuid.UUID(device_id)
    except ValueError:
        fail("the device id must be a UUID")
    device = run(
        lambda s: service.revoke_device(session=s, device_id=parsed, principal=None, actor="cli")
    )
    typer.echo(f"device {device.id} of camp {device.camp_id} is revoked")


@admin_app.command("rotate-keys")
def rotate_keys() -> None:
    """New transport keys become active; old ones retire; keys past their grace are destroyed."""
    from api.sync import keys

    settings = get_settings()
    engine = ready_engine(settings)
    try:
        rotation = keys.rotate_keys(engine=engine, settings=settings, actor="cli")
    finally:
        engine.dispose()
    typer.echo(f"active: {', '.join(rotation.created)}")
    typer.echo(f"retired: {', '.join(rotation.retired) or '-'}")
    typer.echo(f"destroyed: {', '.join(rotation.destroyed) or '-'}")


@admin_app.command("import-batches")
def import_batches(
    directory: Annotated[Path, typer.Argument(help="Folder of <batch_id>.batch files.")],
) -> None:
    """Import sealed batches carried by hand, with the same checks as a push; one line a file."""
    from api.sync import transfer

    if not directory.is_dir():
        fail(f"not a directory: {directory}")
    settings = get_settings()
    engine = ready_engine(settings)
    try:
        results = transfer.import_directory(engine=engine, settings=settings, directory=directory)
    finally:
        engine.dispose()
    for result in results:
        typer.echo(f"{result.name}\t{result.status}\t{result.detail}")
    refused = sum(1 for r in results if r.status == "refused")
    if refused:
        fail(f"{refused} of {len(results)} files refused")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        typer.echo(f"error: {type(exc).__name__} (run with CAMPSYNC_LOG_LEVEL=DEBUG)", err=True)
        sys.exit(1)
