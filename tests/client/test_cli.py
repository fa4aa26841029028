"""The campsync-tablet command line, against the fake server over real loopback HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from campsync_client import Tablet, _cli
from campsync_client._cli import app
from typer.testing import CliRunner

from tests.client.conftest import PIN
from tests.client.fakeserver import FakeServer

runner = CliRunner()


def cli(store: Path, *args: str, pin: str = PIN, input: str | None = None):  # type: ignore[no-untyped-def]
    env = {"CAMPSYNC_TABLET_PIN": pin, "CAMPSYNC_TABLET_STORE": str(store)}
    _cli.out.width = _cli.err.width = 200  # tables fit the terminal; make it a wide one
    return runner.invoke(app, list(args), env=env, input=input)


@pytest.fixture
def store(http_fake: tuple[FakeServer, str], tmp_path: Path) -> Path:
    server, url = http_fake
    path = tmp_path / "tablet.db"
    result = cli(path, "enroll", url, server.code(), "--name", "tab-1")
    assert result.exit_code == 0, result.output
    assert "Enrolled in camp camp-1" in result.output
    return path


def test_register_list_show_service_sync_status(
    store: Path, http_fake: tuple[FakeServer, str]
) -> None:
    server, _ = http_fake
    result = cli(
        store, "register", "--given-name", "Mohammad", "--family-name", "Karimi", "--sex", "male",
        "--birth-year", "1985", "--need", "food", "--need", "shelter",
        "--member", "given_name=Aisha,sex=female,birth_year=2019,relationship_to_head=child",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 member(s); 3 operation(s) waiting" in result.output
    listing = cli(store, "list")
    assert "Mohammad Karimi" in listing.output
    assert "not synced" in listing.output
    with Tablet.open(store, PIN) as tablet:
        (household,) = tablet.households()
    prefix = str(household.id)[-8:]
    shown = cli(store, "show", prefix)
    assert shown.exit_code == 0
    assert "Aisha" in shown.output
    assert "food, shelter" in shown.output
    served = cli(store, "service", prefix, "food_ration", "--quantity", "25", "--unit", "kg")
    assert served.exit_code == 0, served.output
    synced = cli(store, "sync")
    assert synced.exit_code == 0, synced.output
    assert "Pushed 4 operation(s) in 1 batch, pulled 4 record(s): 4 applied" in synced.output
    assert server.applied_ops == 4
    state = cli(store, "status")
    assert "0 operation(s)" in state.output
    assert "never" not in state.output
    assert "Mohammad" in cli(store, "search", "Muhammad").output


def test_interactive_registration(store: Path) -> None:
    answers = "\n".join(
        ["Gul", "Ahmadi", "", "female", "1990", "tazkira", "TZ-1", "voluntary", "food, wash",
         "y", "Omar", "Ahmadi", "", "male", "2015", "", "", "child", "n"]
    ) + "\n"  # fmt: skip
    result = cli(store, "register", input=answers)
    assert result.exit_code == 0, result.output
    with Tablet.open(store, PIN) as tablet:
        (household,) = tablet.households()
        assert household.needs == {"food", "wash"}
        assert [m.given_name for m in household.members] == ["Gul", "Omar"]


def test_one_clear_line_per_failure(
    store: Path, http_fake: tuple[FakeServer, str], tmp_path: Path
) -> None:
    server, _ = http_fake
    wrong = cli(store, "list", pin="0000")
    assert (wrong.exit_code, wrong.output.strip()) == (3, "error: wrong PIN.")
    missing = cli(tmp_path / "nope.db", "list")
    assert missing.exit_code == 3
    assert "enrol first" in missing.output
    invalid = cli(store, "register", "--given-name", "X", "--arrival-type", "teleported")
    assert invalid.exit_code == 2
    assert "arrival_type" in invalid.output
    assert "Traceback" not in invalid.output
    cli(store, "register", "--given-name", "Queued")
    with Tablet.open(store, PIN) as tablet:
        url = tablet.server_url
    # The server goes away: the data stays queued and the CLI says so.
    offline = runner.invoke(
        app, ["sync"],
        env={"CAMPSYNC_TABLET_PIN": PIN, "CAMPSYNC_TABLET_STORE": str(store)},
    )  # fmt: skip
    assert offline.exit_code == 0  # still up: sanity
    _take_offline(store, url)
    cli(store, "register", "--given-name", "Queued")
    down = cli(store, "sync")
    assert down.exit_code == 4, down.output
    assert "server unreachable" in down.output
    assert "2 operations stay queued" in down.output
    assert len(down.output.strip().splitlines()) == 1
    _restore(store, url)
    server.revoke(_device(store))
    revoked = cli(store, "sync")
    assert revoked.exit_code == 5
    assert "revoked" in revoked.output
    assert not store.exists()


def _device(store: Path):  # type: ignore[no-untyped-def]
    with Tablet.open(store, PIN) as tablet:
        return tablet.device_id


def _take_offline(store: Path, url: str) -> None:
    _set_url(store, "http://127.0.0.1:9")  # discard port: nothing listens


def _restore(store: Path, url: str) -> None:
    _set_url(store, url)


def _set_url(store: Path, url: str) -> None:
    with Tablet.open(store, PIN) as tablet:
        replica = tablet._r
        identity = replica.identity.to_json()
        identity["server_url"] = url
        with replica.store.transaction("test"):
            replica.store.put_sealed("identity", identity)
