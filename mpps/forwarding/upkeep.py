"""The forwarder's periodic upkeep (``forwarding_upkeep`` in RIS_SCHEDULER_JOBS).

- delete spool files whose instances every PACS committed, once the retention has passed;
- ask again for storage commitments whose report never came (RIS_FORWARD_COMMIT_TIMEOUT_SECONDS),
  and ask for stored instances whose N-ACTION was never sent (a crash in between);
- queue a store job for pending deliveries that have none;
- delete spool files no row refers to (a crash between writing a file and recording it).
"""

from __future__ import annotations

import logging

from mpps.forwarding import services

logger = logging.getLogger("forwarding.upkeep")


def run() -> None:
    purged = services.purge_spool()
    expired = services.expire_commitments() + services.adopt_uncommitted()
    queued = services.requeue_orphans()
    purged += services.sweep_spool()
    if purged or expired or queued:
        logger.info(
            "forwarding upkeep: %d spool files deleted, %d commitments asked again, "
            "%d store jobs queued",
            purged,
            expired,
            queued,
        )
