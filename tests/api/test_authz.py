"""Deny by default: every route declares who may call it, and anonymous calls are refused."""

from __future__ import annotations

import re
from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.auth import DeviceAuth, Policy
from api.main import ROUTERS

_DOC_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _policies(dependant: Dependant) -> Iterator[Policy]:
    for dep in dependant.dependencies:
        if isinstance(dep.call, Policy):
            yield dep.call
        yield from _policies(dep)


def _api_routes() -> list[APIRoute]:
    return [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]


def test_every_route_declares_exactly_one_policy() -> None:
    missing, ambiguous = [], []
    for route in _api_routes():
        policies = {repr(p) for p in _policies(route.dependant)}
        if not policies:
            missing.append(f"{sorted(route.methods)} {route.path}")
        elif len(policies) > 1:
            ambiguous.append(f"{sorted(route.methods)} {route.path}: {policies}")
    assert not missing, f"routes without an authorisation policy: {missing}"
    assert not ambiguous, f"routes with conflicting policies: {ambiguous}"


def test_the_app_serves_no_route_outside_the_checked_routers(app: FastAPI) -> None:
    checked = {(r.path, m.lower()) for r in _api_routes() for m in r.methods}
    served = {
        (path, method)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert served == checked
    # Routes hidden from the schema would escape the comparison above.
    assert all(r.include_in_schema for r in _api_routes())


def test_anonymous_calls_to_protected_routes_are_401(client: TestClient) -> None:
    for route in _api_routes():
        if any(p.public for p in _policies(route.dependant)):
            continue
        path = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", route.path)
        for method in route.methods:
            response = client.request(method, path, json={})
            assert response.status_code == 401, f"{method} {route.path}: {response.status_code}"
            assert response.json()["error"]["code"] in {"unauthenticated", "device_unknown"}


def _device_authenticated(dependant: Dependant) -> bool:
    return any(
        isinstance(dep.call, DeviceAuth) or _device_authenticated(dep)
        for dep in dependant.dependencies
    )


ENVELOPE_AUTHENTICATED = {("PUT", "/v1/sync/batches/{batch_id}")}
"""Routes authenticated by the signature of the envelope they carry."""


def test_device_token_routes_refuse_anonymous_calls(client: TestClient) -> None:
    routes = [r for r in _api_routes() if _device_authenticated(r.dependant)]
    assert {r.path for r in routes} == {"/v1/sync/batches/{batch_id}", "/v1/sync/changes"}
    for route in routes:
        path = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", route.path)
        for method in route.methods:
            for headers in ({}, {"Authorization": "Bearer forged"}, {"Authorization": "Basic x"}):
                response = client.request(method, path, headers=headers)
                assert response.status_code == 401, f"{method} {route.path}"
                assert response.json()["error"]["code"] in {"unauthenticated", "device_unknown"}


def test_every_public_sync_route_authenticates_the_device_somehow() -> None:
    public_sync = {
        (m, r.path)
        for r in _api_routes()
        for m in r.methods
        if r.path.startswith("/v1/sync/") and any(p.public for p in _policies(r.dependant))
    }
    token_routes = {
        (m, r.path) for r in _api_routes() for m in r.methods if _device_authenticated(r.dependant)
    }
    # The challenge and token routes are where a device proves itself with its key.
    signed_in_body = {("POST", "/v1/sync/challenge"), ("POST", "/v1/sync/token")}
    assert public_sync == token_routes | ENVELOPE_AUTHENTICATED | signed_in_body


def test_an_envelope_from_an_unknown_device_is_401(client: TestClient, db) -> None:  # type: ignore[no-untyped-def]
    from campsync_sync import uuid7

    from tests.factories import make_tablet

    tablet = make_tablet(client, db)
    tablet.device_id = uuid7()
    batch_id, data = tablet.seal_batch([], seq=1)
    response = tablet.put(batch_id, data)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "device_unknown"
