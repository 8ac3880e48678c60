"""Domain events that other parts of ris react to inside the same transaction.

The HL7 outbound queue listens to ``order_status_changed`` and ``step_rescheduled`` to tell the
HIS, the PACS forwarder to performed-step events. Receivers run inside the service's
transaction, so a queued message commits or rolls back together with the change it reports
(nothing lost, nothing invented).
"""

from django.dispatch import Signal

#: sender=Order, kwargs: order, previous (OrderStatus), actor, reason
order_status_changed = Signal()
#: sender=ScheduledProcedureStep, kwargs: step, previous (StepStatus), actor, reason
step_status_changed = Signal()
#: sender=ScheduledProcedureStep, kwargs: step, actor: a step's time/station changed
step_rescheduled = Signal()
#: sender=Patient, kwargs: patient, actor: demographics changed (worklist items must follow)
patient_updated = Signal()
#: sender=Patient, kwargs: patient (the one that remains), actor, reason ("merge" for HL7 A40,
#: "identifier change" for A47), prior ({"id", "issuer"}: the merged-away ID, or the ID before
#: the change): images already received under the old identity must follow (the PACS forwarder
#: corrects what its spool holds: mpps.forwarding.services), and archives that keep their own
#: copy of the patient are told (ADT A40 / A47: ris.hl7.notifications)
patient_identity_changed = Signal()
#: sender=Patient, kwargs: patient, other, linked (True: A24 link, False: A37 unlink), actor: two
#: records of one person linked or unlinked; archives that keep patients are told (ADT A24/A37)
patients_linked = Signal()
#: sender=Order, kwargs: order, actor: request details (priority, physicians...) corrected
order_updated = Signal()
#: sender=Order, kwargs: order, actor: a new order with its procedures and steps (IHE SWF.b
#: RAD-4 receivers are told: ris.hl7.notifications.on_order_created)
order_created = Signal()
#: sender=AuditEvent, kwargs: events (the AuditEvent rows just stored, in their transaction):
#: the IHE ATNA audit messages to the hospital's audit repository (ris.atna.on_audit_recorded)
audit_recorded = Signal()
