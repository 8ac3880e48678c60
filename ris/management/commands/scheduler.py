import datetime as dt
import logging

from apscheduler.schedulers.background import BackgroundScheduler
from django.conf import settings
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
        stood_down = False
        while not stop.is_set:
            # A leader that just lost its lock lets the standbys take over first: its own
            # database session is the one that failed, so it should not win the race back.
            if stood_down and stop.wait(2 * options["standby_poll"]):
                break
            lock = LeaderLock()
            if not self._wait_for_leadership(lock, stop, options["standby_poll"]):
                break
            scheduler = self._start_jobs()
            self.stdout.write(f"scheduler leader, {len(configured_jobs())} job(s)")
            self.stdout.flush()
            while not stop.wait(settings.RIS_SCHEDULER_LOCK_CHECK_SECONDS):
                if not lock.still_held():
                    logger.error("scheduler lost its leader lock (database session ended): "
                                 "stopping its jobs and standing by")
                    self.stdout.write("scheduler lost its lock: standing down")
                    self.stdout.flush()
                    stood_down = True
                    break
            # Jobs are idempotent and claim work with a lease: one cut short here is taken up
            # again by the next leader, so the scheduler does not wait for a slow peer.
            scheduler.shutdown(wait=False)
            lock.release()
        exit_now()

    def _wait_for_leadership(self, lock: LeaderLock, stop: StopFlag, poll: float) -> bool:
        announced = False
        while True:
            try:
                acquired = lock.try_acquire()
            except Exception as exc:  # noqa: BLE001 - database down: stay standby, try again
                logger.warning("scheduler cannot reach the database for its lock: %s", exc)
                acquired = False
            if acquired:
                connection.close()
                return True
            if not announced:
                self.stdout.write("scheduler standby: another scheduler leads this database")
                self.stdout.flush()
                announced = True
            if stop.wait(poll):
                return False

    def _start_jobs(self) -> BackgroundScheduler:
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
        return scheduler
