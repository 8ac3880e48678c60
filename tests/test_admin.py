"""The Django admin: configuration is editable and audited; the domain's records are read-only.

A step's time, station or status changed here would skip the state machine, the overlap check,
the audit trail and the HIS and PACS messages (docs/architecture.md, rule 2).
"""

import pytest
from django.contrib.auth import get_user_model

from tests.factories import DeviceFactory, at, first_step, make_order
from worklist.models import AuditEvent, Device, Order, Patient, ScheduledProcedureStep

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.org", "pw-root-1")
    client.force_login(user)
    return client


@pytest.fixture
def step():
    return first_step(make_order(station=DeviceFactory(ae_title="CT1"), start=at(9)))


def _change_url(model, pk) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/{pk}/change/"


def test_an_admin_post_that_would_move_a_step_is_refused_and_changes_nothing(admin_client, step):
    other = DeviceFactory(ae_title="CT2")
    before = ScheduledProcedureStep.objects.values().get(pk=step.pk)
    trail = AuditEvent.objects.count()

    response = admin_client.post(
        _change_url(ScheduledProcedureStep, step.pk),
        {"station": other.pk, "status": "COMPLETED", "scheduled_start_0": "2030-01-01",
         "scheduled_start_1": "08:00:00", "requested_procedure": step.requested_procedure_id},
    )

    assert response.status_code == 403
    assert ScheduledProcedureStep.objects.values().get(pk=step.pk) == before
    assert AuditEvent.objects.count() == trail


def test_steps_orders_and_patients_are_shown_read_only(admin_client, step):
    order = step.requested_procedure.order
    for model, pk in ((ScheduledProcedureStep, step.pk), (Order, order.pk),
                      (Patient, order.patient_id)):
        page = admin_client.get(_change_url(model, pk))
        assert page.status_code == 200
        assert page.context["has_change_permission"] is False
        assert page.context["has_delete_permission"] is False


@pytest.mark.parametrize("path", ["worklist/order/add/", "worklist/patient/add/",
                                  "worklist/scheduledprocedurestep/add/",
                                  "mpps/performedprocedurestep/add/"])
def test_the_admin_adds_no_domain_record(admin_client, path):
    assert admin_client.get(f"/admin/{path}").status_code == 403


def test_an_order_cannot_be_deleted_in_the_admin(admin_client, step):
    order = step.requested_procedure.order
    url = f"/admin/worklist/order/{order.pk}/delete/"
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert Order.objects.filter(pk=order.pk).exists()


def test_a_device_edited_in_the_admin_is_saved_with_its_audit_row(admin_client):
    device = DeviceFactory(ae_title="US1", station_name="US1")
    page = admin_client.get(_change_url(Device, device.pk)).context
    form = page["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None}
    for inline in page["inline_admin_formsets"]:  # the station's schedule, unchanged
        management = inline.formset.management_form
        data.update({management.add_prefix(k): v for k, v in management.initial.items()})
    data["station_name"] = "US ROOM 1"

    response = admin_client.post(_change_url(Device, device.pk), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    device.refresh_from_db()
    assert device.station_name == "US ROOM 1"
    event = AuditEvent.objects.filter(action="device.update", object_id=str(device.pk)).get()
    assert event.actor == "root"
    assert event.before["station_name"] == "US1"
    assert event.after["station_name"] == "US ROOM 1"


def test_a_device_deleted_in_the_admin_keeps_its_last_values_in_the_trail(admin_client):
    device = DeviceFactory(ae_title="DX9")
    response = admin_client.post(f"/admin/worklist/device/{device.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Device.objects.filter(pk=device.pk).exists()
    event = AuditEvent.objects.get(action="device.delete", object_id=str(device.pk))
    assert event.before["ae_title"] == "DX9"
