"""The README's tablet-client example runs as printed, against a live server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine

from tests.e2e.clientkit import Admin
from tests.factories import make_camp
from tests.server import LiveServer

README = Path(__file__).parents[2] / "README.md"


def test_the_tablet_client_example_runs(db: Engine, tmp_path: Path) -> None:
    section = README.read_text().split("## Embedding the tablet client (integrators)", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[:1]
    (tmp_path / "server").mkdir()
    server = LiveServer(db.url.render_as_string(hide_password=False), tmp_path / "server")
    server.start()
    try:
        make_camp(db, "torkham-1")
        admin = Admin(server.url, db)
        env = {**os.environ, "CODE": admin.code("torkham-1")["code"]}
        admin.close()
        script = tmp_path / "example.py"
        script.write_text(code.replace("http://127.0.0.1:8000", server.url))
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "document_type invalid_choice",
        "['Mohammad Karimi']",
        "4 4 0 0",
    ]
