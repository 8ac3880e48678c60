"""``ris hl7-reprocess``: apply stored HL7 messages that failed (AE) again, oldest first.

For the day the catalogue lacked a procedure code or a CA arrived before its NW: fix the cause,
then reprocess. Nothing is sent to the HIS (it already had its AE); the stored ACK is replaced,
so a later resend of the same MSH-10 gets the answer that now holds.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ris.hl7.handler import reprocess
from ris.models import InboundMessage


class Command(BaseCommand):
    help = "Reprocess stored HL7 messages in ERROR (all, or the given ids), oldest first."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, help="message ids (default: every ERROR)")
        parser.add_argument("--sender", help="only messages of this sender (MSH-3|MSH-4)")
        parser.add_argument("--type", dest="message_type", help="only this type, e.g. ORM^O01")

    def handle(self, *args, ids, sender, message_type, **options):
        messages = InboundMessage.objects.filter(status=InboundMessage.Status.ERROR)
        if ids:
            messages = messages.filter(pk__in=ids)
            missing = set(ids) - set(messages.values_list("pk", flat=True))
            if missing:
                raise CommandError(
                    f"not stored in ERROR: {', '.join(map(str, sorted(missing)))}"
                )
        if sender:
            messages = messages.filter(sender=sender)
        if message_type:
            messages = messages.filter(message_type=message_type)
        done = failed = 0
        for message in messages.order_by("pk"):
            result = reprocess(message)
            if result.status == InboundMessage.Status.PROCESSED:
                done += 1
                self.stdout.write(f"{result.pk} {result.control_id}: processed")
            else:
                failed += 1
                self.stdout.write(
                    f"{result.pk} {result.control_id}: {result.ack_code} {result.error}"
                )
        self.stdout.write(f"{done} processed, {failed} still in error")
