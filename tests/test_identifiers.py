"""Identifiers stay unique when several writers create orders at the same moment."""

import threading

import pytest
from django.db import connection

from tests.factories import PatientFactory, ProcedureTypeFactory, make_order
from worklist.models import Order, RequestedProcedure, ScheduledProcedureStep

THREADS = 8
ORDERS_PER_THREAD = 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_order_creation_yields_unique_identifiers():
    patient = PatientFactory()
    ptype = ProcedureTypeFactory()
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def writer():
        try:
            barrier.wait()
            for _ in range(ORDERS_PER_THREAD):
                make_order(patient=patient, procedure_type=ptype)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    total = THREADS * ORDERS_PER_THREAD
    accessions = list(Order.objects.values_list("accession_number", flat=True))
    uids = list(RequestedProcedure.objects.values_list("study_instance_uid", flat=True))
    rp_ids = list(RequestedProcedure.objects.values_list("requested_procedure_id", flat=True))
    sps_ids = list(ScheduledProcedureStep.objects.values_list("sps_id", flat=True))
    for values in (accessions, uids, rp_ids, sps_ids):
        assert len(values) == total
        assert len(set(values)) == total


@pytest.mark.django_db(transaction=True)
def test_concurrent_uids_under_a_configured_root_are_unique(settings):
    settings.RIS_UID_ROOT = "1.2.3.4"
    ptype = ProcedureTypeFactory()
    patient = PatientFactory()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer():
        try:
            barrier.wait()
            for _ in range(5):
                make_order(patient=patient, procedure_type=ptype)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    uids = list(RequestedProcedure.objects.values_list("study_instance_uid", flat=True))
    assert len(set(uids)) == 20
    assert all(uid.startswith("1.2.3.4.1.") for uid in uids)
