import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from worklist.audit import Actor
from worklist.wlimport import import_worklist


class Command(BaseCommand):
    help = (
        "Import DICOM worklist files (.wl of DCMTK wlmscpfs or Orthanc): files, or folders "
        "searched for *.wl. Re-importing a file changes nothing unless its station or time "
        "changed (then the step follows it); a bad file is reported, skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
        parser.add_argument(
            "--progress",
            action="store_true",
            default=None,
            help="show progress (files done of total, rate, time left) even when stderr is not "
            "a terminal; by default it shows on a terminal only",
        )
        parser.add_argument("--no-progress", dest="progress", action="store_false")

    def handle(self, *args, **options):
        paths: list[Path] = options["paths"]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise CommandError(f"no such file or folder: {', '.join(missing)}")
        show = options["progress"]
        if show is None:
            show = sys.stderr.isatty()
        actor = Actor.system("import-worklist")
        if not show:
            report = import_worklist(paths, actor=actor)
        else:
            console = Console(file=self.stderr._out, force_terminal=True, width=100)
            with Progress(
                TextColumn("importing"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]} files/s"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=console,
                refresh_per_second=4,
            ) as bar:
                task = bar.add_task("import", total=None, rate="-")

                def progress(done: int, total: int) -> None:
                    elapsed = bar.tasks[task].elapsed or 0.0
                    rate = f"{done / elapsed:.0f}" if elapsed > 0 else "-"
                    bar.update(task, completed=done, total=total, rate=rate)

                report = import_worklist(paths, actor=actor, progress=progress)
        for name, message in report.errors:
            self.stderr.write(f"{name}: {message}")
        self.stdout.write(
            f"{report.created} imported, {report.unchanged} unchanged, "
            f"{len(report.errors)} failed; {report.updated} updated (new station or time); "
            f"{len(report.stations_created)} new station(s)"
        )
        if report.errors:
            sys.exit(1)
