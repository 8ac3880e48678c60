"""The MWL response cache (worklist/mwl/response_cache.py): the same bytes as the uncached
encoder for every query of a held set (with only the columns its keys need read), and every
change to what an item shows seen by the next C-FIND of a real ``ris serve``, whichever way the
change was written."""

from __future__ import annotations

import itertools

import pytest
from pydicom import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from tests.mwl.conftest import ACTOR, committed, standard_worklist
from worklist import services
from worklist.dicom import ResponseBuilder
from worklist.matching import worklist_query
from worklist.models import (
    Order,
    Patient,
    RequestedProcedure,
    ScheduledProcedureStep,
    StepStatus,
    Visit,
)
from worklist.mwl.response_cache import ResponseCache
from worklist.pn import NameProfile
from worklist.selectors import worklist_raw_rows, worklist_rows


def _identifier(top: dict, sps: dict) -> Dataset:
    ds = Dataset()
    for key, value in top.items():
        setattr(ds, key, value)
    item = Dataset()
    for key, value in sps.items():
        setattr(item, key, value)
    ds.ScheduledProcedureStepSequence = [item]
    return ds


_RETURN = {"PatientName": "", "PatientID": "", "AccessionNumber": "", "StudyInstanceUID": "",
           "RequestedProcedureID": "", "RequestedProcedureDescription": "",
           "PatientBirthDate": "", "PatientWeight": "", "AdmissionID": "",
           "CurrentPatientLocation": "", "ReferringPhysicianName": ""}
_SPS_RETURN = {"ScheduledStationAETitle": "", "ScheduledProcedureStepStartDate": "",
               "ScheduledProcedureStepStartTime": "", "Modality": "",
               "ScheduledProcedureStepID": "", "ScheduledProcedureStepDescription": "",
               "ScheduledPerformingPhysicianName": ""}

#: The held-in query set: universal, selective, broad, with a name key (a Python refinement),
#: a status asked for, an empty sequence (every item key) and a Specific Character Set asked.
QUERIES = {
    "every key": None,
    "universal": _identifier(_RETURN, _SPS_RETURN),
    "station + day": _identifier(_RETURN, {**_SPS_RETURN, "ScheduledStationAETitle": "CT1",
                                           "ScheduledProcedureStepStartDate": "20300310"}),
    "modality + days": _identifier(_RETURN, {**_SPS_RETURN, "Modality": "CT",
                                             "ScheduledProcedureStepStartDate":
                                             "20300309-20300314"}),
    "name wildcard": _identifier({**_RETURN, "PatientName": "wang*"}, _SPS_RETURN),
    "every status": _identifier(_RETURN, {**_SPS_RETURN,
                                          "ScheduledProcedureStepStatus": ""}),
    "character set asked": _identifier({**_RETURN, "SpecificCharacterSet": "ISO_IR 100"},
                                       _SPS_RETURN),
}
CHARACTER_SETS = ["ISO_IR 192", "ISO_IR 100", "GB18030", "ISO 2022 IR 58", ""]
SYNTAXES = [(True, True), (False, True), (False, False)]


@pytest.mark.django_db
def test_cached_items_are_byte_identical_to_the_uncached_encoder_for_the_held_query_set():
    standard_worklist()
    cache = ResponseCache(10_000)
    compared = 0
    for (name, identifier), charset, profile, (implicit, little) in itertools.product(
        QUERIES.items(), CHARACTER_SETS, list(NameProfile), SYNTAXES
    ):
        query = worklist_query(identifier if identifier is not None else Dataset())
        builder = ResponseBuilder(identifier, character_set=charset, name_profile=profile)
        expected = [builder.encode(row, implicit_vr=implicit, little_endian=little)
                    for row in worklist_rows(query)]
        raw = worklist_raw_rows(query, columns=builder.columns)  # as the SCP reads them
        for _ in range(2):  # encoded (a miss), then from the cache (a hit)
            encode = cache.encoder(builder, raw, implicit_vr=implicit, little_endian=little)
            assert [encode(values) for values in raw.raw] == expected, (name, charset, profile)
        compared += len(expected)
    assert compared > 1000
    assert cache.hits >= compared  # the second round came from the cache, every item of it


@pytest.mark.django_db
def test_the_raw_rows_are_the_rows_of_the_query_with_the_same_limit():
    standard_worklist()
    for identifier in QUERIES.values():
        query = worklist_query(identifier if identifier is not None else Dataset())
        for limit in (None, 1, 3):
            raw = worklist_raw_rows(query, limit=limit)
            assert [raw.row(values) for values in raw.raw] == list(
                worklist_rows(query, limit=limit)
            )


@pytest.mark.django_db
def test_a_full_cache_drops_its_oldest_items_and_keeps_answering():
    standard_worklist()
    cache = ResponseCache(3)
    query = worklist_query(Dataset())
    builder = ResponseBuilder(None)
    raw = worklist_raw_rows(query)
    encode = cache.encoder(builder, raw, implicit_vr=True, little_endian=True)
    expected = [builder.encode(raw.row(v), implicit_vr=True, little_endian=True) for v in raw.raw]
    assert [encode(v) for v in raw.raw] == expected
    assert len(cache) <= 3
    assert [encode(v) for v in raw.raw] == expected


# --- through a real ris serve: each change seen by the next query ---------------------------


def _ae() -> AE:
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    return ae


def _a01(port: int) -> Dataset:
    """Step A01's response to a query that returns what the changes below touch."""
    query = _identifier(
        {**_RETURN, "RequestingPhysician": ""},
        {**_SPS_RETURN, "ScheduledStationAETitle": "CT1"},
    )
    assoc = _ae().associate("127.0.0.1", port, ae_title="RIS")
    assert assoc.is_established
    try:
        found = [
            identifier
            for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind)
            if status is not None and status.Status in (0xFF00, 0xFF01)
        ]
    finally:
        assoc.release()
    (a01,) = [i for i in found if i.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID
              == "A01"]
    return a01


@pytest.fixture
def port(ris_service, django_db_blocker):
    with committed(django_db_blocker):
        standard_worklist()
        port = ris_service.dicom_port
        _a01(port)
        _a01(port)  # now from the cache
        yield port


def _changed(django_db_blocker, change) -> None:
    with django_db_blocker.unblock():
        change(ScheduledProcedureStep.objects.get(sps_id="A01"))


@pytest.mark.dcmtk
def test_a_patient_renamed_through_the_service_is_seen_by_the_next_query(port,
                                                                          django_db_blocker):
    assert str(_a01(port).PatientName).startswith("Wang^XiaoDong")

    _changed(django_db_blocker, lambda step: services.patient_update(
        patient=step.requested_procedure.order.patient, actor=ACTOR, name="Li^Lei"))

    assert str(_a01(port).PatientName) == "Li^Lei"


@pytest.mark.dcmtk
def test_a_patient_changed_by_a_bulk_update_is_seen_by_the_next_query(port, django_db_blocker):
    # No signal, no save(): what another tool, a migration or a hand edit would do.
    _changed(django_db_blocker, lambda step: Patient.objects.filter(
        pk=step.requested_procedure.order.patient_id).update(birth_date="1981-04-13"))

    assert _a01(port).PatientBirthDate == "19810413"


@pytest.mark.dcmtk
def test_a_step_change_is_seen_by_the_next_query(port, django_db_blocker):
    _changed(django_db_blocker, lambda step: ScheduledProcedureStep.objects.filter(
        pk=step.pk).update(description="CT head late", performing_physician="Wilson^James"))

    sps = _a01(port).ScheduledProcedureStepSequence[0]
    assert sps.ScheduledProcedureStepDescription == "CT head late"
    assert str(sps.ScheduledPerformingPhysicianName) == "Wilson^James"


@pytest.mark.dcmtk
def test_a_step_moved_through_the_service_is_seen_by_the_next_query(port, django_db_blocker):
    def move(step):
        services.step_schedule(step=step, start=step.scheduled_start.replace(hour=11),
                               actor=ACTOR)

    _changed(django_db_blocker, move)

    assert _a01(port).ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime == "110000"


@pytest.mark.dcmtk
def test_a_requested_procedure_change_is_seen_by_the_next_query(port, django_db_blocker):
    _changed(django_db_blocker, lambda step: RequestedProcedure.objects.filter(
        pk=step.requested_procedure_id).update(description="CT head and neck"))

    assert _a01(port).RequestedProcedureDescription == "CT head and neck"


@pytest.mark.dcmtk
def test_an_order_change_is_seen_by_the_next_query(port, django_db_blocker):
    _changed(django_db_blocker, lambda step: Order.objects.filter(
        pk=step.requested_procedure.order_id).update(accession_number="ACC-NEW",
                                                      requesting_physician="Yang^Cristina"))

    a01 = _a01(port)
    assert a01.AccessionNumber == "ACC-NEW"
    assert str(a01.RequestingPhysician) == "Yang^Cristina"


@pytest.mark.dcmtk
def test_a_visit_change_is_seen_by_the_next_query(port, django_db_blocker):
    def change(step):
        visit = step.requested_procedure.order.visit
        services.visit_upsert(patient=visit.patient, admission_id=visit.admission_id,
                              actor=ACTOR, assigned_location="Ward 7")
        Visit.objects.filter(pk=visit.pk).update(admission_id="ADM-7")

    _changed(django_db_blocker, change)

    a01 = _a01(port)
    assert a01.CurrentPatientLocation == "Ward 7"
    assert a01.AdmissionID == "ADM-7"


@pytest.mark.dcmtk
def test_a_step_that_leaves_the_worklist_is_not_answered_from_the_cache(port, django_db_blocker):
    def start(step):
        for status in (StepStatus.ARRIVED, StepStatus.STARTED, StepStatus.COMPLETED):
            services.step_transition(step=step, to=status, actor=ACTOR)

    _changed(django_db_blocker, start)

    with pytest.raises(ValueError):  # A01 is no longer among the answers
        _a01(port)
