import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from worklist.audit import Actor
from worklist.catalog import CatalogFormatError, import_catalog


class Command(BaseCommand):
    help = (
        "Load the procedure catalogue and stations from CSV "
        "(code,scheme,meaning,modality,duration_minutes,stations)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--encoding",
            default="",
            help="file encoding (default: UTF-8, or GB18030 when the file is not valid UTF-8)",
        )

    def handle(self, *args, **options):
        path: Path = options["file"]
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        try:
            if options["encoding"]:
                text = raw.decode(options["encoding"])
            else:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    text = raw.decode("gb18030")  # what a Chinese-locale Excel saves
        except (UnicodeDecodeError, LookupError) as exc:
            raise CommandError(f"{path}: {exc}") from exc
        interactive = sys.stdout.isatty()

        def progress(rows: int) -> None:
            if interactive:
                self.stdout.write(f"\r{rows} rows", ending="")

        try:
            report = import_catalog(text, actor=Actor.system(f"import-catalog {path.name}"),
                                    progress=progress)
        except CatalogFormatError as exc:
            raise CommandError(f"{path}: {exc}") from exc
        if interactive:
            self.stdout.write("")
        for line, message in report.errors:
            self.stderr.write(f"{path}:{line}: {message}")
        self.stdout.write(
            f"{report.loaded} procedure(s) loaded ({report.created} new, {report.updated} "
            f"updated), {len(report.devices_created)} new station(s), "
            f"{len(report.errors)} row(s) with errors"
        )
        if report.errors:
            sys.exit(1)
