"""Odd input is a 4xx, never a 500 (issue 14): out-of-range cursors, control characters.

The NUL cases matter most on PostgreSQL, which refuses a NUL in text with a DataError; SQLite
stores it. Run this file on both databases.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, StringConstraints, TypeAdapter, ValidationError
from sqlalchemy import Engine

from api.edge import TextGuardMiddleware, has_controls
from api.pagination import InvalidCursor, decode_cursor, encode_cursor
from api.schemas import LINE, NO_CONTROLS, SearchText
from tests.factories import bearer, make_camp, make_user
from tests.registry_factories import make_household

ODD_IDS = [2**63, 2**64, 10**40, -1, -(2**63) - 1]
# NUL, a C1 control (NEL), a bidi override, an isolate, a C0 control and DEL.
ODD_CHARS = ["\x00", "\x85", "\u202e", "\u2066", "\x1b", "\x7f"]
ODD_ENCODED = ["%00", "%C2%85", "%E2%80%AE", "%E2%81%A6", "%1B", "%7F"]


def _is_validation_error(response: Any, loc: list[str] | None = None) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    if loc is not None:
        assert [d["loc"] for d in error["details"]] == [loc]


def _is_bad_cursor(response: Any) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "cursor_invalid"


@pytest.fixture
def guarded(app: Any) -> Iterator[TestClient]:
    """The app behind the text guard (wrapping it twice, once create_app adds it, is harmless)."""
    with TestClient(TextGuardMiddleware(app), raise_server_exceptions=False) as client:
        yield client


def _guard_installed(app: Any) -> bool:
    return any(m.cls is TextGuardMiddleware for m in app.user_middleware)


def _accepts(model: type[BaseModel], data: dict[str, Any]) -> bool:
    # For the models outside this change's files: their tests run once the fix is applied.
    try:
        model.model_validate(data)
    except ValidationError:
        return False
    return True


# Cursors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ODD_IDS)
def test_history_cursor_out_of_range_is_400(client: TestClient, db: Engine, value: int) -> None:
    camp = make_camp(db)
    household = make_household(db, camp)
    token = make_user(db, "coordinator", [camp])
    cursor = encode_cursor("history", [value])
    response = client.get(
        f"/v1/households/{household}/history", params={"cursor": cursor}, headers=bearer(token)
    )
    _is_bad_cursor(response)


@pytest.mark.parametrize("value", ODD_IDS)
def test_audit_cursor_out_of_range_is_400(client: TestClient, db: Engine, value: int) -> None:
    token = make_user(db, "admin")
    response = client.get(
        "/v1/audit", params={"cursor": encode_cursor("audit", [value])}, headers=bearer(token)
    )
    _is_bad_cursor(response)


def test_largest_ids_are_valid_cursors(client: TestClient, db: Engine) -> None:
    token = make_user(db, "admin")
    for value in (0, 2**63 - 1):
        response = client.get(
            "/v1/audit", params={"cursor": encode_cursor("audit", [value])}, headers=bearer(token)
        )
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:30:00-05:00", "2026-01-01T00:00:00"]
)
def test_time_cursor_without_a_utc_time_is_400(client: TestClient, db: Engine, when: str) -> None:
    token = make_user(db, "admin")
    cursor = encode_cursor("flags", [when, str(uuid.uuid4())])
    _is_bad_cursor(client.get("/v1/flags", params={"cursor": cursor}, headers=bearer(token)))


@pytest.mark.parametrize("score", [float("nan"), float("inf"), float("-inf")])
def test_score_cursor_must_be_finite(score: float) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor("households", encode_cursor("households", [score, uuid.uuid4()]), (float,))


# Control characters in the path and the query string -----------------------------------------


@pytest.mark.parametrize("char", ODD_ENCODED)
def test_control_character_in_a_path_is_422(guarded: TestClient, db: Engine, char: str) -> None:
    token = make_user(db, "admin")
    for path in (f"/v1/camps/{char}abc", f"/v1/households/{char}", f"/v1/camps/x{char}/stats"):
        response = guarded.get(path, headers=bearer(token))
        _is_validation_error(response, ["path"])
        assert char not in response.text
        assert "abc" not in response.text


@pytest.mark.parametrize("char", ODD_ENCODED)
def test_control_character_in_a_query_value_is_422(
    guarded: TestClient, db: Engine, char: str
) -> None:
    token = make_user(db, "admin")
    for url in (f"/v1/households?q=zorbak{char}", f"/v1/devices?limit=5&camp=zorbak{char}"):
        response = guarded.get(url, headers=bearer(token))
        name = url.split("?")[1].split("&")[-1].split("=")[0]
        _is_validation_error(response, ["query", name])
        assert "zorbak" not in response.text


def test_control_character_in_a_query_name_is_422_without_the_name(guarded: TestClient) -> None:
    response = guarded.get("/v1/camps?se%00cret=1")
    _is_validation_error(response, ["query"])
    assert "cret" not in response.text


@pytest.mark.parametrize("raw", ["%FF", "%ED%A0%80", "%C0%80"])
def test_bytes_that_are_not_utf8_are_422(guarded: TestClient, raw: str) -> None:
    _is_validation_error(guarded.get(f"/v1/camps/{raw}"), ["path"])
    _is_validation_error(guarded.get(f"/v1/camps?q={raw}"), ["query", "q"])


def test_ordinary_text_passes_the_guard(guarded: TestClient, db: Engine) -> None:
    camp = make_camp(db, "torkham-1")
    token = make_user(db, "admin")
    assert guarded.get(f"/v1/camps/{camp}", headers=bearer(token)).status_code == 200
    # Persian with a ZWNJ and an RLM, spaces as + and %20: all text the tablets accept.
    response = guarded.get(
        "/v1/households?q=%D9%85%DB%8C%E2%80%8C%D8%B1%E2%80%8F+ali%20khan", headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    assert guarded.get("/healthz").status_code == 200


def test_create_app_installs_the_guard(client: TestClient, app: Any, db: Engine) -> None:
    if not _guard_installed(app):
        pytest.skip("TextGuardMiddleware is not yet added in api/main.py")
    token = make_user(db, "admin")
    _is_validation_error(client.get("/v1/camps/%00abc", headers=bearer(token)), ["path"])


# Control characters in JSON bodies ---------------------------------------------------------------


@pytest.mark.parametrize("char", ODD_CHARS)
@pytest.mark.parametrize("field", ["name", "country", "province", "district"])
def test_control_character_in_camp_text_is_422(
    client: TestClient, db: Engine, char: str, field: str
) -> None:
    token = make_user(db, "admin")
    body = {"id": "camp-odd", "name": "Camp", field: f"Tor{char}kham"}
    response = client.post("/v1/camps", json=body, headers=bearer(token))
    _is_validation_error(response, ["body", field])
    assert "Tor" not in response.text


def test_lone_surrogate_in_camp_name_is_422(client: TestClient, db: Engine) -> None:
    token = make_user(db, "admin")
    response = client.post(
        "/v1/camps",
        content=b'{"id": "camp-odd", "name": "Tor\\ud800kham"}',
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text


def test_camp_text_is_stored_like_tablet_text(client: TestClient, db: Engine) -> None:
    token = make_user(db, "admin")
    # Decomposed e + acute, a double space, a ZWNJ: NFC, one space, ZWNJ kept.
    body = {"id": "camp-nfc", "name": "Cafe\u0301  mi\u200cr", "province": "Nangarhar"}
    response = client.post("/v1/camps", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Caf\u00e9 mi\u200cr"


@pytest.mark.parametrize("char", ODD_CHARS)
def test_control_character_in_export_purpose_is_422(
    client: TestClient, db: Engine, char: str
) -> None:
    camp = make_camp(db)
    token = make_user(db, "admin", scopes=["pii:export"])
    body = {"camp": camp, "purpose": f"Food round 3{char} agreement 2026-014"}
    response = client.post("/v1/exports", json=body, headers=bearer(token))
    _is_validation_error(response, ["body", "household", "purpose"])


@pytest.mark.parametrize("char", ["\x00", "\u202e"])
def test_control_character_in_login_username_is_422(client: TestClient, char: str) -> None:
    from api.routes.auth import LoginRequest

    if _accepts(LoginRequest, {"username": f"ad{char}min", "password": "x"}):
        pytest.skip("LoginRequest.username is not yet api.schemas.Username")
    response = client.post("/v1/auth/login", json={"username": f"ad{char}min", "password": "x"})
    _is_validation_error(response, ["body", "username"])


def test_control_character_in_search_text_is_refused_by_the_model() -> None:
    adapter: TypeAdapter[str] = TypeAdapter(SearchText)
    with pytest.raises(ValidationError):
        adapter.validate_python("ali\x00")
    assert adapter.validate_python("\u0645\u06cc\u200c\u0631") == "\u0645\u06cc\u200c\u0631"


# One rule in three places ---------------------------------------------------------------------


def test_patterns_and_guard_refuse_the_same_characters() -> None:
    """The guard, the body patterns (Rust regex, in pydantic) and Python's reading agree."""
    any_text: TypeAdapter[str] = TypeAdapter(Annotated[str, StringConstraints(pattern=NO_CONTROLS)])
    python = re.compile(NO_CONTROLS)
    for code in [*range(0x3000), *range(0xFE00, 0x10000)]:
        if 0xD800 <= code <= 0xDFFF:
            continue
        ch = chr(code)
        refused = has_controls(ch)
        assert (python.fullmatch(ch) is None) == refused, hex(code)
        try:
            any_text.validate_python(ch)
            assert not refused, hex(code)
        except ValidationError:
            assert refused, hex(code)
    assert re.match(LINE, "Torkham 1")
    assert not re.match(LINE, " Torkham")
    assert not re.match(LINE, "Torkham\u3000")


def _enroll_named(client: TestClient, db: Engine, device_name: str) -> Any:
    """Enrol a fresh tablet under ``device_name`` (the proof does not cover the name)."""
    from campsync_sync import (
        KeyManifest,
        SignedManifest,
        b64encode,
        enrollment_proof_message,
        signing_public_bytes,
    )
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from tests.factories import make_code

    code = make_code(client, db, make_camp(db))["code"]
    signed = SignedManifest.model_validate(client.get("/v1/keys").json())
    deployment = KeyManifest.model_validate_json(signed.payload).deployment_id
    signing, exchange = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    pub, xpub = signing_public_bytes(signing), exchange.public_key().public_bytes_raw()
    body = {
        "code": code,
        "device_name": device_name,
        "signing_key": b64encode(pub),
        "exchange_key": b64encode(xpub),
        "proof": b64encode(signing.sign(enrollment_proof_message(code, deployment, pub, xpub))),
    }
    return client.post("/v1/devices/enroll", json=body)


@pytest.mark.parametrize("char", ["\x00", "\u202e"])
def test_control_character_in_device_name_is_422(client: TestClient, db: Engine, char: str) -> None:
    from campsync_sync import EnrollmentRequest

    body = {"code": "c", "device_name": f"tab{char}let", "signing_key": "AA"}
    if _accepts(EnrollmentRequest, {**body, "exchange_key": "AA", "proof": "AA"}):
        pytest.skip("EnrollmentRequest.device_name does not yet refuse control characters")
    response = _enroll_named(client, db, f"tab{char}let")
    _is_validation_error(response, ["body", "device_name"])
