"""HL7 v2 message -> worklist service calls: the one place where HL7 fields gain a meaning.

IHE RAD-TF-2 RAD-1/RAD-12 (ADT) and RAD-2/RAD-13 (ORM^O01 v2.3.x, OMG^O19 v2.5.x), as tabled in
docs/hl7-interface.md (section 4). Every write goes through ``worklist.services`` (and so through
the state machine and the audit trail); this module only reads fields and decides which service
to call. Where hospitals differ (which PID-3 repetition is the patient ID, where the start time
is) a setting decides, not code.

HL7 "no change" semantics: an empty field leaves the stored value alone; ``""`` (two double
quotes) clears it (v2.5 2.5.3).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import decimal
import re
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from ris.hl7.er7 import Message, Segment
from worklist import age, pn, services
from worklist.audit import Actor
from worklist.errors import DomainError, NotFound, UnknownProcedure
from worklist.models import (
    BirthDatePrecision,
    Device,
    Modality,
    Order,
    Patient,
    Priority,
    ProcedureOrderCode,
    ProcedureType,
    ScheduledProcedureStep,
)
from worklist.pn import PersonName
from worklist.states import SCHEDULABLE_STEP_STATUSES

SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1")
ADT_EVENTS = {"A01", "A03", "A04", "A05", "A08", "A11", "A24", "A31", "A37", "A40", "A47"}
#: ORM^O01 (v2.3.x/2.4), OMG^O19 (v2.5.x) and OMI^O23 (imaging order with IPC segments, IHE
#: Scheduled Workflow.b RAD-4/RAD-13, what dcm4chee-arc and many HIS send)
ORDER_TYPES = {("ORM", "O01"), ("OMG", "O19"), ("OMI", "O23")}

#: TQ .6 / TQ1-9 priority -> Requested Procedure Priority (IHE RAD-TF-2 Appendix B)
PRIORITIES = {
    "S": Priority.STAT,
    "A": Priority.HIGH,
    "R": Priority.ROUTINE,
    "P": Priority.HIGH,
    "C": Priority.HIGH,
    "T": Priority.MEDIUM,
}
#: PID-8 administrative sex -> Patient's Sex (0010,0040)
SEXES = {"M": "M", "F": "F", "O": "O", "A": "O", "U": "", "N": ""}
#: PV1-2 patient class, HL7 table 0004 (v2.5.1): another value is kept as sent, with a warning.
PATIENT_CLASSES = {"E", "I", "O", "P", "R", "B", "C", "N", "U"}
#: OBX-3 codes (LOINC) of body weight and height
WEIGHT_CODES = {"3141-9", "29463-7", "WEIGHT"}
HEIGHT_CODES = {"8302-2", "3137-7", "HEIGHT"}
#: OBX-3 codes of the patient's age (LOINC 30525-0 "Age", 21612-7 "Age - Reported"): HIS that
#: know no birth date send the stated age, with its unit in OBX-6 (UCUM a, mo, wk, d).
AGE_CODES = {"30525-0", "21612-7", "AGE"}

_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")


#: Warnings of the message being applied: (table 0357 code, text), each an ERR of severity W in
#: the AA. Collected here rather than threaded through every helper: apply() opens the list.
_warnings: contextvars.ContextVar[list[tuple[str, str]] | None] = contextvars.ContextVar(
    "hl7_warnings", default=None
)


def warn(code: str, text: str) -> None:
    """Note a value ris did not use (the message is still applied: AA with an ERR of severity W).

    For fields ris does not need to schedule the exam: HL7 tables such as 0001 (sex) are
    user-defined up to v2.5.1, so a site value (``1``/``2`` for male/female) is no reason to
    lose a registration, its visit and its orders.
    """
    collected = _warnings.get()
    if collected is not None:
        collected.append((code, text))


class HL7Error(Exception):
    """A message ris understood but cannot apply (AE), or will not process (AR).

    ``code`` is an HL7 table 0357 error condition; the text is written for the HIS engineer.
    """

    def __init__(self, text: str, code: str = "207", ack: str = "AE") -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.ack = ack


@dataclass
class Outcome:
    """What a message changed: the message store links to these."""

    patient: Patient | None = None
    orders: list[Order] = field(default_factory=list)
    #: ORC-1 of the order group each of ``orders`` came from (the application response's ORC-1)
    order_controls: list[str] = field(default_factory=list)
    note: str = ""
    #: (table 0357 code, text) of values ris ignored: ERR segments of severity W in the AA.
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def add(self, order: Order, control: str) -> None:
        self.orders.append(order)
        self.order_controls.append(control)

    @property
    def links(self) -> list[dict]:
        links = []
        if self.patient is not None:
            links.append({"type": "patient", "id": self.patient.pk, "key": self.patient.patient_id})
        for order in self.orders:
            links.append({"type": "order", "id": order.pk, "key": order.accession_number})
        return links


def check_supported(message: Message) -> None:
    """Raise an AR-level ``HL7Error`` for versions and types ris does not process."""
    version = message.version
    if version not in SUPPORTED_VERSIONS:
        raise HL7Error(
            f"HL7 version {version!r} (MSH-12) is not supported; use one of "
            f"{', '.join(SUPPORTED_VERSIONS)}",
            "203",
            "AR",
        )
    kind, event, _ = message.message_type
    if kind == "ADT":
        if event not in ADT_EVENTS:
            raise HL7Error(
                f"ADT event {event!r} is not processed by ris (supported: "
                f"{', '.join(sorted(ADT_EVENTS))})",
                "201",
                "AR",
            )
        return
    if (kind, event) not in ORDER_TYPES:
        raise HL7Error(
            f"message type {kind}^{event} (MSH-9) is not supported: ris takes ADT, ORM^O01, "
            "OMG^O19 and OMI^O23",
            "200",
            "AR",
        )


def apply(message: Message, *, actor: Actor) -> Outcome:
    """Apply a supported message through the services; raise HL7Error or DomainError to refuse.

    The caller holds the transaction: on an exception nothing of the message is kept.
    """
    collected: list[tuple[str, str]] = []
    token = _warnings.set(collected)
    try:
        outcome = _dispatch(message, actor)
    finally:
        _warnings.reset(token)
    # One ERR per distinct warning: a field read for every OBR must not repeat its warning.
    outcome.warnings = list(dict.fromkeys(collected + outcome.warnings))
    return outcome


def _dispatch(message: Message, actor: Actor) -> Outcome:
    kind, event, _ = message.message_type
    if kind == "ADT":
        if event in ("A01", "A04", "A05", "A08", "A31"):
            return _adt_register(message, actor)
        if event == "A40":
            return _adt_merge(message, actor)
        if event == "A47":
            return _adt_change_identifier(message, actor)
        if event in ("A24", "A37"):
            return _adt_link(message, actor, linked=event == "A24")
        return _adt_visit_event(message, event, actor)
    return _order_message(message, actor)


# --- values -----------------------------------------------------------------------------------


def _value(segment: Segment | None, n: int, component: int = 1, sub: int = 1) -> str | None:
    """A field for an update: None when empty (no change), "" when sent as "" (clear it)."""
    if segment is None:
        return None
    value = segment.get(n, component, sub)
    if value == "":
        return None
    if value == '""':
        return ""
    return value


#: DTM precision: how many of year, month, day, hour, minute, second were sent.
YEAR, MONTH, DAY, HOUR, MINUTE, SECOND = range(1, 7)


def parse_dtm(value: str, where: str) -> tuple[dt.datetime, int] | None:
    """An HL7 DTM/TS (``YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]``): (first instant, precision).

    Reduced precision is valid DTM (HL7 v2.5.1 2A.3.22): ``2013`` is the year 2013, returned as
    its first instant with precision YEAR so the caller can keep what was meant. Without an
    offset the time is in the department's zone (TIME_ZONE): that is what HIS feeds send. An
    offset must be a real one (hours below 24, minutes below 60): ``+9999`` is a data type
    error (AE 102), not an internal error.
    """
    value = value.strip()
    if not value or value == '""':
        return None
    match = _TS.match(value)
    if not match:
        raise HL7Error(f"{where} {value!r} is not an HL7 date/time (YYYY[MM[DD[HHMM[SS]]]])", "102")
    parts = match.groups()[:6]
    offset = match.group(7)
    precision = sum(1 for part in parts if part is not None)
    year, month, day, hour, minute, second = (int(p) if p is not None else None for p in parts)
    try:
        naive = dt.datetime(year, month or 1, day or 1, hour or 0, minute or 0, second or 0)
    except ValueError as exc:
        raise HL7Error(f"{where} {value!r} is not a valid date/time: {exc}", "102") from None
    if offset:
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        if hours >= 24 or minutes >= 60:
            raise HL7Error(
                f"{where} {value!r}: time zone offset {offset} is not +/-HHMM below 24 hours",
                "102",
            )
        sign = 1 if offset[0] == "+" else -1
        delta = dt.timedelta(hours=hours, minutes=minutes)
        return naive.replace(tzinfo=dt.timezone(sign * delta)), precision
    return timezone.make_aware(naive), precision


def parse_ts(value: str, where: str) -> dt.datetime | None:
    """An HL7 TS/DTM as an aware datetime (its first instant when the precision is reduced)."""
    parsed = parse_dtm(value, where)
    return parsed[0] if parsed else None


#: Patient.birth_date_precision of a DTM precision
_BIRTH_PRECISION = {YEAR: BirthDatePrecision.YEAR, MONTH: BirthDatePrecision.MONTH}


def _birth_date(value: str | None) -> tuple[dt.date | None, str] | None:
    """PID-7 -> (date, precision) to store; None: no change. A year is kept as a year."""
    if value is None:
        return None
    if value == "":
        return None, BirthDatePrecision.DAY
    # Only the date matters; a time (and its offset) would move it across midnight.
    parsed = parse_dtm(value[:8], "PID-7")
    if parsed is None:
        return None
    stamp, precision = parsed
    return stamp.date(), _BIRTH_PRECISION.get(precision, BirthDatePrecision.DAY)


def _xcn_name(segment: Segment | None, n: int) -> str:
    """An XCN (id^family^given^middle^suffix^prefix) as a DICOM PN family^given^middle^prefix."""
    if segment is None:
        return ""
    c = [_pn_part(x) for x in segment.components(n)] + [""] * 7
    return "^".join([c[1], c[2], c[3], c[5], c[4]]).rstrip("^")[:200]


def _pn_part(text: str) -> str:
    """A name component as DICOM PN text: an escaped ^ or = (\\S\\) must not split the name."""
    return text.replace("^", " ").replace("=", " ").replace("\\", " ").strip()


def _ce_text(segment: Segment | None, n: int) -> str:
    """A CE's text (component 2), else its code: what a person should read."""
    if segment is None:
        return ""
    return segment.get(n, 2) or segment.get(n, 1)


# --- patients ---------------------------------------------------------------------------------


def _domain_rank(issuer: str) -> int | None:
    """Position of an assigning authority in RIS_HL7_PATIENT_ID_AUTHORITIES (0: the
    department's primary domain); None: not a trusted domain."""
    authorities = settings.RIS_HL7_PATIENT_ID_AUTHORITIES
    return authorities.index(issuer) if issuer and issuer in authorities else None


def _trust_order(identifier: dict) -> int:
    """Sort key: identifiers of trusted domains first, the primary's first of all."""
    rank = _domain_rank(identifier["issuer"])
    return len(settings.RIS_HL7_PATIENT_ID_AUTHORITIES) if rank is None else rank


def _patient_identifier(pid: Segment) -> tuple[str, str, list[dict]]:
    """(patient ID, issuer, other IDs) from PID-3's repetitions (PID-2 if PID-3 is empty).

    The patient ID is the repetition of the most trusted domain (RIS_HL7_PATIENT_ID_AUTHORITIES
    in its order, whatever the repetition's position), else the first whose CX.5 is in
    RIS_HL7_PATIENT_ID_TYPES, else the first; the other repetitions are Other Patient IDs.
    """
    ids = []
    for rep in range(len(pid.repetitions(3))):
        value = pid.get(3, 1, rep=rep)
        if value:
            ids.append(
                {"id": value, "issuer": pid.get(3, 4, rep=rep), "type": pid.get(3, 5, rep=rep)}
            )
    if not ids and pid.get(2):
        ids.append({"id": pid.get(2), "issuer": pid.get(2, 4), "type": pid.get(2, 5)})
    if not ids:
        raise HL7Error("PID-3 (patient identifier list) is empty", "101")
    trusted = [i for i in ids if _domain_rank(i["issuer"]) is not None]
    chosen = (
        min(trusted, key=_trust_order)
        if trusted
        else next((i for i in ids if i["type"] in settings.RIS_HL7_PATIENT_ID_TYPES), ids[0])
    )
    others = [i for i in ids if i is not chosen]
    issuer = chosen["issuer"] or settings.RIS_HL7_DEFAULT_ISSUER
    if len(chosen["id"]) > 64:
        raise HL7Error(f"PID-3 patient ID {chosen['id'][:70]!r} is longer than 64", "102")
    return chosen["id"], issuer, others


#: Other Patient IDs entries of records linked by A24: another record of the person, never an
#: identifier of this one (not matched, not replaced by a PID-3 of the same domain).
LINKED = "linked"


def _by_identifier(patient_id: str, issuer: str) -> tuple[Patient | None, bool]:
    """(patient known by this ID in this domain, whether through its Other Patient IDs)."""
    patient = Patient.objects.filter(patient_id=patient_id, issuer=issuer).first()
    if patient is not None:
        return patient, False
    # Other Patient IDs are a JSON list: a text match narrows the rows, the exact test follows.
    for candidate in Patient.objects.filter(other_ids__icontains=patient_id).order_by("pk"):
        for other in candidate.other_ids or []:
            if (other.get("id"), other.get("issuer", "")) == (patient_id, issuer) and (
                other.get("type") != LINKED
            ):
                return candidate, True
    return None, False


def _find_patient(patient_id: str, issuer: str, others: list[dict]) -> Patient | None:
    """The patient of a PID: by its ID, else (several trusted domains configured) by the ID of
    another trusted domain, most trusted first, as Patient ID or among Other Patient IDs."""
    try:
        # get(): (patient ID, issuer) is unique, and an unordered query is cheaper to build
        return Patient.objects.get(patient_id=patient_id, issuer=issuer)
    except Patient.DoesNotExist:
        pass
    if not settings.RIS_HL7_PATIENT_ID_AUTHORITIES:
        return None  # one identifier domain: the Patient ID alone identifies
    candidates = [{"id": patient_id, "issuer": issuer}] if _domain_rank(issuer) is not None else []
    candidates += sorted(
        (i for i in others if _domain_rank(i["issuer"]) is not None), key=_trust_order
    )
    for identifier in candidates:
        found, _via_other = _by_identifier(identifier["id"], identifier["issuer"])
        if found is not None:
            return found
    return None


def _merged_other_ids(patient: Patient, message_ids: list[dict]) -> list[dict]:
    """Other Patient IDs after a PID: per domain (issuer), the message's ID replaces the one ris
    had; domains the message does not name, and linked records, are kept."""
    own = (patient.patient_id, patient.issuer)
    sent, seen = [], {own}
    for identifier in message_ids:
        key = (identifier["id"], identifier["issuer"])
        if key not in seen:
            seen.add(key)
            sent.append(identifier)
    domains = {i["issuer"] for i in message_ids}
    kept = [
        i for i in patient.other_ids or []
        if i.get("type") == LINKED or i.get("issuer", "") not in domains
    ]
    return [*sent, *kept]


def _person_name(pid: Segment) -> PersonName | None:
    """PID-5 repetitions -> PN groups by XPN.8 (A alphabetic, I ideographic, P phonetic).

    HL7 XPN is family^given^middle^suffix^prefix; DICOM PN puts prefix before suffix.
    """
    groups = {"A": "", "I": "", "P": ""}
    reps = pid.repetitions(5)
    if not reps:
        return None
    if reps == ['""']:
        return PersonName()
    for rep in range(len(reps)):
        c = [_pn_part(x) for x in pid.components(5, rep)] + [""] * 8
        text = "^".join([c[0], c[1], c[2], c[4], c[3]]).rstrip("^")
        # Without XPN-8 a repetition in Chinese characters is the ideographic group (PS3.5 Annex
        # J/K; HIS in China send 王^小东 alone), its Pinyin is derived by worklist.pn.
        if c[7].upper() in groups:
            representation = c[7].upper()
        else:
            representation = "I" if pn.has_ideographic(text) else "A"
        if text and not groups[representation]:
            groups[representation] = text
    return PersonName(groups["A"], groups["I"], groups["P"])


def _demographics(message: Message, pid: Segment, others: list[dict]) -> dict:
    data: dict = {}
    birth = _birth_date(_value(pid, 7))
    if birth is not None:
        data["birth_date"], data["birth_date_precision"] = birth
    sex = _value(pid, 8)
    if sex is not None:
        if sex.upper() in SEXES:
            data["sex"] = SEXES[sex.upper()]
        else:
            # Table 0001 is user-defined up to v2.5.1 (NHS-style feeds send 1/2): stored as
            # unknown, the rest of the message is applied.
            warn("103", f"PID-8 sex {sex!r} is not in HL7 table 0001 (M F O U A N): stored as "
                 "unknown")
            data["sex"] = ""
    if others:
        data["other_ids"] = others
    for obx in message.all("OBX"):
        code = obx.get(3, 1).upper()
        raw = obx.get(5).replace(",", ".")
        if raw and code in AGE_CODES:
            try:
                data["age"] = age.parse_age(raw, obx.get(6, 1))
            except ValueError as exc:
                raise HL7Error(f"OBX-5 {raw!r} of {code}: {exc}", "102") from None
            continue
        if not raw or code not in WEIGHT_CODES | HEIGHT_CODES:
            continue
        try:
            number = decimal.Decimal(raw)
        except decimal.InvalidOperation:
            raise HL7Error(f"OBX-5 {raw!r} of {code} is not a number", "102") from None
        unit = obx.get(6, 1).lower()
        if code in WEIGHT_CODES:
            data["weight_kg"] = (number * decimal.Decimal("0.45359237") if unit in ("lb", "[lb_av]")
                                 else number).quantize(decimal.Decimal("0.01"))
        else:
            metres = number / 100 if unit in ("cm", "") and number > 3 else number
            data["size_m"] = metres.quantize(decimal.Decimal("0.01"))
    allergies = [_ce_text(al1, 3) for al1 in message.all("AL1") if _ce_text(al1, 3)]
    if allergies:
        data["allergies"] = "; ".join(allergies)[:64]
    obr = message.first("OBR")
    if obr is not None:
        if obr.get(12):
            data["patient_state"] = _ce_text(obr, 12)[:64]
        if obr.get(13):
            data["medical_alerts"] = obr.get(13)[:64]
    return data


def _resolve_merged(patient: Patient) -> Patient:
    """Follow A40 merges: orders for a merged-away ID belong to the surviving patient."""
    seen = set()
    while patient.merged_into_id is not None and patient.pk not in seen:
        seen.add(patient.pk)
        patient = patient.merged_into
    return patient


def _upsert_patient(message: Message, actor: Actor, pid: Segment | None = None) -> Patient:
    pid = pid or message.first("PID")
    if pid is None:
        raise HL7Error("the message has no PID segment", "100")
    patient_id, issuer, others = _patient_identifier(pid)
    name = _person_name(pid)
    demographics = _demographics(message, pid, others)
    existing = _find_patient(patient_id, issuer, others)
    if existing is None:
        # Just looked up: patient_create does not look again (one SELECT less per new patient).
        return services.patient_create(
            patient_id=patient_id, issuer=issuer, name=name or PersonName(), actor=actor,
            **demographics,
        )
    existing = _resolve_merged(existing)
    message_ids = [{"id": patient_id, "issuer": issuer, "type": ""}, *others]
    if (existing.patient_id, existing.issuer) != (patient_id, issuer):
        # Found through another trusted domain. When the message's ID is of a more trusted
        # domain than the one the patient is filed under (the department's primary ID arrived
        # for a patient first registered by a clinic system), it becomes the Patient ID and the
        # old one an Other Patient ID; otherwise the patient keeps its ID.
        rank, current = _domain_rank(issuer), _domain_rank(existing.issuer)
        if rank is not None and (current is None or rank < current):
            old = {"id": existing.patient_id, "issuer": existing.issuer, "type": ""}
            existing = services.patient_change_identifier(
                patient=existing, patient_id=patient_id, issuer=issuer, actor=actor
            )
            message_ids.append(old)
    if others or (existing.patient_id, existing.issuer) != (patient_id, issuer):
        demographics["other_ids"] = _merged_other_ids(existing, message_ids)
    return services.patient_update(patient=existing, actor=actor, name=name, **demographics)


def _visit(message: Message, patient: Patient, actor: Actor, **extra):
    pv1 = message.first("PV1")
    if pv1 is None:
        return None
    fields: dict = {}
    patient_class = _value(pv1, 2)
    if patient_class and patient_class.upper() not in PATIENT_CLASSES:
        warn("103", f"PV1-2 patient class {patient_class!r} is not in HL7 table 0004: kept as sent")
    for key, value in (
        ("patient_class", patient_class),
        ("assigned_location", _location(pv1)),
        ("referring_physician", _xcn_name(pv1, 8) or None),
    ):
        if value is not None:
            fields[key] = value[:64] if key != "referring_physician" else value
    admitted = pv1.get(44)
    if admitted:
        fields["admitted_at"] = parse_ts(admitted, "PV1-44")
    discharged = pv1.get(45)
    if discharged:
        fields["discharged_at"] = parse_ts(discharged, "PV1-45")
    fields.update(extra)
    admission_id = pv1.get(19)[:64]
    if not admission_id and not fields:
        return None
    return services.visit_upsert(patient=patient, admission_id=admission_id, actor=actor, **fields)


def _location(pv1: Segment) -> str | None:
    """PV1-3 (PL: point of care^room^bed^facility...) as one Current Patient Location string."""
    if not pv1.get(3):
        return None
    parts = [p for p in pv1.components(3)[:3] if p]
    return " ".join(parts)[:64]


# --- ADT --------------------------------------------------------------------------------------


def _adt_register(message: Message, actor: Actor) -> Outcome:
    patient = _upsert_patient(message, actor)
    _visit(message, patient, actor)
    return Outcome(patient=patient)


def _adt_visit_event(message: Message, event: str, actor: Actor) -> Outcome:
    """A03 discharge: the visit ends (PV1-45, else EVN-2, else now). A11 cancels the admission."""
    patient = _upsert_patient(message, actor)
    if event == "A03":
        pv1, evn = message.first("PV1"), message.first("EVN")
        when = None
        if pv1 is not None and pv1.get(45):
            when = parse_ts(pv1.get(45), "PV1-45")
        elif evn is not None and evn.get(2):
            when = parse_ts(evn.get(2), "EVN-2")
        _visit(message, patient, actor, discharged_at=when or timezone.now())
    else:
        _visit(message, patient, actor, admitted_at=None)
    return Outcome(patient=patient)


def _adt_merge(message: Message, actor: Actor) -> Outcome:
    """A40: MRG-1 (the prior ID) merges into PID-3 (the surviving patient)."""
    survivor = _upsert_patient(message, actor)
    merges = message.all("MRG")
    if not merges:
        raise HL7Error("A40 without an MRG segment: which patient should be merged?", "100")
    note = []
    for mrg in merges:
        prior, _domain = _prior_patient(mrg, survivor=survivor)
        prior_id = mrg.get(1)
        if prior is None:
            # Hospital-wide merges mostly concern patients radiology never saw: nothing to move.
            note.append(f"prior patient {prior_id!r} is not known to ris: nothing to merge")
            continue
        if prior.pk == survivor.pk:
            note.append(f"prior patient {prior_id!r} is the surviving patient")
            continue
        services.patient_merge(source=prior, target=survivor, actor=actor)
    return Outcome(patient=survivor, note="; ".join(note))


def _prior_patient(
    mrg: Segment, *, survivor: Patient | None = None
) -> tuple[Patient | None, dict | None]:
    """(the patient MRG-1 names, the MRG-1 identifier when it is one of the patient's Other
    Patient IDs rather than its Patient ID).

    By ID and issuer; by ID alone when MRG-1 has no issuer. MRG-1 repeats (the prior patient
    identifier list): with several trusted domains configured each repetition is tried, most
    trusted first, as Patient ID and among Other Patient IDs, so a merge or an identifier
    change sent in any trusted domain finds the patient.
    """
    if not mrg.get(1):
        raise HL7Error("MRG-1 (prior patient identifier) is empty", "101")
    identifiers = [
        {"id": mrg.get(1, 1, rep=rep), "issuer": mrg.get(1, 4, rep=rep),
         "type": mrg.get(1, 5, rep=rep)}
        for rep in range(len(mrg.repetitions(1)))
        if mrg.get(1, 1, rep=rep)
    ]
    identifiers.sort(key=_trust_order)
    for identifier in identifiers:
        issuer = identifier["issuer"] or settings.RIS_HL7_DEFAULT_ISSUER
        prior = Patient.objects.filter(patient_id=identifier["id"], issuer=issuer).first()
        if prior is None and not identifier["issuer"]:
            others = Patient.objects.filter(patient_id=identifier["id"])
            if survivor is not None:
                others = others.exclude(pk=survivor.pk)
            prior = others.first()
        if prior is not None:
            return _resolve_merged(prior), None
        if _domain_rank(identifier["issuer"]) is not None:
            prior, via_other = _by_identifier(identifier["id"], identifier["issuer"])
            if prior is not None:
                return _resolve_merged(prior), identifier if via_other else None
    return None, None


def _adt_change_identifier(message: Message, actor: Actor) -> Outcome:
    """A47 (change patient identifier list): the patient of MRG-1 is now known by PID-3, keeping
    its orders and visits; the worklist shows the new ID at once. PID-3 already another
    patient's: AE 205 (that is an A40 merge).

    With several trusted domains, an MRG-1 that is one of the patient's Other Patient IDs
    changes that domain's ID only (the PID-3 repetition of the same assigning authority): the
    patient keeps its Patient ID in the department's domain.
    """
    pid = message.first("PID")
    if pid is None:
        raise HL7Error("the message has no PID segment", "100")
    mrg = message.first("MRG")
    if mrg is None:
        raise HL7Error("A47 without an MRG segment: which identifier should change?", "100")
    new_id, issuer, others = _patient_identifier(pid)
    prior, other_domain = _prior_patient(mrg)
    note = ""
    if prior is None:
        note = f"prior patient {mrg.get(1)!r} is not known to ris: registered under the new ID"
    elif other_domain is not None:
        domain = other_domain["issuer"]
        replacement = next(
            (i for i in [{"id": new_id, "issuer": issuer, "type": ""}, *others]
             if i["issuer"] == domain),
            None,
        )
        if replacement is None:
            raise HL7Error(
                f"MRG-1 {other_domain['id']!r} is patient {prior.patient_id}'s ID in domain "
                f"{domain!r}, but PID-3 has no ID of that domain to change it to",
                "101",
            )
        services.patient_change_other_identifier(
            patient=prior, issuer=domain, old_id=other_domain["id"], new_id=replacement["id"],
            id_type=replacement["type"], actor=actor,
        )
    else:
        services.patient_change_identifier(
            patient=prior, patient_id=new_id, issuer=issuer, actor=actor
        )
    return Outcome(patient=_upsert_patient(message, actor), note=note)


def _adt_link(message: Message, actor: Actor, *, linked: bool) -> Outcome:
    """A24 link / A37 unlink: the two PID segments are records of one person (or no longer)."""
    pids = message.all("PID")
    if len(pids) < 2:
        raise HL7Error(
            f"A{'24' if linked else '37'} needs two PID segments (the two patients)", "100"
        )
    first = _upsert_patient(message, actor, pids[0])
    second = _upsert_patient(message, actor, pids[1])
    services.patient_link(patient=first, other=second, linked=linked, actor=actor)
    return Outcome(patient=first)


# --- orders -----------------------------------------------------------------------------------


@dataclass
class _OrderGroup:
    orc: Segment
    tq1: Segment | None = None
    obrs: list[Segment] = field(default_factory=list)
    obr_tq1: dict[int, Segment] = field(default_factory=dict)
    #: IPC segments (OMI^O23) of each OBR, by its index in ``obrs``
    obr_ipcs: dict[int, list[Segment]] = field(default_factory=dict)
    #: ZDS (IHE RAD-4 v2.3.1 custom segment: ZDS-1 Study Instance UID) of each OBR
    obr_zds: dict[int, Segment] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _order_groups(message: Message) -> list[_OrderGroup]:
    groups: list[_OrderGroup] = []
    for segment in message.segments[1:]:
        if segment.name == "ORC":
            groups.append(_OrderGroup(orc=segment))
        elif not groups:
            continue
        elif segment.name == "TQ1":
            group = groups[-1]
            if group.obrs:
                group.obr_tq1.setdefault(len(group.obrs) - 1, segment)
            elif group.tq1 is None:
                group.tq1 = segment
        elif segment.name == "OBR":
            groups[-1].obrs.append(segment)
        elif segment.name == "IPC" and groups[-1].obrs:
            groups[-1].obr_ipcs.setdefault(len(groups[-1].obrs) - 1, []).append(segment)
        elif segment.name == "ZDS" and groups[-1].obrs:
            groups[-1].obr_zds.setdefault(len(groups[-1].obrs) - 1, segment)
        elif segment.name == "NTE" and segment.get(3):
            groups[-1].notes.append(segment.get(3))
    if not groups:
        raise HL7Error("the order message has no ORC segment", "100")
    return groups


def _placer(group: _OrderGroup) -> tuple[str, str]:
    obr = group.obrs[0] if group.obrs else None
    number = group.orc.get(2) or (obr.get(2) if obr else "")
    issuer = group.orc.get(2, 2) if group.orc.get(2) else (obr.get(2, 2) if obr else "")
    return number[:64], issuer[:64]


def _filler(group: _OrderGroup) -> str:
    obr = group.obrs[0] if group.obrs else None
    return (group.orc.get(3) or (obr.get(3) if obr else ""))[:64]


def _start_time(group: _OrderGroup, index: int) -> dt.datetime | None:
    obr = group.obrs[index]
    tq1 = group.obr_tq1.get(index) or group.tq1
    for name in settings.RIS_HL7_START_TIME_FIELDS:
        name = name.strip().upper()
        if name == "TQ1-7" and tq1 is not None and tq1.get(7):
            return _schedulable(tq1.get(7), "TQ1-7")
        if name == "ORC-7" and group.orc.get(7, 4):
            return _schedulable(group.orc.get(7, 4), "ORC-7.4")
        if name == "OBR-27" and obr.get(27, 4):
            return _schedulable(obr.get(27, 4), "OBR-27.4")
        if name == "OBR-36" and obr.get(36):
            return _schedulable(obr.get(36), "OBR-36")
        if name == "OBR-6" and obr.get(6):
            return _schedulable(obr.get(6), "OBR-6")
    return None


def _schedulable(value: str, where: str) -> dt.datetime | None:
    """A start time; a date alone is midnight, a year or a month is no time to book at: the
    step then waits UNSCHEDULED for the front desk (with a warning), as without a start time."""
    parsed = parse_dtm(value, where)
    if parsed is None:
        return None
    stamp, precision = parsed
    if precision < DAY:
        warn("102", f"{where} {value!r} is only a year or a month: the exam is left unscheduled")
        return None
    return stamp


def _priority(group: _OrderGroup, index: int) -> str:
    tq1 = group.obr_tq1.get(index) or group.tq1
    obr = group.obrs[index] if group.obrs else None
    code = (
        (tq1.get(9) if tq1 is not None else "")
        or group.orc.get(7, 6)
        or (obr.get(27, 6) if obr is not None else "")
        or (obr.get(5) if obr is not None else "")
    )
    if not code:
        return ""
    if code.upper()[:1] not in PRIORITIES:
        warn("103", f"priority {code!r} is not in HL7 table 0027 (S A R P C T): taken as routine")
    return PRIORITIES.get(code.upper()[:1], Priority.ROUTINE)


#: How long an OBR-4 lookup (procedure type and its first active station) is reused. Catalogue
#: edits in this process clear it at once (``ris.apps`` connects ``forget_catalogue``); edits
#: made in another process (the web UI) reach the HL7 listener within this time, as if the
#: message had come that much earlier.
#: Unknown codes are never cached: a code added to the catalogue is found by the next message.
CATALOGUE_CACHE_SECONDS = 5.0
_catalogue: dict[tuple[str, str], tuple[float, ProcedureType, Device | None]] = {}


def forget_catalogue(**_signal) -> None:
    """Drop every cached OBR-4 lookup (after a catalogue change, or a stale row broke a write)."""
    _catalogue.clear()



def service_code(obr: Segment) -> tuple[str, str, str]:
    """(code, text, coding system) of what is ordered: OBR-4, else OBR-44 (procedure code,
    v2.3.1 and later), which some HIS fill instead of the universal service ID."""
    if obr.get(4, 1):
        return obr.get(4, 1), obr.get(4, 2), obr.get(4, 3)
    return obr.get(44, 1), obr.get(44, 2), obr.get(44, 3)


def catalogue_entry(obr: Segment) -> tuple[ProcedureType, Device | None]:
    """(procedure type of OBR-4, the station a timed step of it goes to), cached briefly.

    Every NW reads the catalogue, and in a burst the same few codes come again and again: two
    queries fewer per procedure (docs/BENCHMARKS.md, HL7 inbound).
    """
    code, _text, system = service_code(obr)
    key = (code, system)
    now = time.monotonic()
    cached = _catalogue.get(key)
    if cached is not None and now - cached[0] < CATALOGUE_CACHE_SECONDS:
        return cached[1], cached[2]
    ptype = procedure_for(obr)
    station = ptype.stations.filter(active=True).first()
    _catalogue[key] = (now, ptype, station)
    return ptype, station


def procedure_for(obr: Segment) -> ProcedureType:
    """OBR-4 (else OBR-44) -> the catalogue: order code with its coding system, order code
    alone, code value."""
    code, text, system = service_code(obr)
    if not code:
        raise HL7Error("OBR-4 (universal service identifier) and OBR-44 are empty", "101")
    mapped = (
        ProcedureOrderCode.objects.select_related("procedure_type")
        .filter(code=code, coding_system__in=[system, ""], procedure_type__active=True)
        .order_by("-coding_system")
        .first()
    )
    if mapped is not None:
        return mapped.procedure_type
    direct = ProcedureType.objects.filter(code_value=code, active=True)
    ptype = direct.filter(code_scheme=system).first() if system else None
    ptype = ptype or direct.first()
    if ptype is None:
        raise UnknownProcedure(
            f"OBR-4 procedure code {code!r} ({text or 'no text'}, {system or 'no coding system'}) "
            "is not in the ris procedure catalogue: add it, then reprocess this message"
        )
    return ptype


def _find_order(group: _OrderGroup) -> Order:
    number, issuer = _placer(group)
    if number:
        orders = Order.objects.filter(placer_order_number=number)
        order = orders.filter(placer_issuer=issuer).first()
        if order is None and orders.count() == 1:
            order = orders.get()
        if order is not None:
            return order
    ipcs = [ipc for segments in group.obr_ipcs.values() for ipc in segments]
    accession = next((ipc.get(1) for ipc in ipcs if ipc.get(1)), "")
    if accession:
        order = Order.objects.filter(accession_number=accession).first()
        if order is not None:
            return order
    filler = _filler(group)
    if filler:
        order = (
            Order.objects.filter(accession_number=filler).first()
            or Order.objects.filter(filler_order_number=filler).first()
        )
        if order is not None:
            return order
    raise NotFound(
        f"placer order {number or '(none)'!r}"
        + (f" / filler order {filler!r}" if filler else "")
        + " is not known to ris (was the new order NW received?)"
    )


def _order_message(message: Message, actor: Actor) -> Outcome:
    groups = _order_groups(message)
    patient = _upsert_patient(message, actor)
    outcome = Outcome(patient=patient)
    visit = None
    new_orders: dict[tuple[str, str], list[_OrderGroup]] = {}
    #: OBRs of earlier XO groups of the same placer order: like NW, the groups of one placer
    #: number are one order, and the n-th OBR of the message is its n-th requested procedure.
    changed_obrs: dict[tuple[str, str], int] = {}
    for group in groups:
        control = group.orc.get(1).upper()
        if control == "NW":
            if not group.obrs:
                raise HL7Error("ORC-1 NW without an OBR segment: what is ordered?", "100")
            new_orders.setdefault(_placer(group), []).append(group)
        elif control in ("CA", "DC"):
            order = _find_order(group)
            reason = group.orc.get(16, 2) or group.orc.get(16) or f"HL7 {control}"
            outcome.add(
                services.order_cancel(
                    order=order, actor=actor, reason=reason, discontinue=control == "DC"
                ),
                control,
            )
        elif control == "XO":
            first = changed_obrs.get(_placer(group), 0)
            changed_obrs[_placer(group)] = first + len(group.obrs)
            outcome.add(_change_order(group, actor, first_procedure=first), control)
        elif control == "SC":
            order = _find_order(group)
            status = group.orc.get(5).upper()
            if status in ("CA", "DC"):
                order = services.order_cancel(
                    order=order, actor=actor, reason=f"HL7 SC {status}",
                    discontinue=status == "DC",
                )
            else:
                outcome.note = f"status {status or '(empty)'} of the placer noted, nothing changed"
            outcome.add(order, control)
        else:
            raise HL7Error(
                f"ORC-1 order control {control or '(empty)'!r} is not supported "
                "(NW, CA, DC, XO, SC are)",
                "207",
            )
    for (number, _issuer), order_groups in new_orders.items():
        if not number:
            raise HL7Error("ORC-2 / OBR-2 placer order number is required for a new order", "101")
        if visit is None:
            visit = _visit(message, patient, actor)
        order = _create_order(message, order_groups, patient, visit, actor)
        if settings.RIS_HL7_AUTO_BOOK:
            # The site books orders without a start time itself (RIS_HL7_AUTO_BOOK).
            order = services.order_book_waiting(order=order, actor=actor)
        outcome.add(order, "NW")
    return outcome


def _create_order(message, groups: list[_OrderGroup], patient, visit, actor) -> Order:
    first = groups[0]
    requests = []
    accessions: set[str] = set()
    for group in groups:
        for index, obr in enumerate(group.obrs):
            extra = {}
            if obr.get(30):
                extra["transport_arrangements"] = obr.get(30)[:64]
            ptype, station = catalogue_entry(obr)
            start = _start_time(group, index)
            request = services.ProcedureRequest(
                procedure_type=ptype,
                scheduled_start=start,
                station=station if start is not None else None,
                pick_station=False,
                priority=_priority(group, index),
                extra=extra,
                modality_hint=obr.get(24).upper() if obr.get(24).upper() in Modality.values else "",
            )
            ipcs = group.obr_ipcs.get(index, [])
            if ipcs:
                accessions.update(ipc.get(1) for ipc in ipcs if ipc.get(1))
                _planned_upstream(request, ipcs)
            zds = group.obr_zds.get(index)
            if zds is not None and not request.study_instance_uid and zds.get(1):
                # RAD-4 (v2.3.1): an upstream Order Filler's Study Instance UID, used as given
                # like IPC-3 (other Z segments are ignored).
                uid = zds.get(1)
                if len(uid) > 64 or not _UID.match(uid):
                    raise HL7Error(f"ZDS-1 Study Instance UID {uid!r} is not a DICOM UID", "102")
                request.study_instance_uid = uid
            requests.append(request)
    if len(accessions) > 1:
        raise HL7Error(
            f"IPC-1 accession numbers {', '.join(sorted(accessions))} in one placer order: ris "
            "keeps one accession number per order; send one OMI per accession number",
            "207",
        )
    obr = first.obrs[0]
    number, issuer = _placer(first)
    pv1 = message.first("PV1")
    notes = [n for g in groups for n in g.notes]
    return services.order_create(
        patient=patient,
        procedures=requests,
        actor=actor,
        source=Order.Source.HL7,
        placer_order_number=number,
        placer_issuer=issuer,
        filler_order_number=_filler(first),
        visit=visit,
        priority=_priority(first, 0) or Priority.ROUTINE,
        requesting_physician=_xcn_name(first.orc, 12) or _xcn_name(obr, 16),
        referring_physician=_xcn_name(pv1, 8),
        requesting_service=_ce_text(first.orc, 17)[:64],
        reason=(_ce_text(obr, 31) or obr.get(13))[:64],
        comments="\n".join(notes),
        accession_number=next(iter(accessions), ""),
    )


_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")


def _given(ipc: Segment, n: int, label: str, size: int) -> str:
    value = ipc.get(n)
    if len(value) > size:
        raise HL7Error(f"IPC-{n} {label} {value!r} is longer than {size} characters", "102")
    return value


def _planned_upstream(request: services.ProcedureRequest, ipcs: list[Segment]) -> None:
    """IPC segments (OMI^O23, IHE RAD-TF-2 4.4.4.1.2.x): what an upstream Order Filler already
    assigned is used as given (RAD-4/RAD-13: the receiver must not replace it). One OBR is one
    requested procedure; each of its IPC segments is one scheduled procedure step."""
    first = ipcs[0]
    for ipc in ipcs[1:]:
        for n, label in ((1, "accession number"), (2, "requested procedure ID"),
                         (3, "Study Instance UID")):
            if ipc.get(n) and first.get(n) and ipc.get(n) != first.get(n):
                raise HL7Error(
                    f"IPC-{n} {label} differs between the IPC segments of one OBR "
                    f"({first.get(n)!r}, {ipc.get(n)!r}): one OBR is one requested procedure",
                    "207",
                )
    _given(first, 1, "accession number", 16)
    request.requested_procedure_id = _given(first, 2, "requested procedure ID", 16)
    uid = _given(first, 3, "Study Instance UID", 64)
    if uid and not _UID.match(uid):
        raise HL7Error(f"IPC-3 Study Instance UID {uid!r} is not a DICOM UID", "102")
    request.study_instance_uid = uid
    steps = []
    for ipc in ipcs:
        modality = ipc.get(5)
        if modality and modality.upper() not in Modality.values:
            raise HL7Error(
                f"IPC-5 modality {modality!r} is not one ris schedules "
                f"({' '.join(Modality.values)})",
                "103",
            )
        station = _ipc_station(ipc)
        protocols = _ipc_protocols(ipc)
        steps.append(
            services.StepRequest(
                sps_id=_given(ipc, 4, "SPS ID", 16),
                modality=modality.upper(),
                station=station,
                location=_given(ipc, 8, "scheduled procedure step location", 16),
                protocol_codes=protocols or None,
            )
        )
    request.steps = steps


def _ipc_station(ipc: Segment) -> Device | None:
    """IPC-9 scheduled station AE title, else IPC-7 station name: a ris station (Device)."""
    ae_title, name = ipc.get(9), ipc.get(7)
    if ae_title:
        station = Device.objects.filter(ae_title=ae_title).first()
        if station is None:
            raise NotFound(
                f"IPC-9 scheduled station AE title {ae_title!r} is not a ris station: add the "
                "device, then reprocess this message"
            )
        return station
    if name:
        station = Device.objects.filter(station_name=name).first()
        if station is None:
            raise NotFound(
                f"IPC-7 scheduled station name {name!r} is not a ris station: add the device, "
                "then reprocess this message"
            )
        return station
    return None


def _change_order(group: _OrderGroup, actor: Actor, *, first_procedure: int = 0) -> Order:
    """XO: new time (reschedules every step not yet performed), priority, reason, physicians, and
    a new procedure where the n-th OBR-4 names another exam than the n-th requested procedure.

    ``first_procedure``: the requested procedure (by creation order) of this group's first OBR.
    """
    order = _find_order(group)
    procedures = list(order.procedures.order_by("pk"))[first_procedure:]
    if len(group.obrs) > len(procedures):
        raise HL7Error(
            f"the XO has {first_procedure + len(group.obrs)} OBR segments but order "
            f"{order.accession_number} has {first_procedure + len(procedures)} requested "
            "procedure(s): a further procedure needs a new order (NW)",
            "207",
        )
    # Every OBR-4 is looked up before anything changes: an unknown code is an AE 103, as for NW.
    # An empty OBR-4 leaves the procedure alone (HL7 "no change").
    new_types = {
        procedure.pk: ptype
        for procedure, obr in zip(procedures, group.obrs, strict=False)
        if service_code(obr)[0]
        and (ptype := catalogue_entry(obr)[0]).pk != procedure.procedure_type_id
    }
    # IPC segments (RAD-13 from an upstream Order Filler): checked before anything changes too.
    step_changes = _ipc_changes(group, order, procedures, new_types)
    changes = {}
    priority = _priority(group, 0) if group.obrs else ""
    if priority:
        changes["priority"] = priority
    obr = group.obrs[0] if group.obrs else None
    reason = _ce_text(obr, 31)[:64] if obr is not None else ""
    if reason:
        changes["reason"] = reason
    physician = _xcn_name(group.orc, 12) or (_xcn_name(obr, 16) if obr is not None else "")
    if physician:
        changes["requesting_physician"] = physician
    if changes:
        order = services.order_update(order=order, actor=actor, **changes)
    start = _start_time(group, 0) if group.obrs else None
    movable = []
    if start is not None:
        steps = ScheduledProcedureStep.objects.filter(requested_procedure__order=order).order_by(
            "pk"
        )
        movable = [s for s in steps if s.status in SCHEDULABLE_STEP_STATUSES]
        for step in movable:
            new_type = new_types.get(step.requested_procedure_id)
            station = step_changes.get(step.pk, {}).pop("station", None)
            if step.scheduled_start != start or (station and station != step.station):
                # Placed with the new exam's duration: the overlap check is the end state's.
                services.step_schedule(
                    step=step,
                    start=start,
                    station=station,
                    actor=actor,
                    duration_minutes=new_type.default_duration_minutes if new_type else None,
                )
    for step, details in _steps_with_changes(step_changes):
        station = details.pop("station", None)
        if station is not None and station != step.station:
            if step.scheduled_start is not None:
                # A new station at the same time: a move, with the slot checked on it.
                step = services.step_schedule(
                    step=step, start=step.scheduled_start, station=station, actor=actor
                )
            else:
                details["station"] = station
        if details:
            services.step_update(step=step, actor=actor, **details)
    for procedure in procedures:
        if procedure.pk in new_types:
            services.procedure_change(
                procedure=procedure, procedure_type=new_types[procedure.pk], actor=actor
            )
    if start is not None and not movable:
        raise DomainError(
            f"order {order.accession_number} has no step left to reschedule "
            "(all started, completed or cancelled)"
        )
    return order


def _ipc_changes(
    group: _OrderGroup, order: Order, procedures: list, new_types: dict[int, ProcedureType]
) -> dict[int, dict]:
    """{step pk: changes} of the IPC segments of an XO (IHE RAD-13 procedure update).

    The IPC identifiers name what changes, they do not change: IPC-1 must be the order's
    accession number, IPC-2 and IPC-3 the requested procedure's (that of the OBR the IPC
    follows), IPC-4 one of its steps (empty: the n-th IPC is the n-th step). What may change is
    what the modality is told about the step: IPC-9 / IPC-7 the station (of the step's
    modality, or of the new exam's when the OBR-4 changes it), IPC-8 the location, IPC-6 the
    protocol. Anything else (another accession, a new
    SPS ID, another modality) is AE: cancel and order again. Empty fields change nothing.
    """
    changes: dict[int, dict] = {}
    for index, ipcs in group.obr_ipcs.items():
        if index >= len(procedures):
            continue  # the OBR count was checked by the caller
        procedure = procedures[index]
        steps = list(procedure.steps.order_by("pk").select_related("station"))
        for position, ipc in enumerate(ipcs):
            for n, label, current in (
                (1, "accession number", order.accession_number),
                (2, "requested procedure ID", procedure.requested_procedure_id),
                (3, "Study Instance UID", procedure.study_instance_uid),
            ):
                if ipc.get(n) and ipc.get(n) != current:
                    raise HL7Error(
                        f"IPC-{n} {label} {ipc.get(n)!r} is not {current!r} of order "
                        f"{order.accession_number}: identifiers do not change in an XO "
                        "(cancel the order and send a new one)",
                        "207",
                    )
            sps_id = ipc.get(4)
            if sps_id:
                step = next((s for s in steps if s.sps_id == sps_id), None)
                if step is None:
                    raise NotFound(
                        f"IPC-4 SPS ID {sps_id!r} is not a step of requested procedure "
                        f"{procedure.requested_procedure_id}: a further step needs a new order"
                    )
            elif position < len(steps):
                step = steps[position]
            else:
                raise HL7Error(
                    f"IPC {position + 1} after OBR {index + 1} names no step (IPC-4 empty) and "
                    f"requested procedure {procedure.requested_procedure_id} has "
                    f"{len(steps)} step(s)",
                    "207",
                )
            expected = (
                new_types[procedure.pk].modality if procedure.pk in new_types else step.modality
            )
            modality = ipc.get(5).upper()
            if modality and modality != expected:
                raise HL7Error(
                    f"IPC-5 modality {modality!r} of step {step.sps_id} is not its modality "
                    f"{expected!r}: another modality is another exam (send a new OBR-4, "
                    "or cancel and order again)",
                    "207",
                )
            details: dict = {}
            station = _ipc_station(ipc)
            if station is not None and station != step.station:
                if station.modality and station.modality != expected:
                    raise HL7Error(
                        f"IPC-9/IPC-7 station {station.ae_title} is a {station.modality} "
                        f"station, step {step.sps_id} is {expected}",
                        "207",
                    )
                details["station"] = station
            location = _given(ipc, 8, "scheduled procedure step location", 16)
            if location and location != step.location:
                details["location"] = location
            protocols = _ipc_protocols(ipc)
            if protocols and protocols != step.protocol_codes:
                details["protocol_codes"] = protocols
            if details:
                changes[step.pk] = {"step": step, **details}
    return changes


def _steps_with_changes(changes: dict[int, dict]):
    """(step, its remaining changes) of ``_ipc_changes``, read again: a reschedule before may
    have saved the step."""
    for pk, details in changes.items():
        rest = {k: v for k, v in details.items() if k != "step"}
        if rest:
            yield ScheduledProcedureStep.objects.get(pk=pk), rest


def _ipc_protocols(ipc: Segment) -> list[dict]:
    """IPC-6 (repeats) as Scheduled Protocol Code Sequence items."""
    return [
        {"value": ipc.get(6, 1, rep=rep), "scheme": ipc.get(6, 3, rep=rep),
         "meaning": ipc.get(6, 2, rep=rep)}
        for rep in range(len(ipc.repetitions(6)))
        if ipc.get(6, 1, rep=rep)
    ]
