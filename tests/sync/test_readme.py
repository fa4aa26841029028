"""The README's integrator example runs as printed."""

from __future__ import annotations

import re
from pathlib import Path


def test_the_integrator_example_runs(capsys) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## For integrators: sealing and opening a batch with campsync-sync", 1)[
        1
    ]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[:1]
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102 - our own README
    assert capsys.readouterr().out == "['patch']\n"
