import datetime as dt
import logging

from apscheduler.schedulers.background import BackgroundScheduler
from django.core.management.base import BaseCommand
from django.db import connection

from ris.listeners import StopFlag, exit_now
from ris.scheduler import LeaderLock, configured_jobs, run_job

logger = logging.getLogger("ris.scheduler")


class Command(BaseCommand):
    help = "Run the background scheduler alone (one leader per database; others stand by)."

    def add_arguments(self, parser):
        parser.add_argument("--standby-poll", type=float, default=5.0)

    def handle(self, *args, **options):
        stop = StopFlag()
        lock = LeaderLock()
        announced = False
        while not lock.try_acquire():
            if not announced:
                self.stdout.write("scheduler standby: another scheduler leads this database")
                self.stdout.flush()
                announced = True
            if stop.wait(options["standby_poll"]):
                return
        connection.close()
        scheduler = BackgroundScheduler(timezone="UTC")
        for job in configured_jobs():
            scheduler.add_job(
                run_job,
                "interval",
                seconds=job.seconds,
                args=[job.func],
                id=job.id,
                max_instances=1,
                coalesce=True,
                next_run_time=dt.datetime.now(dt.UTC),
            )
        scheduler.start()
        self.stdout.write(f"scheduler leader, {len(configured_jobs())} job(s)")
        self.stdout.flush()
        stop.wait()
        # Jobs are idempotent and claim work with a lease: one cut short here is taken up again by
        # the next leader, so the scheduler does not wait for a slow peer before exiting.
        scheduler.shutdown(wait=False)
        lock.release()
        exit_now()
