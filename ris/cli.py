"""``ris``: the one command of a ris installation.

``ris serve`` runs every listener; ``ris web|dicom|mllp|scheduler`` runs one; ``ris demo``,
``ris import-catalog`` and any other Django management command (``ris migrate``,
``ris createsuperuser``) pass through to Django. Flags that choose where data lives must be known
before Django reads its settings, so they are moved into the environment here.
"""

from __future__ import annotations

import os
import sys

#: flag -> environment variable, for the flags every listener understands.
FLAG_ENV = {
    "--data-dir": "RIS_DATA_DIR",
    "--http": "RIS_HTTP",
    "--dicom-port": "RIS_DICOM_PORT",
    "--ae-title": "RIS_AE_TITLE",
    "--mllp-port": "RIS_MLLP_PORT",
    "--database-url": "DATABASE_URL",
}


def _flags_to_environment(argv: list[str]) -> list[str]:
    """Remove the global flags from ``argv`` and export them, so children inherit them too."""
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in FLAG_ENV:
            if not eq:
                if i + 1 >= len(argv):
                    sys.exit(f"ris: {name} needs a value")
                value = argv[i + 1]
                i += 1
            os.environ[FLAG_ENV[name]] = value
        else:
            rest.append(arg)
        i += 1
    return rest


def main(argv: list[str] | None = None) -> None:
    args = _flags_to_environment(list(sys.argv[1:] if argv is None else argv))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ris.settings")
    if not args:
        args = ["help"]
    command, rest = args[0], args[1:]
    # Our own commands are spelt with hyphens on the command line (import-catalog).
    command = command.replace("-", "_") if not command.startswith("-") else command
    from django.core.management import execute_from_command_line

    execute_from_command_line(["ris", command, *rest])


if __name__ == "__main__":
    main()
