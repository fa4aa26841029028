"""``campsync-tablet``: the tablet client for camp workers, on the command line.

The PIN is read from ``CAMPSYNC_TABLET_PIN`` when set, otherwise asked for (hidden). The store
is ``--store``, ``CAMPSYNC_TABLET_STORE`` or ``~/.local/share/campsync/tablet.db``.

Every expected failure prints one line and exits non-zero, never a traceback (tracebacks can
hold personal data in their locals):

====  =====================================================================
exit  meaning
====  =====================================================================
1     unexpected error
2     invalid input (a field value, an unknown id)
3     wrong PIN, or no store at that path
4     server unreachable or busy: the data stays queued on the tablet
5     this tablet was revoked (and wiped when the order verified)
6     the server refused, or could not be trusted
====  =====================================================================
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from campsync_client._errors import (
    AuthError,
    ClientError,
    DeviceRevoked,
    RecordNotFound,
    ServerError,
    StoreExists,
    StoreNotFound,
    TransportError,
    UntrustedServer,
    ValidationError,
    Wiped,
    WrongPin,
)
from campsync_client._http import RetryPolicy
from campsync_client._models import Household, Person, SyncProgress, SyncReport
from campsync_client._tablet import Tablet

__all__ = ["app", "main"]

PIN_ENV = "CAMPSYNC_TABLET_PIN"
STORE_ENV = "CAMPSYNC_TABLET_STORE"
OPERATOR_ENV = "CAMPSYNC_TABLET_OPERATOR"
DEFAULT_STORE = Path.home() / ".local" / "share" / "campsync" / "tablet.db"
CLI_RETRY = RetryPolicy(attempts=4, base_delay=0.5, max_delay=8.0)

app = typer.Typer(
    name="campsync-tablet",
    help="Register arriving households offline and sync them with the campsync server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
"""Sentences are never wrapped (scripts read them); tables fit the terminal."""

StoreOption = Annotated[
    Path,
    typer.Option("--store", envvar=STORE_ENV, help="The tablet's encrypted store."),
]


class _State:
    store: Path = DEFAULT_STORE


_state = _State()


@app.callback()
def _main(store: StoreOption = DEFAULT_STORE) -> None:
    """Register arriving households offline and sync them with the campsync server.

    The PIN comes from CAMPSYNC_TABLET_PIN when set, otherwise it is asked for.
    """
    _state.store = store


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@contextmanager
def _errors(pending: Callable[[], int] | None = None) -> Iterator[None]:
    """Turn every expected failure into one line and an exit code."""
    try:
        yield
    except WrongPin:
        _fail("wrong PIN.", 3)
    except StoreNotFound:
        _fail(f"no tablet store at {_state.store}: enrol first (campsync-tablet enroll).", 3)
    except StoreExists:
        _fail(f"a tablet store already exists at {_state.store}.", 3)
    except (ValidationError, RecordNotFound) as exc:
        _fail(str(exc), 2)
    except TransportError as exc:
        queued = f"{pending()} operations stay" if pending is not None else "everything stays"
        _fail(f"{exc}: {queued} queued on this tablet; sync again when connected.", 4)
    except Wiped:
        _fail("this tablet was revoked: its keys and data were wiped.", 5)
    except DeviceRevoked:
        _fail(
            "the server says this tablet is revoked, but the wipe order does not verify: "
            "nothing was wiped. Tell your coordinator.",
            5,
        )
    except UntrustedServer as exc:
        _fail(f"{exc}. Do not sync over this network; tell your coordinator.", 6)
    except AuthError as exc:
        _fail(f"the server refused: {exc}", 6)
    except ServerError as exc:
        _fail(f"the server answered an error ({exc}); nothing was lost, sync again later.", 6)
    except ClientError as exc:
        _fail(str(exc), 1)
    except KeyboardInterrupt:
        _fail("interrupted; everything saved so far is safe.", 130)


def _pin(*, confirm: bool = False) -> str:
    pin = os.environ.get(PIN_ENV)
    if pin:
        return pin
    return str(typer.prompt("PIN", hide_input=True, confirmation_prompt=confirm))


@contextmanager
def _tablet() -> Iterator[Tablet]:
    with _errors():
        tablet = Tablet.open(
            _state.store, _pin(), retry=CLI_RETRY, operator=os.environ.get(OPERATOR_ENV)
        )
    try:
        with _errors(tablet.pending):
            yield tablet
    finally:
        tablet.close()


def _short(record_id: object) -> str:
    """The short id shown in listings: the random end of a UUIDv7 (its start is a time)."""
    return str(record_id)[-8:]


def _resolve(tablet: Tablet, text: str, *, person: bool = False) -> str:
    """A full id, its short form (last characters), or its start, if only one record has it."""
    text = text.strip().lower()
    if person:
        ids = [str(p.id) for h in tablet.households() for p in h.members]
    else:
        ids = [str(h.id) for h in tablet.households()]
    matches = [i for i in ids if i.endswith(text) or i.startswith(text)] if len(text) >= 4 else []
    if len(matches) != 1:
        what = "person" if person else "household"
        _fail(f"no single {what} id matches {text!r}: use the id shown by `list`.", 2)
    return matches[0]


# --------------------------------------------------------------------------- enrol


@app.command()
def enroll(
    server_url: Annotated[str | None, typer.Argument(help="The server's URL.")] = None,
    code: Annotated[str | None, typer.Argument(help="The enrolment code from an admin.")] = None,
    qr: Annotated[
        str | None, typer.Option(help="The enrolment QR payload (JSON) instead of URL and code.")
    ] = None,
    fingerprint: Annotated[
        str | None, typer.Option(help="The server key fingerprint to check (from the admin).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label for this tablet.")] = None,
) -> None:
    """Enrol this tablet with a server (once). Creates the encrypted store."""
    if qr is None and (server_url is None or code is None):
        _fail("give SERVER_URL and CODE, or --qr PAYLOAD.", 2)
    with _errors():
        tablet = Tablet.enroll(
            server_url if qr is None else None,
            qr or code or "",
            _state.store,
            _pin(confirm=True),
            device_name=name,
            server_key_fingerprint=fingerprint,
            retry=CLI_RETRY,
        )
    with tablet:
        out.print(f"Enrolled in camp [bold]{tablet.camp_id}[/] as device {tablet.device_id}.")


# --------------------------------------------------------------------------- register


def _fields(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "", [], ())}


def _member(text: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            _fail("--member takes field=value pairs separated by commas.", 2)
        key, value = key.strip(), value.strip()
        fields[key] = int(value) if key == "birth_year" and value.isdigit() else value
    return fields


def _ask(label: str, *, number: bool = False) -> Any:
    answer = str(typer.prompt(label, default="", show_default=False)).strip()
    if number and answer:
        return int(answer) if answer.isdigit() else answer
    return answer or None


def _ask_person(*, head: bool) -> dict[str, Any]:
    person = _fields(
        given_name=_ask("Given name"),
        family_name=_ask("Family name"),
        father_name=_ask("Father's name"),
        sex=_ask("Sex (female/male/other/unknown)"),
        birth_year=_ask("Birth year", number=True),
        document_type=_ask("Document (por_card/acc/tazkira/passport/none)"),
        document_number=_ask("Document number"),
    )
    if not head:
        person.update(_fields(relationship_to_head=_ask("Relationship to head")))
    return person


@app.command()
def register(
    given_name: Annotated[str | None, typer.Option(help="Head of household: given name.")] = None,
    family_name: Annotated[str | None, typer.Option()] = None,
    father_name: Annotated[str | None, typer.Option()] = None,
    sex: Annotated[str | None, typer.Option(help="female, male, other or unknown.")] = None,
    birth_year: Annotated[int | None, typer.Option()] = None,
    document_type: Annotated[str | None, typer.Option(help="por_card, acc, tazkira...")] = None,
    document_number: Annotated[str | None, typer.Option()] = None,
    phone: Annotated[str | None, typer.Option(help="The household's phone.")] = None,
    arrival_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD; today by default.")] = None,
    arrival_type: Annotated[str | None, typer.Option(help="deported, voluntary or other.")] = None,
    crossing_point: Annotated[str | None, typer.Option()] = None,
    origin_country: Annotated[str | None, typer.Option()] = None,
    need: Annotated[
        list[str] | None, typer.Option(help="A need (repeat): food, shelter...")
    ] = None,
    member: Annotated[
        list[str] | None,
        typer.Option(
            help='Another member (repeat): "given_name=Aisha,sex=female,birth_year=2019".'
        ),
    ] = None,
) -> None:
    """Register a household: from the options, or by questions when no name is given."""
    head = _fields(
        given_name=given_name,
        family_name=family_name,
        father_name=father_name,
        sex=sex,
        birth_year=birth_year,
        document_type=document_type,
        document_number=document_number,
    )
    members = [_member(m) for m in member or []]
    household = _fields(
        phone=phone,
        arrival_date=arrival_date or dt.date.today().isoformat(),
        arrival_type=arrival_type,
        crossing_point=crossing_point,
        origin_country=origin_country,
        needs=need,
    )
    with _tablet() as tablet:
        if not (given_name or family_name):
            out.print("[bold]Head of household[/]")
            head = _ask_person(head=True)
            arrival = _ask("Arrival (deported/voluntary/other)")
            needs = _ask("Needs, comma-separated (food, shelter, health...)")
            household.update(_fields(arrival_type=arrival))
            if needs:
                household["needs"] = [n.strip() for n in needs.split(",") if n.strip()]
            while typer.confirm("Add another member?", default=False):
                members.append(_ask_person(head=False))
        created = tablet.register_household(head, members, **household)
        out.print(
            f"Registered household [bold]{created.id}[/] with {len(created.members)} "
            f"member(s); {tablet.pending()} operation(s) waiting to sync."
        )


# --------------------------------------------------------------------------- read


def _name(person: Person | None) -> str:
    return person.name if person is not None and person.name else "—"


@app.command("list")
def list_households() -> None:
    """List the households on this tablet."""
    with _tablet() as tablet:
        households = tablet.households()
        table = Table(title=f"{len(households)} households in {tablet.camp_id}")
        for column in ("id", "head", "members", "needs", "arrived", ""):
            table.add_column(column)
        for h in households:
            table.add_row(
                _short(h.id),
                _name(h.head),
                str(len(h.members)),
                ", ".join(sorted(h.needs)),
                h.arrival_date.isoformat() if h.arrival_date else "",
                "not synced" if h.pending else "",
            )
        out.print(table)


def _show_household(tablet: Tablet, household: Household) -> None:
    fields = Table(show_header=False, title=f"Household {household.id}")
    for name in (
        "arrival_date",
        "arrival_type",
        "crossing_point",
        "origin_country",
        "destination_province",
        "shelter_status",
        "phone",
        "status",
    ):
        value = getattr(household, name)
        if value is not None:
            fields.add_row(name.replace("_", " "), str(value))
    fields.add_row("needs", ", ".join(sorted(household.needs)))
    out.print(fields)
    people = Table(title="Members")
    for column in ("id", "name", "relationship", "sex", "born", "document"):
        people.add_column(column)
    for p in household.members:
        born = p.date_of_birth.isoformat() if p.date_of_birth else str(p.birth_year or "")
        document = " ".join(x for x in (p.document_type, p.document_number) if x)
        people.add_row(
            _short(p.id), _name(p), p.relationship_to_head or "", p.sex or "", born, document
        )
    out.print(people)
    services = tablet.services(household.id)
    if services:
        table = Table(title="Services")
        for column in ("delivered", "service", "quantity", ""):
            table.add_column(column)
        for s in services:
            quantity = f"{s.quantity:g} {s.unit or ''}".strip()
            table.add_row(
                s.delivered_at.strftime("%Y-%m-%d %H:%M"),
                s.service,
                quantity,
                "void" if s.voided else "",
            )
        out.print(table)


@app.command()
def show(household_id: Annotated[str, typer.Argument(help="A household id (as listed).")]) -> None:
    """Show one household, its members and the services it received."""
    with _tablet() as tablet:
        _show_household(tablet, tablet.household(_resolve(tablet, household_id)))


@app.command()
def search(text: Annotated[str, typer.Argument(help="A name, document number or phone.")]) -> None:
    """Find people by name (any spelling), document number or phone."""
    with _tablet() as tablet:
        found = tablet.search(text)
        table = Table(title=f"{len(found)} found")
        for column in ("household", "person", "name", "born"):
            table.add_column(column)
        for p in found:
            table.add_row(_short(p.household_id), _short(p.id), _name(p), str(p.birth_year or ""))
        out.print(table)


@app.command()
def service(
    household_id: Annotated[str, typer.Argument(help="A household id (as listed).")],
    service_name: Annotated[str, typer.Argument(metavar="SERVICE", help="food_ration, tent...")],
    quantity: Annotated[float, typer.Option(help="How much.")] = 1,
    unit: Annotated[str | None, typer.Option(help="kg, AFN...")] = None,
    person: Annotated[str | None, typer.Option(help="The member served (id as shown).")] = None,
) -> None:
    """Record a service delivered to a household."""
    with _tablet() as tablet:
        hid = _resolve(tablet, household_id)
        pid = _resolve(tablet, person, person=True) if person else None
        delivery = tablet.record_service(hid, service_name, quantity, unit, pid)
        out.print(f"Recorded {delivery.service} for household {_short(hid)}; sync to send it.")


# --------------------------------------------------------------------------- sync


def _summary(report: SyncReport) -> str:
    batches = f"{report.batches} batch" + ("es" if report.batches != 1 else "")
    return (
        f"Pushed {report.pushed} operation(s) in {batches}, pulled {report.pulled} record(s): "
        f"{report.applied} applied, {report.conflicts} conflict(s), {report.flagged} flagged, "
        f"{report.rejected} rejected."
    )


@app.command()
def sync() -> None:
    """Send what this tablet recorded and receive what changed elsewhere."""
    with _tablet() as tablet:
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
        )
        with Progress(*columns, console=err, transient=True) as bar:
            push = bar.add_task("sending", total=tablet.pending() or None, visible=False)
            pull = bar.add_task("receiving", total=None, visible=False)

            def progress(step: SyncProgress) -> None:
                task = push if step.phase == "push" else pull
                bar.update(task, completed=step.done, total=step.total, visible=True)

            report = tablet.sync(progress)
        if report.wiped:
            _fail("this tablet was revoked by the server: its keys and data were wiped.", 5)
        out.print(_summary(report))
        if report.conflicts or report.flagged or report.rejected:
            out.print("See [bold]campsync-tablet status[/] for the edits that need a look.")


@app.command()
def status() -> None:
    """Show this tablet's identity, what waits to sync, and edits that need a look."""
    with _tablet() as tablet:
        state = tablet.status()
        table = Table(show_header=False)
        table.add_row("device", str(state.device_id))
        table.add_row("camp", state.camp_id)
        table.add_row("server", state.server_url)
        table.add_row("waiting to sync", f"{state.pending} operation(s)")
        table.add_row("sealed batches", str(state.sealed_batches))
        last = state.last_sync_at.strftime("%Y-%m-%d %H:%M UTC") if state.last_sync_at else "never"
        table.add_row("last sync", last)
        table.add_row("need a look", str(state.open_issues))
        out.print(table)
        issues = tablet.conflicts()
        if issues:
            listing = Table(title="Edits that need a look")
            for column in ("when", "record", "outcome", "why"):
                listing.add_column(column)
            for issue in issues[:50]:
                why = " ".join(x for x in (issue.reason, issue.detail) if x)
                listing.add_row(
                    issue.at.strftime("%Y-%m-%d %H:%M"),
                    f"{issue.entity} {_short(issue.record_id)}",
                    issue.outcome,
                    why,
                )
            out.print(listing)


@app.command("export-batches")
def export_batches(
    directory: Annotated[Path, typer.Argument(help="Where to write the batches (a USB stick).")],
) -> None:
    """Write what waits to sync as sealed batch files, for an admin to import."""
    with _tablet() as tablet:
        files = tablet.export_batches(directory)
        out.print(
            f"Wrote {len(files)} batch file(s) to {directory}. An admin imports them with "
            f"`campsync admin import-batches {directory}`; they also stay queued here."
        )


def main() -> None:
    """Entry point of ``campsync-tablet``."""
    try:
        app()
    # Never a traceback: its frames' locals may hold personal data.
    except Exception as exc:
        err.print(f"[bold red]error:[/] unexpected {type(exc).__name__}; nothing saved was lost.")
        sys.exit(1)
