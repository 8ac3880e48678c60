"""The response group of an order's application acknowledgement: what ris made of the order.

A placer that asks for an application acknowledgement (MSH-16 in enhanced mode) or whose
HL7Sender has "application response" set gets, instead of a bare ACK, the response HL7 defines
for its order message, carrying the identifiers ris assigned so that it can store them at once
rather than wait for the first status message:

| order message | response | response group (per requested procedure) |
|---|---|---|
| ORM^O01 (v2.3.x, 2.4) | ORR^O02 (v2.3.1 4.2) | PID, ORC, OBR (schedule in ORC-7, OBR-27) |
| OMG^O19 (v2.5.x) | ORG^O20 (v2.5.1 4.4.2) | PID, ORC, TQ1, OBR |
| OMI^O23 | ORI^O24 (v2.5.1 4.4.11) | PID, ORC, TQ1, OBR, IPC per step |

ORC-1 is the response control of HL7 table 0119 (OK accepted, XR changed, CR cancelled, DR
discontinued; UA, UX, UC when refused), ORC-2 the placer order number, ORC-3 ris's filler order
number (the accession number unless the HIS gave one), ORC-5 the order status; OBR-18/-19/-20
the accession number, requested procedure ID and SPS ID (ORR, ORG), or IPC-1..9 (ORI). A refused
order is echoed with its ORC only (ORC-2/-3 as sent); ORI^O24 then has no response group (its
order group needs an OBR and an IPC ris does not have).
"""

from __future__ import annotations

from ris.hl7 import notifications
from ris.hl7.er7 import Delimiters, Message
from worklist.models import Order

#: ORC-1 of the response to each ORC-1 of the order message (HL7 table 0119)
ACCEPTED = {"NW": "OK", "XO": "XR", "CA": "CR", "DC": "DR", "SC": "OK"}
REFUSED = {"NW": "UA", "XO": "UX", "CA": "UC", "DC": "UD", "SC": "UA"}


def delimiters(header: dict[str, str]) -> Delimiters:
    enc = header.get("encoding") or "^~\\&"
    return Delimiters(
        field=header.get("separator") or "|",
        component=enc[0],
        repetition=enc[1] if len(enc) > 1 else "~",
        escape=enc[2] if len(enc) > 2 else "\\",
        subcomponent=enc[3] if len(enc) > 3 else "&",
    )


def accepted(header: dict[str, str], orders: list[tuple[Order, str]]) -> list[str]:
    """The response group for orders ris applied: (order, ORC-1 it was sent with), in the
    order of the message; an order named by several order groups is answered once."""
    kind = (header.get("message_type") or "").split(header.get("component") or "^")[0]
    delims = delimiters(header)
    filler_application = header.get("receiving_app") or "RIS"
    segments: list[str] = []
    seen: set[int] = set()
    for order, control in orders:
        if order.pk in seen:
            continue
        seen.add(order.pk)
        fresh = Order.objects.select_related("patient").get(pk=order.pk)
        data = notifications.snapshot(fresh)
        group = notifications.order_segments(
            data, delims, filler_application=filler_application,
            order_control=ACCEPTED.get(control, "OK"),
            timing=kind in ("OMG", "OMI"), ipc=kind == "OMI", obr_identifiers=kind != "OMI",
            quantity_timing=kind == "ORM",
        )
        # One PID per response: the first order's (one message is about one patient).
        segments.extend(group if not segments else group[1:])
    return segments


def refused(header: dict[str, str], message: Message | None) -> list[str]:
    """The response group of a refused order message: each ORC echoed with the "unable"
    control (UA, UX, UC, UD), its placer and filler numbers as sent. None for ORI^O24."""
    kind = (header.get("message_type") or "").split(header.get("component") or "^")[0]
    if message is None or kind == "OMI":
        return []
    delims = delimiters(header)
    sep = delims.field
    segments = []
    for orc in message.all("ORC"):
        # ORC-2/-3 are echoed raw: still escaped as the sender escaped them.
        control = orc.get(1).upper()
        segments.append(sep.join([
            "ORC", REFUSED.get(control, "UA"), orc.raw(2), orc.raw(3),
        ]).rstrip(sep))
    return segments
