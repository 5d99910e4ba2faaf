"""The layers of docs/architecture.md hold: `lint-imports` (import-linter, configured in
pyproject.toml) finds no import from a lower layer to a higher one, and none from the run-time
side to the authoring side. CI runs it too (.ci/run); this keeps the README's test command honest.
"""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _lint_imports() -> list[str]:
    found = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    return [found]


def test_import_contracts_are_kept():
    result = subprocess.run(  # noqa: S603
        [*_lint_imports(), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_sdk_reaches_compiler_and_client_only_through_entry_points():
    """The dependency inversion the layers rest on: both services are declared and load."""
    from mlpipe_provider.sdk import services

    assert type(services.compiler()).__module__ == "compiler.service"
    assert type(services.client()).__module__ == "mlpipe_provider.client.service"
