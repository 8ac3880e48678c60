"""``ris outbound``: look at the outbound queue, retry failed jobs, or run an extra drain worker."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ris import outbound_queue
from ris.listeners import StopFlag
from ris.models import OutboundJob
from worklist.audit import Actor


class Command(BaseCommand):
    help = (
        "Outbound queue: --list (failed and pending), --status (per destination), --retry [ids], "
        "--supersede ID... --reason TEXT, --drain [--once]."
    )

    def add_arguments(self, parser):
        parser.add_argument("--list", action="store_true", help="show pending and failed jobs")
        parser.add_argument(
            "--retry", nargs="*", type=int, metavar="ID", help="retry failed jobs (all if no id)"
        )
        parser.add_argument(
            "--supersede", nargs="+", type=int, metavar="ID",
            help="mark failed or pending jobs superseded by a later message (never sent; "
            "releases their order); needs --reason",
        )
        parser.add_argument("--reason", default="", help="with --supersede: why (audited)")
        parser.add_argument(
            "--status", action="store_true",
            help="per destination: waiting, failed, held back, oldest waiting, failing since",
        )
        parser.add_argument("--drain", action="store_true", help="deliver due jobs")
        parser.add_argument("--once", action="store_true", help="with --drain: one pass, exit")
        parser.add_argument("--poll", type=float, default=2.0, help="seconds between passes")

    def handle(self, *args, **options):
        if options["supersede"]:
            if not options["reason"].strip():
                raise CommandError("--supersede needs --reason (it is kept in the audit trail)")
            count = outbound_queue.supersede(
                options["supersede"], actor=Actor.system("ris outbound"), reason=options["reason"]
            )
            self.stdout.write(f"{count} job(s) superseded")
            if count < len(set(options["supersede"])):
                self.stderr.write("only PENDING and FAILED jobs can be superseded")
        if options["status"]:
            for status in outbound_queue.destination_status():
                data = status.as_json()
                self.stdout.write(
                    f"{status.destination:<16} waiting={status.waiting} failed={status.failed} "
                    f"held={status.held} oldest={data['oldest_waiting_seconds']}s "
                    f"down={data['down_seconds']}s{' ALERT' if status.alert else ''} "
                    f"{data['last_error'][:80]}"
                )
        if options["retry"] is not None:
            count = outbound_queue.retry(options["retry"] or None)
            self.stdout.write(f"{count} job(s) queued again")
        if options["list"]:
            jobs = OutboundJob.objects.exclude(state=OutboundJob.State.DONE).order_by("id")
            for job in jobs[:500]:
                self.stdout.write(
                    f"{job.pk:>8} {job.state:<11} {job.kind:<18} {job.destination:<16} "
                    f"attempts={job.attempts} next={job.next_attempt_at:%Y-%m-%d %H:%M:%S} "
                    f"{job.last_error[:80]}"
                )
        if options["drain"]:
            if options["once"]:
                self.stdout.write(f"{outbound_queue.drain()} job(s) handled")
                return
            stop = StopFlag()
            while not stop.is_set:
                outbound_queue.drain(time_budget=30.0)
                stop.wait(options["poll"])
