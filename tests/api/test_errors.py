"""One error body everywhere, and nothing internal in it."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import bearer, make_camp, make_user


def _assert_error_body(response, code: str) -> dict:  # type: ignore[no-untyped-def]
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert "x-request-id" in response.headers
    return body["error"]


def test_unknown_route_is_404_with_error_body(client: TestClient) -> None:
    _assert_error_body(client.get("/v1/nothing-here"), "not_found")


def test_wrong_method_is_405_with_error_body(client: TestClient) -> None:
    response = client.delete("/healthz")
    assert response.status_code == 405
    _assert_error_body(response, "method_not_allowed")


def test_validation_errors_name_the_field_but_never_echo_the_input(client, db) -> None:  # type: ignore[no-untyped-def]
    token = make_user(db, "admin")
    response = client.post(
        "/v1/camps", json={"id": "Mohammad Canary", "name": "x" * 500}, headers=bearer(token)
    )
    assert response.status_code == 422
    error = _assert_error_body(response, "validation_error")
    assert {tuple(d["loc"]) for d in error["details"]} == {("body", "id"), ("body", "name")}
    assert "Canary" not in response.text
    assert "xxxx" not in response.text


def test_malformed_json_is_422(client, db) -> None:  # type: ignore[no-untyped-def]
    token = make_user(db, "admin")
    response = client.post(
        "/v1/camps",
        content=b"{not json",
        headers={**bearer(token), "content-type": "application/json"},
    )
    assert response.status_code == 422
    _assert_error_body(response, "validation_error")


def test_oversized_json_body_is_413_before_reading_it(client, db) -> None:  # type: ignore[no-untyped-def]
    token = make_user(db, "admin")
    response = client.post(
        "/v1/camps",
        content=b"{" + b" " * (300 * 1024) + b"}",
        headers={**bearer(token), "content-type": "application/json"},
    )
    assert response.status_code == 413
    _assert_error_body(response, "payload_too_large")


def test_unexpected_exception_is_500_with_request_id_only(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Canary " + "Secret"

    @app.get("/boom", dependencies=[])
    def boom() -> None:
        raise RuntimeError(f"SELECT * FROM person WHERE given_name = '{secret}'")

    with TestClient(app, raise_server_exceptions=False) as client:
        with caplog.at_level(logging.INFO, logger="campsync"):
            response = client.get("/boom", headers={"x-request-id": "req-12345678"})
    assert response.status_code == 500
    error = _assert_error_body(response, "internal_error")
    assert error["details"] == {"request_id": "req-12345678"}
    assert "Canary" not in response.text
    assert "SELECT" not in response.text
    logged = "\n".join(f"{r.msg} {r.__dict__}" for r in caplog.records)
    assert "Canary" not in logged
    assert "RuntimeError" in logged


def test_request_log_has_route_template_and_never_the_query(client, db, caplog) -> None:  # type: ignore[no-untyped-def]
    camp = make_camp(db)
    token = make_user(db, "coordinator", [camp])
    with caplog.at_level(logging.INFO, logger="campsync.access"):
        client.get(f"/v1/camps/{camp}?q=Canary+Name", headers=bearer(token))
    [record] = [r for r in caplog.records if r.name == "campsync.access"]
    assert record.__dict__["route"] == "/v1/camps/{camp_id}"
    assert record.__dict__["status"] == 200
    assert "Canary" not in str(record.__dict__)


def test_json_log_formatter_drops_unknown_extras_and_arguments() -> None:
    from api.logs import JSONFormatter

    record = logging.LogRecord("campsync.x", logging.INFO, "f", 1, "hello %s", ("Canary",), None)
    record.__dict__["given_name"] = "Canary"
    record.__dict__["batch_id"] = "b-1"
    line = JSONFormatter().format(record)
    assert "Canary" not in line
    assert '"batch_id": "b-1"' in line


def test_405_names_every_method_of_the_path(client: TestClient) -> None:
    response = client.request("OPTIONS", "/v1/camps")
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "POST"}
    _assert_error_body(response, "method_not_allowed")
