"""Service-level state: liveness of the listeners that are not HTTP-reachable from the web child."""

from django.db import models


class Heartbeat(models.Model):
    """The last time a background listener (the scheduler) proved it was alive."""

    name = models.CharField(max_length=32, primary_key=True)
    beat_at = models.DateTimeField()
    detail = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.beat_at:%H:%M:%S}"
