"""Every page of the web UI, rendered in Simplified Chinese, shows no English and no raw code.

A department working in zh-Hans must not meet technical English anywhere: labels, buttons,
messages, choices, audit sentences, empty-list notes, titles and tooltips. The test loads the
demo department plus the records the integration pages list (an HL7 message in error, a
performed step without an order, a failed outbound job, a no-show), renders every GET page of
``web.urls`` with the Django test client as an administrator (who sees every link) whose account
language is zh-Hans, and looks at what a person sees: text nodes outside ``<script>`` and
``<style>``, and the ``title``, ``placeholder``, ``aria-label``, ``alt`` and button ``value``
attributes.

What may stay Latin is data and a short list of terms a Chinese department writes in Latin
letters itself: modality codes (CT, MR), DICOM, HL7, PACS, AE titles, IDs, units. Data (names,
procedure meanings from the demo catalogue, AE titles, accession numbers) is read from the
database and removed before the words are checked, so the allow-list stays short.
"""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from pydicom.uid import generate_uid

from mpps import services as mpps_services
from mpps.forwarding import services as forwarding
from mpps.forwarding.models import SpooledInstance
from mpps.models import PerformedProcedureStep
from ris.hl7 import handler
from ris.models import HL7Destination, InboundMessage, OutboundJob
from tests.factories import at, first_step, make_order
from tests.forwarding.instances import ct_study
from tests.hl7.conftest import orm
from tests.mpps.modality import Modality as ModalityScu
from worklist import services
from worklist.audit import Actor
from worklist.demo import load_demo
from worklist.models import (
    AuditEvent,
    Device,
    Order,
    Patient,
    ProcedureType,
    ScheduledProcedureStep,
    StepStatus,
)

#: Latin words a zh-Hans radiology department writes in Latin letters (standards, modalities,
#: units, the product's name) — never a sentence word.
ALLOWED = {
    "ris", "DICOM", "HL7", "PACS", "MPPS", "PPS", "MWL", "AE", "ID", "IDs", "API", "CSV", "PDF",
    "UID", "UTC", "HIS", "ACK", "AA", "AR", "CA", "CR", "CT", "DX", "MG", "MR", "NM", "OT",
    "PT", "RF", "US", "XA", "ES", "IO", "SR", "ADT", "ORM", "OMG", "OMI", "ORU", "SIU", "MSH",
    "PID", "PV1", "ORC", "OBR", "ERR", "MSA", "IPC", "TQ1", "ZDS", "NTE", "OBX", "EVN", "MRG",
    "kg", "cm", "m", "mm", "GB18030", "ASCII", "UTF", "ISO_IR", "IR", "ISO", "Pinyin", "admin",
    "ORR", "ORG", "ORI", "IHE", "SWF", "IOCM", "UPS", "SOP", "FIND", "TLS", "MLLP",
    # X.509 name attributes, as a certificate subject is written (CN=CT1,O=Radiology)
    "CN",
}

#: The SPS ID of a performed step that names no step of ris (a typo at the console).
TYPO_SPS = "SPS-TYPO"

#: Attributes whose text a person sees (tooltips, placeholders, screen readers, buttons).
_VISIBLE_ATTRIBUTES = ("title", "placeholder", "aria-label", "alt")
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        hidden = tag in ("script", "style", "template") or values.get("translate") == "no"
        if self._hidden or hidden:
            if tag not in _VOID:
                self._hidden.append(tag)
            return
        for name in _VISIBLE_ATTRIBUTES:
            if values.get(name):
                self.parts.append(values[name])
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.parts.append(values["value"])

    def handle_endtag(self, tag):
        if tag in self._hidden:  # also closes what was left open inside (<p>, <li>)
            del self._hidden[len(self._hidden) - self._hidden[::-1].index(tag) - 1:]

    def handle_data(self, data):
        if not self._hidden and data.strip():
            self.parts.append(data)


def visible_text(html: str) -> list[str]:
    parser = _VisibleText()
    parser.feed(html)
    return [" ".join(part.split()) for part in parser.parts]


def _data_strings() -> list[str]:
    """What the database holds: names, codes and free text entered by people, longest first."""
    values: set[str] = set()
    for patient in Patient.objects.all():
        values |= {patient.patient_id, patient.issuer, patient.name_alphabetic,
                   patient.name_ideographic, patient.name_phonetic, patient.family_name,
                   patient.given_name, str(patient.person_name)}
        for group in (patient.name_alphabetic, patient.name_phonetic):
            values |= set(group.split("^")) | {group.replace("^", " ")}
    for ptype in ProcedureType.objects.all():
        values |= {ptype.code_value, ptype.code_meaning, ptype.description, ptype.code_scheme}
    for device in Device.objects.all():
        values |= {device.ae_title, device.station_name, device.location, device.host}
    for order in Order.objects.all():
        values |= {order.accession_number, order.placer_order_number,
                   order.filler_order_number, order.requesting_physician, order.reason}
        for part in order.requesting_physician.replace("=", "^").split("^"):
            values.add(part)
    for step in ScheduledProcedureStep.objects.all():
        values |= {step.sps_id, step.description, step.status_reason}
    values |= set(User.objects.values_list("username", flat=True))
    values |= set(HL7Destination.objects.values_list("name", flat=True))
    values |= set(AuditEvent.objects.values_list("actor", flat=True))
    for sender in InboundMessage.objects.values_list("sender", flat=True):
        values |= {sender, *sender.split("|")}
    # what the modalities sent: performed steps and images at the gateway
    rows = [*PerformedProcedureStep.objects.values_list("patient_name", "patient_id",
                                                        "description", "pps_id"),
            *SpooledInstance.objects.values_list("patient_name", "patient_id",
                                                 "accession_number", "calling_ae_title")]
    for row in rows:
        for value in row:
            values |= {value, *re.split(r"[=^]", value), value.replace("^", " ")}
    values.add(TYPO_SPS)  # the SPS ID the modality sent, quoted in the exception's note
    return sorted((v for v in values if v and len(v) > 1), key=len, reverse=True)


#: A token with a digit is an identifier or a code of a standard (CT1, P0001, PV1, O01).
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def english_words(texts: list[str], data: list[str]) -> list[str]:
    # Data is removed as whole words only: a given name "Li" must not hide "English".
    pattern = re.compile(
        "|".join(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])" for value in data)
    ) if data else None
    found = []
    for text in texts:
        if pattern is not None:
            text = pattern.sub(" ", text)
        for word in _WORD.findall(text):
            if word not in ALLOWED and not re.search(r"\d", word) and len(word) > 1:
                found.append(word)
    return found


def _get_patterns(resolver=None, prefix=""):
    """(name, route) of every page in web.urls."""
    resolver = resolver or get_resolver("web.urls")
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            continue  # django.conf.urls.i18n: the POST-only language switch
        if isinstance(entry, URLPattern):
            yield entry.name, str(entry.pattern)


@pytest.fixture
def department(db, settings, tmp_path):
    """The demo department plus one record for each list the integration pages show."""
    settings.RIS_FORWARD_SPOOL_DIR = tmp_path / "spool"
    forwarding._match_cache.clear()
    load_demo()
    actor = Actor.system("demo")
    steps = ScheduledProcedureStep.objects.filter(status=StepStatus.SCHEDULED).order_by("pk")
    arrived, no_show, performed, unmatched, cancelled = steps[:5]
    services.step_transition(step=arrived, to=StepStatus.ARRIVED, actor=actor)
    services.step_no_show(step=no_show, actor=actor, reason_code="unwell")
    services.order_cancel(order=cancelled.requested_procedure.order, actor=actor,
                          reason="duplicate order")
    ds = ModalityScu(port=0).pps_for(performed)
    mpps_services.pps_create(sop_instance_uid=generate_uid(), dataset=ds, actor=Actor.ae("CT1"))
    ds = ModalityScu(port=0).pps_for(unmatched)
    ds.ScheduledStepAttributesSequence[0].ScheduledProcedureStepID = TYPO_SPS
    ds.ScheduledStepAttributesSequence[0].AccessionNumber = ""
    mpps_services.pps_create(sop_instance_uid=generate_uid(), dataset=ds, actor=Actor.ae("CT1"))
    for image in ct_study(1, patient_id="WALK-IN-1", accession="NOT-OURS"):
        forwarding.receive_instance(dataset=image, file_meta=image.file_meta,
                                    calling_ae_title="CT9")
    # an order for a procedure the catalogue lacks: kept as ERROR (AE) in the message log
    handler.handle(orm("MSG1", "PL1", code="NOPE"), "127.0.0.1:4000")
    assert InboundMessage.objects.get(control_id="MSG1").status == InboundMessage.Status.ERROR
    OutboundJob.objects.create(
        kind="hl7.order_status", destination="HIS", state=OutboundJob.State.FAILED,
        attempts=20, last_error="connection refused",
    )
    # registered with an age and no birth date, as HIS feeds in China often are
    services.patient_upsert(patient_id="P0007", issuer="DEMO", name="=赵^雷", age="045Y",
                            actor=actor)
    admin = User.objects.create_superuser("admin", "", "zh-pages-password")
    return {"admin": admin, "step": arrived}


def test_every_page_in_chinese_shows_no_english(department):
    client = Client()
    client.force_login(department["admin"])
    client.post("/i18n/setlang/", {"language": "zh-hans"})
    unscheduled = ScheduledProcedureStep.objects.filter(status=StepStatus.UNSCHEDULED).first()
    queries = {
        "order_create": f"?patient={Patient.objects.first().pk}",
        "book": f"?step={unscheduled.pk}",
        "patient_list": "?q=wang",
        "pinyin_suggestion": "?ideographic_family=%E7%8E%8B&ideographic_given=%E5%B0%8F%E4%B8%9C",
    }
    step = department["step"].pk
    #: Pages of one record: every patient and order of the department, one step of each page.
    pages = {
        "patient_detail": list(Patient.objects.values_list("pk", flat=True)),
        "patient_edit": [Patient.objects.first().pk],
        "order_detail": list(Order.objects.values_list("pk", flat=True)),
        "order_edit": [Order.objects.first().pk],
        "order_cancel": [Order.objects.first().pk],
        "move": [step],
        "no_show": [step],
        "free_slots": [step],
        "appointment_slip": [step],
        "checkin_row": [step],
        "hl7_message": list(InboundMessage.objects.values_list("pk", flat=True)),
    }
    data = _data_strings()
    found: dict[str, list[str]] = {}
    paths = []
    for name, route in _get_patterns():
        if "<int:pk>" in route:
            paths += [(name, "/" + route.replace("<int:pk>", str(pk)))
                      for pk in pages.get(name, ())]
        else:
            paths.append((name, "/" + route.replace("<str:modality>", "CT")))
    assert len(paths) > 30
    for name, path in paths:
        response = client.get(path + queries.get(name, ""))
        if response.status_code == 405:
            continue  # a POST-only action; its answers are pages checked elsewhere
        assert response.status_code == 200, (path, response.status_code)
        if "html" not in response.get("Content-Type", ""):
            continue
        words = english_words(visible_text(response.content.decode()), data)
        if words:
            found[path] = sorted(set(words))
    assert found == {}, "\n".join(f"{k}: {v}" for k, v in found.items())


def test_the_login_page_and_a_refused_form_show_no_english(department):
    anonymous = Client()
    anonymous.post(reverse("web:set_language"), {"language": "zh-hans"})
    data = _data_strings()
    login = anonymous.get(reverse("login")).content.decode()
    # each language is named in itself, marked translate="no"
    assert 'lang="en" translate="no" class="link">English</button>' in login
    assert english_words(visible_text(login), data) == []
    client = Client()
    client.force_login(department["admin"])
    client.post(reverse("web:set_language"), {"language": "zh-hans"})
    refused = client.post(reverse("web:patient_create"), {"patient_id": "X^1",
                                                          "age_value": "-3"})
    assert refused.status_code == 200
    assert english_words(visible_text(refused.content.decode()), data) == []


def test_the_settings_index_names_every_app_and_model_in_chinese(department):
    """The admin's index (every app and model an administrator configures); the products Django
    and django-axes keep their names. Each model's own pages are walked by
    ``test_every_admin_page_in_chinese_shows_no_english``."""
    client = Client()
    client.force_login(department["admin"])
    client.post(reverse("web:set_language"), {"language": "zh-hans"})
    page = client.get(reverse("admin:index")).content.decode()
    assert set(english_words(visible_text(page), _data_strings())) <= {"Django", "Axes"}


def test_the_check_finds_english_and_codes():
    html = '<p>Booked on CT1</p><button title="Check in">签到</button><td>SCHEDULED</td>'
    assert english_words(visible_text(html), []) == ["Booked", "on", "Check", "in", "SCHEDULED"]
    assert english_words(visible_text('<td translate="no">MSH|HIS</td><p>CT 头部</p>'), []) == []


# --- refusals: what the services refuse reads in Chinese, with its facts ----------------------


def _zh_desk(client_as):
    from ris.roles import Role

    client = client_as(Role.FRONT_DESK, Role.TECHNOLOGIST)
    client.post(reverse("web:set_language"), {"language": "zh-hans"})
    return client


def _assert_chinese(text: str, data: list[str]) -> None:
    assert english_words([text], data) == [], text


def test_a_booking_conflict_reads_in_chinese(client_as, ct_head, ct1):
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    make_order(procedure_type=ct_head, station=ct1, start=at(9, 0, day=tomorrow))
    step = first_step(make_order(procedure_type=ct_head))
    response = _zh_desk(client_as).post(reverse("web:book"), {
        "step": step.pk, "station": ct1.pk, "date": tomorrow.isoformat(), "time": "09:10",
    })
    [error] = response.context["form"].non_field_errors()
    assert f"CT1 在 {tomorrow:%Y-%m-%d} 09:00 起已有 20 分钟的预约" in error
    _assert_chinese(error, _data_strings())


def test_a_stale_check_in_reads_in_chinese_with_both_statuses(client_as, ct_head, ct1):
    step = first_step(make_order(procedure_type=ct_head, station=ct1, start=at(9)))
    for status in (StepStatus.STARTED, StepStatus.COMPLETED):
        services.step_transition(step=step, to=status, actor=Actor.ae("CT1"))
    response = _zh_desk(client_as).post(
        reverse("web:checkin", kwargs={"pk": step.pk}), {"action": "arrived"},
        HTTP_HX_REQUEST="true",
    )
    error = response.context["error"]
    assert "已完成" in error and "已签到" in error
    _assert_chinese(error, _data_strings())


def test_linking_a_performed_step_to_a_cancelled_exam_reads_in_chinese(client_as, ct_head, ct1):
    step = first_step(make_order(procedure_type=ct_head, station=ct1, start=at(9)))
    ds = ModalityScu(port=0).pps_for(step)
    ds.ScheduledStepAttributesSequence[0].ScheduledProcedureStepID = TYPO_SPS
    ds.ScheduledStepAttributesSequence[0].AccessionNumber = ""
    pps = mpps_services.pps_create(sop_instance_uid=generate_uid(), dataset=ds,
                                   actor=Actor.ae("CT1"))
    order = step.requested_procedure.order
    services.order_cancel(order=order, actor=Actor.system("desk"), reason="duplicate order")
    response = _zh_desk(client_as).post(
        reverse("web:mpps_link", kwargs={"pk": pps.pk}),
        {"accession_number": order.accession_number}, follow=True,
    )
    [message] = [str(m) for m in response.context["messages"]]
    assert order.accession_number in message and "申请单" in message
    _assert_chinese(message, _data_strings())


def test_booking_warnings_and_a_desk_cancel_read_in_chinese(client_as, ct_head, ct1, ct2):
    """The three warnings before a booking by hand, the cancel page's coded reasons, the
    cancelled order's reason and its undo, all without English."""
    from worklist.models import SlotReservation

    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    SlotReservation.objects.create(station=ct1, weekday=tomorrow.weekday(),
                                   starts_at=dt.time(18), ends_at=dt.time(20),
                                   kind=SlotReservation.Kind.URGENT)
    ct_head.stations.add(ct2)
    other = make_order(procedure_type=ct_head, station=ct2, start=at(18, 40, day=tomorrow))
    step = first_step(make_order(procedure_type=ct_head, patient=other.patient))
    desk = _zh_desk(client_as)
    response = desk.post(reverse("web:book"), {
        "step": step.pk, "station": ct1.pk, "date": tomorrow.isoformat(), "time": "18:50",
    })
    warnings = response.context["warnings"]
    assert len(warnings) == 3  # closed at 19:00, urgent time, the patient on CT2 at 18:40
    for warning in warnings:
        _assert_chinese(warning, _data_strings())
    page = visible_text(response.content.decode())
    assert english_words(page, _data_strings()) == []
    cancel = desk.get(reverse("web:order_cancel", kwargs={"pk": other.pk})).content.decode()
    assert english_words(visible_text(cancel), _data_strings()) == []
    desk.post(reverse("web:order_cancel", kwargs={"pk": other.pk}), {"reason": "duplicate"})
    detail = desk.get(reverse("web:order_detail", kwargs={"pk": other.pk})).content.decode()
    assert "重复申请" in detail and "撤销取消" in detail
    assert english_words(visible_text(detail), _data_strings()) == []


# --- the admin: every registered model's list, add and change page ----------------------------


def _admin_records(department) -> None:
    """One record of each configuration and log model the demo department leaves empty, so that
    each change list shows its columns and each change page a record."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from mpps.forwarding.models import CommitmentRequest, PacsDestination, StepImages
    from ris.models import Heartbeat, HL7Sender
    from worklist.models import (
        Counter,
        ModalityDefaultStation,
        ScheduleException,
        StationRule,
        Visit,
    )

    ct1 = Device.objects.get(ae_title="CT1")
    now = timezone.now()
    # On PostgreSQL identifiers come from sequences and the counter table stays empty.
    Counter.objects.get_or_create(name="accession", defaults={"value": 1})
    if not HL7Sender.objects.exists():
        HL7Sender.objects.create(application="HIS", facility="HOSP")
    if not HL7Destination.objects.exists():
        HL7Destination.objects.create(name="HIS", host="127.0.0.1", port=2575)
    pacs = PacsDestination.objects.first() or PacsDestination.objects.create(
        name="PACS", ae_title="PACS", host="127.0.0.1", port=11112)
    ScheduleException.objects.create(station=ct1, starts=now, ends=now + dt.timedelta(hours=2),
                                     kind=ScheduleException.Kind.MAINTENANCE, reason="维护")
    StationRule.objects.create(station=ct1, modality="CT")
    ModalityDefaultStation.objects.get_or_create(modality="CT", defaults={"station": ct1})
    Heartbeat.objects.update_or_create(name="scheduler", defaults={"beat_at": now})
    CommitmentRequest.objects.create(transaction_uid=generate_uid(), destination=pacs,
                                     instance_count=1)
    StepImages.objects.get_or_create(step=department["step"],
                                     defaults={"received_instances": 1, "pacs_destination": pacs})
    if not Visit.objects.exists():  # an HL7 admission; the demo has none
        Visit.objects.create(patient=Patient.objects.first(), admission_id="V0001",
                             patient_class="I", admitted_at=now)
    Group.objects.create(name="前台")
    Token.objects.create(user=department["admin"])
    AccessAttempt.objects.create(username="admin", ip_address="127.0.0.1", user_agent="Firefox",
                                 failures_since_start=1)
    AccessLog.objects.create(username="admin", ip_address="127.0.0.1", user_agent="Firefox")
    AccessFailureLog.objects.create(username="admin", ip_address="127.0.0.1",
                                    user_agent="Firefox")


def _record_strings(obj) -> set[str]:
    """What the admin shows of one record that is data: its name and its field values, JSON
    keys and values included (a performed step's dataset, an outbound job's payload); not the
    codes of a field with choices."""
    values = {str(obj)}

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                values.add(str(key))
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, bytes | memoryview):  # an HL7 message as received
            walk(bytes(value).decode("utf-8", "replace"))
        elif isinstance(value, str):
            values.add(value)
            values.update(re.split(r"[\s|^~&\\]+", value))  # words, HL7 fields and components

    if isinstance(obj, User):  # the password's summary: algorithm, masked salt and hash
        from django.contrib.auth.hashers import identify_hasher

        values |= {str(v) for v in identify_hasher(obj.password).safe_summary(obj.password)
                   .values()}
    for field in obj._meta.concrete_fields:
        if field.is_relation:
            related = getattr(obj, field.name)
            if related is not None:
                values.add(str(related))
        elif not field.choices:  # a coded value is shown by its label, which must be Chinese
            walk(getattr(obj, field.attname))
    return values


#: Latin words on the admin's pages that are not ris's: the products' names (the site header and
#: django-axes' app), the keys of Django's own Chinese help text for a multiple choice ("按住
#: Control 键，或者 Mac 上的 Command 键"), a sign-in backend Django names, and the HTTP request
#: django-axes logs of a failed sign-in.
ADMIN_ALLOWED = {"Django", "Axes", "Control", "Command", "Mac", "LDAP", "HTTP", "GET", "POST"}

#: Django's admin writes a boolean as an icon whose ``alt`` is Python's ``True``/``False``/
#: ``None`` (``admin_list._boolean_icon``, not a translatable string); a person sees the icon.
_BOOLEAN_ICON = re.compile(r'(<img src="[^"]*/admin/img/icon-(?:yes|no|unknown)\.svg") alt="\w+"')


def test_every_admin_page_in_chinese_shows_no_english(department):
    """Each registered model's change list, add page (where the admin may add) and the change
    page of one record: field labels, help texts, choices, filters and inline titles."""
    from django.contrib import admin

    _admin_records(department)
    client = Client()
    client.force_login(department["admin"])
    client.post(reverse("web:set_language"), {"language": "zh-hans"})
    request = client.get(reverse("admin:index")).wsgi_request
    data: set[str] = set(_data_strings())
    pages = []
    for model, model_admin in admin.site._registry.items():
        info = model._meta.app_label, model._meta.model_name
        pages.append(reverse("admin:{}_{}_changelist".format(*info)))
        if model_admin.has_add_permission(request):
            pages.append(reverse("admin:{}_{}_add".format(*info)))
        records = list(model._default_manager.all()[:200])
        assert records, f"no {model._meta.label} to show"
        for record in records:
            data |= _record_strings(record)
        pages.append(reverse("admin:{}_{}_change".format(*info), args=[records[0].pk]))
    data_strings = sorted((v for v in data if v and len(v) > 1), key=len, reverse=True)
    found: dict[str, list[str]] = {}
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        html = _BOOLEAN_ICON.sub(r"\1", response.content.decode())
        words = set(english_words(visible_text(html), data_strings)) - ADMIN_ALLOWED
        if words:
            found[path] = sorted(set(words))
    assert found == {}, "\n".join(f"{k}: {v}" for k, v in found.items())
