"""Deny by default: every route declares who may call it, and anonymous calls are refused."""

from __future__ import annotations

import re
from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.auth import Policy
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
