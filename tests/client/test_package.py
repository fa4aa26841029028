from __future__ import annotations

import campsync_client


def test_client_package_imports_without_the_server() -> None:
    assert campsync_client.__version__
