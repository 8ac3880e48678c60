"""Rule 5 of docs/architecture.md: domain events are signals, each receiver connected in its own
app's ``ready()``. This lists the wiring, so a receiver that is lost (or added on import, where
it depends on import order) shows up here."""

from django.db.models.signals import m2m_changed, post_delete, post_save

from mpps import signals as mpps_signals
from worklist import signals as worklist_signals
from worklist.models import Device, ProcedureOrderCode, ProcedureType


def _receivers(signal, sender=None) -> set[str]:
    """Dotted names of the live receivers of ``signal`` (for ``sender``, when given)."""
    if sender is not None:
        live = signal._live_receivers(sender)
        live = live[0] if isinstance(live, tuple) else live  # Django 5 returns (sync, async)
    else:
        live = [ref() for _, ref, *_ in signal.receivers]
    return {f"{r.__module__}.{r.__qualname__}" for r in live if r is not None}


def test_order_status_changes_queue_the_his_status_message():
    assert _receivers(worklist_signals.order_status_changed) == {
        "ris.hl7.notifications.on_order_status_changed"
    }


def test_reschedules_queue_the_his_status_message():
    assert _receivers(worklist_signals.step_rescheduled) == {
        "ris.hl7.notifications.on_step_rescheduled"
    }


def test_received_performed_steps_queue_the_pacs_relay():
    assert _receivers(mpps_signals.pps_received) == {"mpps.forwarding.services.on_pps_received"}


def test_a_patient_merge_or_new_identifier_corrects_the_gateway_spool_and_tells_archives():
    assert _receivers(worklist_signals.patient_identity_changed) == {
        "mpps.forwarding.services.on_patient_identity_changed",
        "ris.hl7.notifications.on_patient_identity_changed",
    }


def test_events_nobody_listens_to_yet_have_no_receiver():
    # Sent by the services for interfaces to come (DICOMweb, FHIR subscriptions): wiring one of
    # them is a deliberate change, and this list changes with it.
    for signal in (
        worklist_signals.step_status_changed,
        mpps_signals.pps_linked,
    ):
        assert _receivers(signal) == set()


def test_catalogue_edits_clear_the_hl7_listeners_procedure_cache():
    for model in (ProcedureType, ProcedureOrderCode, Device):
        for signal in (post_save, post_delete):
            assert "ris.hl7.mapping.forget_catalogue" in _receivers(signal, model)
    assert "ris.hl7.mapping.forget_catalogue" in _receivers(
        m2m_changed, ProcedureType.stations.through
    )


def test_order_corrections_queue_the_swf_b_procedure_update():
    assert _receivers(worklist_signals.order_updated) == {
        "ris.hl7.notifications.on_order_updated"
    }


def test_patient_changes_queue_the_adt_to_archives_that_keep_patients():
    assert _receivers(worklist_signals.patient_updated) == {
        "ris.hl7.notifications.on_patient_updated"
    }
    assert _receivers(worklist_signals.patients_linked) == {
        "ris.hl7.notifications.on_patients_linked"
    }


def test_new_orders_queue_the_swf_b_order_message():
    assert _receivers(worklist_signals.order_created) == {"ris.hl7.notifications.on_order_created"}


def test_routing_rule_and_station_edits_clear_the_routing_cache():
    from worklist.models import ModalityDefaultStation, StationRule

    for model in (StationRule, ModalityDefaultStation, Device):
        for signal in (post_save, post_delete):
            assert "worklist.routing.forget" in _receivers(signal, model)


def test_audit_rows_queue_the_atna_audit_messages():
    assert _receivers(worklist_signals.audit_recorded) == {"ris.atna.on_audit_recorded"}
