"""Sending a hand-built DIMSE request on a pynetdicom association, for tests that need bytes no
encoder would produce."""

from __future__ import annotations

import time


def exchange(assoc, request, context_id: int):
    """Send ``request`` and return the first response primitive.

    pynetdicom's association reactor would take the response for itself: it is paused the way
    pynetdicom's own ``send_*`` methods pause it.
    """
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.0001)
    try:
        assoc.dimse.send_msg(request, context_id)
        _, rsp = assoc.dimse.get_msg(block=True)
    finally:
        assoc._reactor_checkpoint.set()
    assert rsp is not None, "no response from ris"
    return rsp
