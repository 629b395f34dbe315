"""Running `maas` in-process as a user would, capturing its exit code and output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from maas.cli import main


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)  # fails unless stdout is exactly one JSON document


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    """`maas ARGS...`: its exit code, stdout and stderr (the capture is emptied first)."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`run_cli` as a (code, stdout, stderr) tuple."""
    result = run_cli(capsys, *args)
    return result.code, result.out, result.err
