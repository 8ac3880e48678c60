"""English and Simplified Chinese, switched per user with Django's set_language."""

from __future__ import annotations

from django.urls import reverse

from tests.factories import at, make_order


def test_switching_to_chinese_translates_the_pages_and_model_labels(desk, ct_head, ct1):
    make_order(procedure_type=ct_head, station=ct1, start=at(9))
    response = desk.post(reverse("web:set_language"), {"language": "zh-hans", "next": "/"})
    assert response.status_code == 302
    page = desk.get(reverse("web:dashboard")).content.decode()
    assert '<html lang="zh-hans">' in page
    assert "今日" in page and "工作列表看板" in page
    assert "已预约" in page  # StepStatus.SCHEDULED, a gettext_lazy model label


def test_switching_back_to_english(desk):
    desk.post(reverse("web:set_language"), {"language": "zh-hans"})
    desk.post(reverse("web:set_language"), {"language": "en"})
    page = desk.get(reverse("web:dashboard")).content.decode()
    assert '<html lang="en">' in page and "Worklist board" in page


def test_form_errors_are_translated(desk):
    desk.post(reverse("web:set_language"), {"language": "zh-hans"})
    response = desk.post(reverse("web:patient_create"), {"patient_id": "X1"})
    assert "请至少填写一组姓名" in response.content.decode()


def test_the_login_page_offers_both_languages(client, db):
    page = client.get(reverse("login")).content.decode()
    assert 'value="zh-hans"' in page and "简体中文" in page


def test_times_are_shown_in_the_department_time_zone(desk, ct_head, ct1, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    order = make_order(procedure_type=ct_head, station=ct1, start=at(9, 5))
    page = desk.get(reverse("web:order_detail", kwargs={"pk": order.pk})).content.decode()
    assert f"{at(9).date():%Y-%m-%d} 09:05" in page


def test_check_in_buttons_are_verbs_and_statuses_are_states_in_chinese(desk, ct_head, ct1):
    from tests.factories import first_step

    step = first_step(make_order(procedure_type=ct_head, station=ct1, start=at(9)))
    desk.post(reverse("web:set_language"), {"language": "zh-hans"})
    day = f"{step.scheduled_start:%Y-%m-%d}"
    page = desk.get(reverse("web:day_list"), {"date": day}).content.decode()
    assert ">签到</button>" in page and ">爽约</a>" in page  # a no-show asks first: a link
    desk.post(reverse("web:checkin", kwargs={"pk": step.pk}), {"action": "arrived"})
    page = desk.get(reverse("web:day_list"), {"date": day}).content.decode()
    assert "已签到" in page and ">候检</button>" in page
    assert "已到达" not in page and "已就绪" not in page


def test_the_calendar_is_a_booking_calendar_in_chinese(desk):
    desk.post(reverse("web:set_language"), {"language": "zh-hans"})
    page = desk.get(reverse("web:calendar")).content.decode()
    assert "预约日历" in page and "排班日历" not in page


def test_admin_apps_and_models_have_chinese_names(admin_client):
    admin_client.post(reverse("web:set_language"), {"language": "zh-hans"})
    page = admin_client.get(reverse("admin:index")).content.decode()
    for name in ("HL7 发送方", "HL7 接收方", "PACS 目的地", "设备", "患者", "申请单",
                 "工作列表：患者、申请单与预约检查", "转发到 PACS"):
        assert name in page, name
    for english in ("H l7", "目的地s", "Hl7", "Devices", "Patients", "Pacs destinations"):
        assert english not in page, english
