import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from worklist.audit import Actor
from worklist.wlimport import import_worklist


class Command(BaseCommand):
    help = (
        "Import DICOM worklist files (.wl of DCMTK wlmscpfs or Orthanc): files, or folders "
        "searched for *.wl. Re-importing a file changes nothing; a bad file is reported, skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")

    def handle(self, *args, **options):
        paths: list[Path] = options["paths"]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise CommandError(f"no such file or folder: {', '.join(missing)}")
        interactive = sys.stderr.isatty()

        def progress(done: int, total: int) -> None:
            if interactive and (done == total or done % 25 == 0):
                width = 30
                filled = width * done // max(total, 1)
                bar = "#" * filled + "." * (width - filled)
                sys.stderr.write(f"\r[{bar}] {done}/{total}")
                sys.stderr.flush()

        report = import_worklist(paths, actor=Actor.system("import-worklist"), progress=progress)
        if interactive:
            sys.stderr.write("\n")
        for name, message in report.errors:
            self.stderr.write(f"{name}: {message}")
        self.stdout.write(
            f"{report.created} imported, {report.unchanged} unchanged, "
            f"{len(report.errors)} failed; {len(report.stations_created)} new station(s)"
        )
        if report.errors:
            sys.exit(1)
