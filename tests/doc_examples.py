"""Running the examples of a document (docs/dicomweb.md, docs/fhir.md) as they are written.

Each example is a fenced ``sh`` block preceded by ``<!-- example STATUS -->``, or a ``python``
block preceded by ``<!-- example python -->``. A shell example is run by bash with the
document's variables in the environment and ``curl`` wrapped so that it prints the HTTP status
it got (and keeps the body for the failure message); the status must be the one the marker
names. A Python example is run by this interpreter and must exit 0. So an example that drifts
from the code fails its test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
_EXAMPLE = re.compile(r"<!-- example (\w+) -->\n```(sh|python)\n(.*?)```", re.S)
#: ``curl`` as the examples call it, printing the status after a line of the body.
_CURL = """
curl() {
  command curl -sS -o "$EXAMPLE_BODY" -w '%{http_code}' "$@"
}
"""


def examples(document: str) -> list[tuple[str, str, str]]:
    """(expected status or "python", language, text) of each example, in document order."""
    return _EXAMPLE.findall((DOCS / document).read_text(encoding="utf-8"))


def run(expected: str, language: str, text: str, env: dict[str, str], tmp: Path) -> None:
    body = tmp / "body"
    body.write_text("")
    environment = {**os.environ, **env, "EXAMPLE_BODY": str(body)}
    if language == "python":
        done = subprocess.run([sys.executable, "-c", text], env=environment, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, f"{text}\n{done.stdout}\n{done.stderr}"
        return
    done = subprocess.run(["bash", "-c", _CURL + text], env=environment, capture_output=True,
                          text=True, timeout=60)
    answer = body.read_text(errors="replace")[:2000]
    assert (done.returncode, done.stdout.strip()) == (0, expected), (
        f"{text}\nstatus {done.stdout!r} (rc {done.returncode}) {done.stderr}\n{answer}"
    )
