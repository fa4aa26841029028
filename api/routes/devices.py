"""Enrolment, the server's keys, and the device list (docs/sync-http.md)."""

from __future__ import annotations

import uuid
from typing import Annotated

from campsync_sync import EnrollmentRequest, EnrollmentResponse, SignedManifest
from fastapi import APIRouter, Body, Query, Request, status
from pydantic.json_schema import SkipJsonSchema

from api.auth import Admin, AnyUser, Public, Staff
from api.deps import KeyringDep, SessionDep, SettingsDep, WriteSessionDep
from api.devices import service
from api.devices.schemas import DeviceList, DevicePublic, EnrollmentCodeCreate, EnrollmentCodePublic
from api.ratelimit import Backoff, Blocked, client_address, too_many
from api.routes.common import ERRORS_READ, ERRORS_WRITE, CampIdPath
from api.schemas import CampFilter

router = APIRouter(prefix="/v1", tags=["devices"])


@router.post(
    "/camps/{camp_id}/enrollment-codes",
    summary="Create a single-use enrolment code for a camp",
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS_WRITE,
)
def create_enrollment_code(
    camp_id: CampIdPath,
    session: WriteSessionDep,
    settings: SettingsDep,
    keyring: KeyringDep,
    principal: Admin,
    data: EnrollmentCodeCreate | None = Body(default=None),  # noqa: B008
) -> EnrollmentCodePublic:
    """Admins only. The code is shown once; only its hash is stored."""
    return service.create_enrollment_code(
        session=session,
        settings=settings,
        keys=keyring.current(),
        camp_id=camp_id,
        ttl_minutes=data.ttl_minutes if data else None,
        actor=principal.actor,
        created_by=principal.user_id,
    )


@router.post(
    "/devices/enroll",
    summary="Enrol a tablet with a one-time code",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Public],
    responses={
        400: ERRORS_WRITE[409] | {"description": "Invalid code or proof"},
        422: ERRORS_READ[422],
        429: ERRORS_READ[422] | {"description": "Too many wrong codes: see Retry-After"},
    },
)
def enroll(
    request: EnrollmentRequest, http: Request, session: WriteSessionDep, keyring: KeyringDep
) -> EnrollmentResponse:
    """The tablet posts the code, its public keys and a proof that it holds its signing key.

    After a few wrong codes from one address, each further try waits twice as long (429).
    """
    backoff: Backoff = http.app.state.enrollment_backoff
    try:
        attempt = backoff.begin(f"address:{client_address(http.client)}")
    except Blocked as blocked:
        raise too_many(
            blocked, "too many wrong enrolment codes: wait before trying again"
        ) from None
    enrolled = service.enroll_device(session=session, keys=keyring.current(), request=request)
    backoff.succeeded(attempt)
    return enrolled


@router.get("/keys", summary="The server's signed key manifest", dependencies=[Public])
def keys(keyring: KeyringDep) -> SignedManifest:
    """Public keys: the long-lived signing key tablets pin, and live transport keys."""
    return keyring.current().manifest()


@router.get("/devices", summary="List tablets and their sync state", responses=ERRORS_READ)
def list_devices(
    session: SessionDep,
    principal: AnyUser,
    camp: Annotated[
        CampFilter | SkipJsonSchema[None],
        Query(
            description="Only the devices of this camp (a camp id); default: every camp you see."
        ),
    ] = None,
) -> DeviceList:
    """Admins, or staff of the camp. Integrators see no key material."""
    return DeviceList(
        items=service.list_devices(session=session, principal=principal, camp_id=camp)
    )


@router.post("/devices/{device_id}/revoke", summary="Revoke a tablet", responses=ERRORS_WRITE)
def revoke_device(device_id: uuid.UUID, session: WriteSessionDep, principal: Staff) -> DevicePublic:
    """Admins, or coordinators of the device's camp. Its tokens stop working at once."""
    return service.revoke_device(
        session=session, device_id=device_id, principal=principal, actor=principal.actor
    )
