from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from api.auth import AnyUser
from api.deps import EngineDep, WriteSessionDep
from api.exports import service
from api.exports.schemas import ExportRequest
from api.routes.common import ERRORS_BODY
from api.types import utcnow

router = APIRouter(prefix="/v1/exports", tags=["exports"])

_CSV: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The CSV (UTF-8 with a byte-order mark), streamed.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "headers": {
            "Content-Disposition": {
                "description": "`attachment` and a file name",
                "schema": {"type": "string"},
            },
            "X-Export-Rows": {
                "description": "Rows in the file, as recorded in the audit log",
                "schema": {"type": "integer"},
            },
        },
    }
}


@router.post(
    "",
    summary="Export households or people as CSV",
    response_class=StreamingResponse,
    responses={**_CSV, **ERRORS_BODY},
)
def create_export(
    data: Annotated[ExportRequest, Body()],
    engine: EngineDep,
    session: WriteSessionDep,
    principal: AnyUser,
) -> StreamingResponse:
    """A CSV of one camp's households (the default) or people, filtered, for a stated purpose.

    Every export is recorded in the audit log (who, purpose, filters, columns, row count) before
    the first row is sent. Personal columns need the `pii:export` scope (403 otherwise); without
    it, record ids are replaced by pseudonyms that stay the same across exports. Cells that a
    spreadsheet would run as formulas are prefixed with `'`.
    """
    export = service.start_export(
        engine=engine, session=session, principal=principal, request=data, today=utcnow().date()
    )
    return StreamingResponse(
        export.chunks(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{export.filename}"',
            "X-Export-Rows": str(export.rows),
        },
        background=BackgroundTask(export.close),
    )
