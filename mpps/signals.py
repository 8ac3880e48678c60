"""MPPS events other parts of ris react to, inside the transaction that stored them.

The PACS forwarder (IHE RAD-7 "forward" of the Performed Procedure Step Manager) listens to
``pps_received`` and queues the same N-CREATE / N-SET for the PACS; since receivers run inside the
service's transaction, a queued forward commits or rolls back together with the PPS it relays.
Step and order status changes caused by a PPS are announced by ``worklist.signals`` as usual.
"""

from django.dispatch import Signal

#: sender=PerformedProcedureStep, kwargs: pps, operation ("N-CREATE" or "N-SET"),
#: attributes (the accepted request's attribute list as DICOM JSON, without the attributes that
#: were ignored), actor. Sent for every accepted N-CREATE and N-SET.
pps_received = Signal()
#: sender=PerformedProcedureStep, kwargs: pps, steps (the steps just linked), actor: staff tied
#: an exception PPS to scheduled steps (the PACS may need the corrected order identifiers).
pps_linked = Signal()
