"""Order status to the HIS (IHE RAD-3 Order Status Update): ORM^O01 / OMG^O19 with ORC-1 SC / OC.

``on_order_status_changed`` receives ``worklist.signals.order_status_changed`` inside the
service's transaction and queues one ``hl7.order_status`` job per active HL7Destination
(``ris.outbound_queue``): the message commits or rolls back together with the change it reports. The
payload is a snapshot of the order at that moment, so a message delivered after a retry still
says what was true when it was queued.

``on_step_rescheduled`` does the same for ``worklist.signals.step_rescheduled`` (a step booked or
moved to a new time or station: web calendar, REST API): ORC-1 SC with the order's current ORC-5,
which a move does not change, and the new schedule of every procedure (ORC-7.4/.5 and OBR-27.4/.5
in v2.3.x, TQ1-7/-8 in v2.5.x). Every status message carries the schedule the same way, so the
HIS reads one place whatever the reason of the message. One booking or move is one message: it
never changes the order's status too (unscheduled, scheduled, arrived and ready steps all make an
order SC, ``worklist.states.derive_order_status``).

Changes caused by the HIS itself (its CA/DC/SC, and the new time of its XO) are not echoed back:
the HIS already has our ACK for them, and an XO is applied at exactly the time it asked for.
A cancel decided in ris is ORC-1 OC (ORC-5 CA); any other change is ORC-1 SC with ORC-5
SC / IP / CM / DC.

All messages of one order to one destination share an ordering key (``<destination>:order:<id>``),
so the queue delivers them in the order they were queued (``ris.outbound_queue``).

Messages are built with hl7apy: they are few (one per status change), and its typed message
structures per version (ORM_O01 for v2.3-2.4, OMG_O19 for v2.5) keep segment order and groups
right. MSH-10 is ``RIS<job id>``: a resend after a lost ACK carries the same control ID, so the
HIS can drop it as a duplicate.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import time
from collections.abc import Callable

from django.utils import timezone
from hl7apy.core import Message as HL7ApyMessage

from ris import outbound_queue
from ris.hl7 import charsets, er7
from ris.hl7.framing import END, frame
from ris.models import HL7Destination, OutboundJob
from worklist.models import AuditEvent, Order, OrderStatus, ScheduledProcedureStep, StepStatus

KIND = "hl7.order_status"
#: Patient updates (ADT) to archives that keep their own copy of the patient
PATIENT_KIND = "hl7.patient"
#: ADT event and message structure of each patient change (HL7 v2.5.1 chapter 3)
ADT_EVENTS = {
    "update": ("A08", "ADT_A01"),
    "merge": ("A40", "ADT_A39"),
    "identifier": ("A47", "ADT_A30"),
    "link": ("A24", "ADT_A24"),
    "unlink": ("A37", "ADT_A37"),
}


def on_patient_updated(sender, patient, actor, **kwargs):
    """Demographics changed: ADT^A08 to the destinations that keep patients."""
    _queue_patient(patient, "update")


def on_patient_identity_changed(sender, patient, actor, reason: str, prior=None, **kwargs):
    """A merge or an identifier change: ADT^A40 / A47 to the destinations that keep patients,
    also when the HIS caused it (they did not hear it)."""
    _queue_patient(patient, "merge" if reason == "merge" else "identifier", prior=prior)


def on_patients_linked(sender, patient, other, linked: bool, actor, **kwargs):
    """A link or an unlink of two records of one person: ADT^A24 / A37."""
    _queue_patient(patient, "link" if linked else "unlink", other=other)


def patient_payload(patient, change: str, *, prior=None, other=None) -> dict:
    """The snapshot an ADT of a patient change carries (``build_adt``)."""
    return {
        "change": change,
        "patient": _patient(patient),
        "prior": prior or {},
        "other": _patient(other) if other is not None else None,
        "changed_at": timezone.localtime().strftime("%Y%m%d%H%M%S"),
    }


def _queue_patient(patient, change: str, *, prior=None, other=None) -> None:
    destinations = list(
        HL7Destination.objects.filter(active=True, send_patient_updates=True)
        .values_list("name", flat=True)
    )
    if not destinations:
        return
    data = patient_payload(patient, change, prior=prior, other=other)
    for name in destinations:
        outbound_queue.enqueue(
            kind=PATIENT_KIND, destination=name, payload=data,
            ordering_key=outbound_queue.ordering_key(name, "patient", patient.pk),
        )


def on_order_created(sender, order: Order, actor, **kwargs):
    """IHE SWF.b RAD-4: the Image Manager (and other SWF.b receivers) learn every new order with
    the identifiers ris assigned, whoever placed it (the HIS's own orders most of all)."""
    _queue_swf_b(order.pk, lambda: swf_b_payload(order, "NW"))


def on_order_updated(sender, order: Order, actor, **kwargs):
    """IHE SWF.b RAD-13 procedure update: the request details (priority, reason, physicians),
    an exam (a new OBR-4) or a step's location, protocol or station changed. Only SWF.b
    receivers hear it: the status messages to the HIS carry status and schedule (RAD-3)."""
    order_id = order.pk
    _queue_swf_b(order_id, lambda: swf_b_payload(
        Order.objects.select_related("patient").get(pk=order_id), "XO"
    ))


def swf_b_payload(order: Order, order_control: str, *, reason: str = "") -> dict:
    """The snapshot of an OMI^O23 to an SWF.b receiver: ORC-1 NW (RAD-4), XO or CA (RAD-13)."""
    return {**snapshot(order, reason=reason), "order_control": order_control}


def on_order_status_changed(sender, order: Order, previous, actor, reason: str = "", **kwargs):
    ended = (OrderStatus.CANCELED, OrderStatus.DISCONTINUED)
    if order.status in ended:
        # RAD-13 to SWF.b receivers, also when the HIS cancelled: they did not hear it.
        _queue_swf_b(order.pk, lambda: swf_b_payload(order, "CA", reason=reason))
    elif previous in ended:
        # The desk took back its cancel the same day (services.order_cancel_undo, step_undo):
        # the receivers dropped the order on CA, so it reaches them again as new (RAD-4).
        _queue_swf_b(order.pk, lambda: swf_b_payload(order, "NW"))
    if _caused_by_the_his(actor):
        return

    def payload() -> dict:
        name = getattr(actor, "name", "")
        return snapshot(order, previous=str(previous), reason=reason, actor=name)

    _queue(order.pk, payload)


def on_step_rescheduled(sender, step: ScheduledProcedureStep, actor, **kwargs):
    """A step was booked or moved: tell the HIS its new time, with the order status unchanged."""
    order_id = step.requested_procedure.order_id

    def procedure_update() -> dict:
        order = Order.objects.select_related("patient").get(pk=order_id)
        return swf_b_payload(order, "XO")

    _queue_swf_b(order_id, procedure_update)  # RAD-13 procedure update
    if _caused_by_the_his(actor):
        return

    def payload() -> dict:
        order = Order.objects.select_related("patient").get(pk=order_id)
        data = snapshot(order, previous=order.status, actor=getattr(actor, "name", ""))
        data["event"] = "reschedule"
        data["sps_id"] = step.sps_id
        return data

    _queue(order_id, payload)


def _caused_by_the_his(actor) -> bool:
    return getattr(actor, "type", "") == AuditEvent.ActorType.HL7


def _queue(order_id: int, payload: Callable[[], dict]) -> None:
    """One job per active destination, in the caller's transaction, keyed by order for ordering.

    ``payload`` is only called when there is a destination: without one a change costs a query.
    """
    destinations = list(
        HL7Destination.objects.filter(
            active=True, send_order_status=True, swf_b_omi=False
        ).values_list("name", flat=True)
    )
    if not destinations:
        return
    data = payload()
    for name in destinations:
        outbound_queue.enqueue(
            kind=KIND,
            destination=name,
            payload=data,
            ordering_key=outbound_queue.ordering_key(name, "order", order_id),
        )


#: Whether any SWF.b receiver is configured, read once per few seconds: ``on_order_created`` runs
#: for every new order and most departments have none (the HL7 NW path counts its statements).
#: Only "none" is trusted from the cache: when there are receivers their names are read again
#: in the caller's transaction, so a receiver removed or switched off in another process (the
#: admin's ``RisConfig`` signal reaches only its own) never gets a job. A receiver added
#: elsewhere is seen within ``_SWF_B_CACHE_SECONDS``.
_SWF_B_CACHE_SECONDS = 5.0
_swf_b_cache: list = []


def forget_swf_b(**_signal) -> None:
    """Drop the cached SWF.b answer (connected to HL7Destination saves in ``RisConfig``)."""
    _swf_b_cache.clear()


def _swf_b_destinations() -> list[str]:
    now = time.monotonic()
    if _swf_b_cache and now - _swf_b_cache[0] < _SWF_B_CACHE_SECONDS and not _swf_b_cache[1]:
        return []
    names = list(
        HL7Destination.objects.filter(active=True, swf_b_omi=True).values_list("name", flat=True)
    )
    _swf_b_cache[:] = [now, bool(names)]
    return names


def _queue_swf_b(order_id: int, payload: Callable[[], dict]) -> None:
    """One OMI^O23 job per active SWF.b destination (same queue, same per-order ordering)."""
    destinations = _swf_b_destinations()
    if not destinations:
        return
    data = payload()
    for name in destinations:
        outbound_queue.enqueue(
            kind=KIND, destination=name, payload=data, ordering_key=f"{name}:order:{order_id}"
        )


def snapshot(order: Order, *, previous: str = "", reason: str = "", actor: str = "") -> dict:
    """The facts the status message carries, as they are now (JSON)."""
    patient = order.patient
    status = OrderStatus(order.status)
    procedures = []
    for procedure in order.procedures.all().order_by("pk").prefetch_related("steps__station"):
        steps = sorted(procedure.steps.all(), key=lambda step: step.pk)  # the prefetched ones
        procedures.append(
            {
                "code": procedure.code_value,
                "meaning": procedure.code_meaning,
                "scheme": procedure.code_scheme,
                "requested_procedure_id": procedure.requested_procedure_id,
                "study_instance_uid": procedure.study_instance_uid,
                "sps_ids": [s.sps_id for s in steps],
                "modality": next((s.modality for s in steps), ""),
                # Per step, for the IPC segments of OMI^O23 (IHE SWF.b)
                "steps": [
                    {
                        "sps_id": s.sps_id,
                        "modality": s.modality,
                        "station_ae": s.station.ae_title if s.station else "",
                        "station_name": s.station.station_name if s.station else "",
                        "location": s.location,
                        "protocol_codes": s.protocol_codes,
                        "status": s.status,
                    }
                    for s in steps
                ],
                **_schedule(steps),
            }
        )
    return {
        "order_id": order.pk,
        "order_control": "OC" if status == OrderStatus.CANCELED else "SC",
        "order_status": status.value,
        "previous": previous,
        "reason": reason[:200],
        "actor": actor[:100],
        "placer_number": order.placer_order_number,
        "placer_issuer": order.placer_issuer,
        "filler_number": order.filler_order_number or order.accession_number,
        "accession_number": order.accession_number,
        "changed_at": timezone.localtime().strftime("%Y%m%d%H%M%S"),
        "patient": _patient(patient),
        "procedures": procedures,
    }


def _patient(patient) -> dict:
    return {
        "id": patient.patient_id,
        "issuer": patient.issuer,
        "alphabetic": patient.name_alphabetic,
        "ideographic": patient.name_ideographic,
        "birth_date": _birth_dtm(patient),
        "sex": patient.sex,
        "other_ids": patient.other_ids or [],
    }


def _schedule(steps) -> dict:
    """{"start", "end"} of a procedure (department time, HL7 TS), from its steps not cancelled.

    A procedure normally has one step; with several, it runs from the first start to the last end.
    """
    timed = [s for s in steps if s.scheduled_start and s.status != StepStatus.CANCELED]
    if not timed:
        return {}
    start = min(s.scheduled_start for s in timed)
    ends = [s.scheduled_end for s in timed if s.scheduled_end]
    return {
        "start": _ts(start),
        "end": _ts(max(ends)) if ends else "",
    }


def _ts(moment: dt.datetime) -> str:
    # No offset, like ORC-9 and MSH-7: the HIS and ris share the department's clock
    # (RIS_TIME_ZONE), and inbound times without an offset are read in it too.
    return timezone.localtime(moment).strftime("%Y%m%d%H%M%S")


def _birth_dtm(patient) -> str:
    """PID-7 with the precision ris knows: ``1950`` for a birth year (DTM allows it)."""
    if not patient.birth_date:
        return ""
    return patient.birth_date.strftime(
        {"Y": "%Y", "M": "%Y%m"}.get(patient.birth_date_precision, "%Y%m%d")
    )


def _xpn(pn_group: str, representation: str, delims: er7.Delimiters) -> str:
    """A DICOM PN group (family^given^middle^prefix^suffix) as an HL7 XPN repetition."""
    c = [er7.escape(part, delims) for part in pn_group.split("^")] + [""] * 5
    comp = delims.component
    return comp.join([c[0], c[1], c[2], c[4], c[3], "", "L", representation]).rstrip(comp)


def pid_identifiers(patient: dict, delims: er7.Delimiters) -> str:
    """PID-3: the patient ID in ris's domain first, then the IDs of the other domains ris keeps
    (Other Patient IDs), each ID^^^issuer^type. Records linked by A24 are other records of the
    person, not identifiers of this one: they are left out."""
    esc = lambda value: er7.escape(str(value or ""), delims)  # noqa: E731
    comp = delims.component
    ids = [comp.join([esc(patient["id"]), "", "", esc(patient["issuer"])]).rstrip(comp)]
    for other in patient.get("other_ids") or []:
        if other.get("type") == "linked" or not other.get("id"):
            continue
        ids.append(comp.join([esc(other["id"]), "", "", esc(other.get("issuer")),
                              esc(other.get("type"))]).rstrip(comp))
    return delims.repetition.join(ids)


def order_segments(
    data: dict,
    delims: er7.Delimiters,
    *,
    filler_application: str,
    order_control: str,
    timing: bool,
    ipc: bool,
    obr_identifiers: bool = False,
    quantity_timing: bool = False,
) -> list[str]:
    """PID and, per requested procedure, ORC [TQ1] OBR [IPC...] of an order snapshot (ER7).

    One writer for the OMI^O23 sent to SWF.b receivers and for the response group of the
    application acknowledgements (``ris.hl7.responses``), so both say the same of an order:
    ORC-2 placer, ORC-3 filler^application, ORC-5 status; TQ1-7/-8 the schedule (``timing``);
    OBR-4 the code, OBR-24 the modality, OBR-18/-19/-20 accession, requested procedure ID and
    SPS ID (``obr_identifiers``: where the message has no IPC); one IPC per step (``ipc``);
    ORC-7.4/.5 and OBR-27.4/.5 the schedule (``quantity_timing``: v2.3.x, which has no TQ1).
    """
    esc = lambda value: er7.escape(str(value or ""), delims)  # noqa: E731
    comp, sep = delims.component, delims.field

    def segment(name: str, fields: dict[int, str]) -> str:
        last = max(fields) if fields else 0
        return sep.join([name, *(fields.get(n, "") for n in range(1, last + 1))])

    patient = data["patient"]
    names = []
    if patient.get("alphabetic"):
        names.append(_xpn(patient["alphabetic"], "A", delims))
    if patient.get("ideographic"):
        names.append(_xpn(patient["ideographic"], "I", delims))
    segments = [
        segment("PID", {
            1: "1",
            3: pid_identifiers(patient, delims),
            5: delims.repetition.join(names),
            7: patient.get("birth_date", ""),
            8: patient.get("sex", ""),
        }),
    ]
    placer = f"{esc(data['placer_number'])}{comp}{esc(data['placer_issuer'])}".rstrip(comp)
    filler = f"{esc(data['filler_number'])}{comp}{esc(filler_application)}".rstrip(comp)
    for index, procedure in enumerate(data["procedures"] or [{}], start=1):
        legacy_timing = ""
        if quantity_timing and procedure.get("start"):
            legacy_timing = f"{comp * 3}{procedure['start']}{comp}{procedure.get('end', '')}"
            legacy_timing = legacy_timing.rstrip(comp)
        orc = {1: order_control, 2: placer, 3: filler, 5: data["order_status"],
               9: data.get("changed_at", "")}
        if legacy_timing:
            orc[7] = legacy_timing
        segments.append(segment("ORC", orc))
        if timing and procedure.get("start"):
            segments.append(segment("TQ1", {1: "1", 7: procedure["start"],
                                            8: procedure.get("end", "")}))
        code = comp.join([esc(procedure.get("code")), esc(procedure.get("meaning")),
                          esc(procedure.get("scheme"))])
        obr = {1: str(index), 2: placer, 3: filler, 4: code.rstrip(comp) or comp,
               24: esc(procedure.get("modality"))}
        if obr_identifiers:
            obr[18] = esc(data["accession_number"])
            obr[19] = esc(procedure.get("requested_procedure_id"))
            obr[20] = esc((procedure.get("sps_ids") or [""])[0])
        if legacy_timing:
            obr[27] = legacy_timing
        segments.append(segment("OBR", obr))
        if not ipc:
            continue
        steps = procedure.get("steps") or [{"sps_id": s} for s in procedure.get("sps_ids", [])]
        for step in steps:
            protocols = delims.repetition.join(
                comp.join([esc(c.get("value")), esc(c.get("meaning")), esc(c.get("scheme"))])
                for c in step.get("protocol_codes", [])
            )
            segments.append(segment("IPC", {
                1: esc(data["accession_number"]),
                2: esc(procedure.get("requested_procedure_id")),
                3: esc(procedure.get("study_instance_uid")),
                4: esc(step.get("sps_id")),
                5: esc(step.get("modality") or procedure.get("modality")),
                6: protocols,
                7: esc(step.get("station_name")),
                8: esc(step.get("location")),
                9: esc(step.get("station_ae")),
            }))
    return segments


def build_omi(job: OutboundJob, destination: HL7Destination) -> tuple[str, str]:
    """(ER7 text, control ID) of the OMI^O23 (v2.5.1) of ``job`` for an IHE SWF.b receiver.

    IHE RAD-TF-2 4.4 (RAD-4, ORC-1 NW) and 4.13 (RAD-13, ORC-1 XO / CA): one ORC, TQ1, OBR per
    requested procedure and one IPC per step: IPC-1 accession, -2 requested procedure ID, -3
    Study Instance UID, -4 SPS ID, -5 modality, -6 protocol code, -7 station name, -8 location,
    -9 station AE title: the values the modality will see on the worklist. Written by hand (the
    structure is fixed and short) with the same escaping as the status messages.
    """
    data = job.payload
    delims = er7.Delimiters()
    esc = lambda value: er7.escape(str(value or ""), delims)  # noqa: E731
    control_id = f"RIS{job.pk}"
    msh = [
        "MSH", delims.encoding_characters, esc(destination.sending_application),
        esc(destination.sending_facility), esc(destination.receiving_application),
        esc(destination.receiving_facility),
        data.get("changed_at") or timezone.localtime().strftime("%Y%m%d%H%M%S"), "",
        "OMI^O23^OMI_O23", control_id, "P", "2.5.1",
    ]
    if destination.charset:
        msh += ["", "", "", "", "", charsets.msh18_for(destination.charset)]
    segments = ["|".join(msh), *order_segments(
        data, delims, filler_application=destination.sending_application,
        order_control=data.get("order_control", "NW"), timing=True, ipc=True,
    )]
    return "\r".join(segments) + "\r", control_id


def build_adt(job: OutboundJob, destination: HL7Destination) -> tuple[str, str]:
    """(ER7 text, control ID) of the ADT of a patient change, in the destination's version.

    MSH, EVN, PID (every identifier ris keeps, name, birth date, sex) and: PV1 ``N`` (no
    visit: A08's structure needs one), MRG-1 the prior ID (A40, A47), the second patient's PID
    (A24, A37).
    """
    data = job.payload
    delims = er7.Delimiters()
    esc = lambda value: er7.escape(str(value or ""), delims)  # noqa: E731
    event, structure = ADT_EVENTS[data["change"]]
    version = destination.version
    control_id = f"RIS{job.pk}"
    changed_at = data.get("changed_at") or timezone.localtime().strftime("%Y%m%d%H%M%S")
    msh = [
        "MSH", delims.encoding_characters, esc(destination.sending_application),
        esc(destination.sending_facility), esc(destination.receiving_application),
        esc(destination.receiving_facility), changed_at, "",
        f"ADT^{event}^{structure}" if version >= "2.4" else f"ADT^{event}",
        control_id, "P", version,
    ]
    if destination.charset:
        msh += ["", "", "", "", "", charsets.msh18_for(destination.charset)]

    def pid(patient: dict, set_id: int) -> str:
        names = []
        if patient.get("alphabetic"):
            names.append(_xpn(patient["alphabetic"], "A", delims))
        if patient.get("ideographic"):
            names.append(_xpn(patient["ideographic"], "I", delims))
        fields = ["PID", str(set_id), "", pid_identifiers(patient, delims), "",
                  delims.repetition.join(names), "", patient.get("birth_date", ""),
                  patient.get("sex", "")]
        return "|".join(fields).rstrip("|")

    segments = ["|".join(msh), f"EVN|{event}|{changed_at}", pid(data["patient"], 1)]
    if data["change"] == "update":
        segments.append("PV1|1|N")
    elif data["change"] in ("merge", "identifier"):
        prior = data.get("prior") or {}
        segments.append(f"MRG|{esc(prior.get('id'))}^^^{esc(prior.get('issuer'))}".rstrip("^"))
    elif data.get("other"):
        segments.append(pid(data["other"], 2))
    return "\r".join(segments) + "\r", control_id


def build_message(job: OutboundJob, destination: HL7Destination) -> tuple[str, str]:
    """(ER7 text, control ID) of the status message of ``job`` for ``destination``."""
    if job.kind == PATIENT_KIND:
        return build_adt(job, destination)
    if destination.swf_b_omi:
        return build_omi(job, destination)
    data = job.payload
    delims = er7.Delimiters()
    esc = lambda value: er7.escape(str(value or ""), delims)  # noqa: E731
    v25 = destination.version >= "2.5"
    structure = "OMG_O19" if v25 else "ORM_O01"
    message = HL7ApyMessage(structure, version=destination.version)
    control_id = f"RIS{job.pk}"
    msh = message.msh
    msh.msh_3 = esc(destination.sending_application)
    msh.msh_4 = esc(destination.sending_facility)
    msh.msh_5 = esc(destination.receiving_application)
    msh.msh_6 = esc(destination.receiving_facility)
    msh.msh_7 = data.get("changed_at") or timezone.localtime().strftime("%Y%m%d%H%M%S")
    msh.msh_9 = "OMG^O19^OMG_O19" if v25 else "ORM^O01"
    msh.msh_10 = control_id
    msh.msh_11 = "P"
    if destination.charset:
        msh.msh_18 = charsets.msh18_for(destination.charset)
    pid_parent = message if v25 else message.add_group("ORM_O01_PATIENT")
    pid = pid_parent.pid
    patient = data["patient"]
    for identifier in pid_identifiers(patient, delims).split(delims.repetition):
        pid.add_field("PID_3").value = identifier  # one repetition each, as PID-5 below
    names = []
    if patient.get("alphabetic"):
        names.append(_xpn(patient["alphabetic"], "A", delims))
    if patient.get("ideographic"):
        names.append(_xpn(patient["ideographic"], "I", delims))
    for name in names:  # one repetition each (a "~" in a value would be escaped as data)
        pid.add_field("PID_5").value = name
    if patient.get("birth_date"):
        pid.pid_7 = patient["birth_date"]
    if patient.get("sex"):
        pid.pid_8 = patient["sex"]
    placer = f"{esc(data['placer_number'])}^{esc(data['placer_issuer'])}".rstrip("^")
    filler = f"{esc(data['filler_number'])}^{esc(destination.sending_application)}".rstrip("^")
    for index, procedure in enumerate(data["procedures"] or [{}], start=1):
        group = message.add_group(f"{structure}_ORDER")
        orc = group.orc
        orc.orc_1 = data["order_control"]
        if placer:
            orc.orc_2 = placer
        orc.orc_3 = filler
        orc.orc_5 = data["order_status"]
        orc.orc_9 = data.get("changed_at", "")
        if data.get("reason") and data["order_control"] == "OC":
            orc.orc_16 = f"^{esc(data['reason'][:60])}"
        start, end = procedure.get("start", ""), procedure.get("end", "")
        # The schedule: TQ1-7/-8 from v2.5 (where ORC-7 and OBR-27 are kept only for backward
        # compatibility), ORC-7.4/.5 and OBR-27.4/.5 before it; the same places ris reads.
        timing = f"^^^{start}^{end}".rstrip("^") if start else ""
        if start and v25:
            tq1 = group.add_group(f"{structure}_TIMING").tq1  # between ORC and OBR
            tq1.tq1_1 = "1"
            tq1.tq1_7 = start
            if end:
                tq1.tq1_8 = end
        elif timing:
            orc.orc_7 = timing
        detail = group if v25 else group.add_group("ORM_O01_ORDER_DETAIL")
        obr = detail.obr
        obr.obr_1 = str(index)
        if placer:
            obr.obr_2 = placer
        obr.obr_3 = filler
        code = procedure.get("code", "")
        obr.obr_4 = (
            f"{esc(code)}^{esc(procedure.get('meaning', ''))}^{esc(procedure.get('scheme', ''))}"
        ).rstrip("^") or "^"
        obr.obr_18 = esc(data["accession_number"])
        if procedure.get("requested_procedure_id"):
            obr.obr_19 = esc(procedure["requested_procedure_id"])
        if procedure.get("sps_ids"):
            obr.obr_20 = esc(procedure["sps_ids"][0])
        if procedure.get("modality"):
            obr.obr_24 = esc(procedure["modality"])
        if timing and not v25:
            obr.obr_27 = timing
    return message.to_er7(), control_id


def read_ack(reply: bytes, codec: str) -> tuple[str, str, str]:
    """(MSA-1, MSA-2, error text) of an ACK (or ORR/ORG) the HIS sent back."""
    parsed = er7.parse(reply.decode(codec, errors="replace"), codec)
    msa = parsed.first("MSA")
    if msa is None:
        raise ValueError("the reply has no MSA segment")
    err = parsed.first("ERR")
    text = msa.get(3)
    if err is not None:
        text = " ".join(x for x in (text, err.get(8), err.get(3, 2), err.get(1, 4, 2)) if x)
    return msa.get(1).upper(), msa.get(2), text


def send_order_status(job: OutboundJob) -> str:
    """The sender of ``hl7.order_status`` and ``hl7.patient`` jobs: deliver, wait for the
    ACK, judge it."""
    try:
        destination = HL7Destination.objects.get(name=job.destination)
    except HL7Destination.DoesNotExist:
        message = f"HL7 destination {job.destination!r} no longer exists"
        raise outbound_queue.Rejected(message) from None
    if not destination.active:
        raise outbound_queue.RetryLater(f"HL7 destination {destination.name} is not active")
    text, control_id = build_message(job, destination)
    codec = charsets.codec_for(destination.charset or "UNICODE UTF-8")
    reply = exchange(destination, text.encode(codec, errors="replace"))
    code, acked_id, error = read_ack(reply, codec)
    if acked_id and acked_id != control_id:
        raise outbound_queue.RetryLater(f"the ACK answers {acked_id!r}, not {control_id!r}")
    if code in ("AA", "CA"):
        return f"{code} {control_id}"
    if code in ("AE", "CE"):
        raise outbound_queue.Rejected(f"{destination.name} answered {code}: {error or 'no text'}")
    raise outbound_queue.RetryLater(f"{destination.name} answered {code or 'no MSA-1'}: {error}")


def exchange(destination: HL7Destination, payload: bytes) -> bytes:
    """Send one framed message and read one framed reply (MLLP), with the destination's timeout."""
    timeout = float(destination.ack_timeout_seconds or 30)
    deadline = dt.datetime.now() + dt.timedelta(seconds=timeout)
    with socket.create_connection((destination.host, destination.port), timeout=10) as raw_sock:
        sock: socket.socket = raw_sock
        if destination.use_tls:
            context = ssl.create_default_context()
            sock = context.wrap_socket(raw_sock, server_hostname=destination.host)
        sock.settimeout(timeout)
        sock.sendall(frame(payload))
        buffer = b""
        while END not in buffer:
            if dt.datetime.now() > deadline:
                raise TimeoutError("no ACK within the timeout")
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the HIS closed the connection before acknowledging")
            buffer += chunk
    start = buffer.find(b"\x0b")
    return buffer[start + 1 : buffer.find(END)]
