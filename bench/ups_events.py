"""UPS-RS event channel: how long after a claim answers 200 its State Report reaches a subscriber.

A fresh database with N steps of today on CT1, one ``ris serve --only web,events``, the node AI1
subscribed globally with its WebSocket open (websocket-client). Each step is claimed over HTTP
(PUT .../state, IN PROGRESS) by CT1's account; the time from the 200 to the IN PROGRESS report
on the channel is measured. The channel reads the audit trail every RIS_UPS_EVENTS_POLL_MS, so
the figure is about half the poll interval plus the read.

    python3 bench/ups_events.py --steps 40 --poll-ms 500
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import drop_database, free_port, fresh_database, port_open, start_serve  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--poll-ms", type=int, default=500)
    args = parser.parse_args()
    url, data_dir = fresh_database(args.database_url, "upsevents")
    http_port, events_port = free_port(), free_port()
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": url, "RIS_DATA_DIR": data_dir, "RIS_HTTP": f"127.0.0.1:{http_port}",
        "RIS_UPS_EVENTS_HTTP": f"127.0.0.1:{events_port}",
        "RIS_UPS_EVENTS_POLL_MS": str(args.poll_ms),
        "RIS_ADMIN_PASSWORD": "bench-admin-password", "RIS_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "ris.settings",
    })
    os.environ.update(env)
    import django

    django.setup()
    import requests
    import websocket
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from worklist import services, ups
    from worklist.audit import Actor
    from worklist.models import Device, Patient, ProcedureType

    process = None
    try:
        call_command("migrate", interactive=False, verbosity=0)
        tokens = {}
        for ae in ("CT1", "AI1"):
            user = User.objects.create_user(f"bench-{ae.lower()}")
            Device.objects.create(ae_title=ae, station_name=ae, modality="CT", api_user=user)
            tokens[ae] = Token.objects.create(user=user).key
        ptype = ProcedureType.objects.create(code_value="CTHEAD", code_scheme="L",
                                             code_meaning="CT head", modality="CT")
        patient = Patient.objects.create(patient_id="BENCH1", name_alphabetic="Bench^One")
        station = Device.objects.get(ae_title="CT1")
        start = timezone.localtime().replace(hour=0, minute=5, second=0, microsecond=0)
        uids = []
        for i in range(args.steps):
            order = services.order_create(
                patient=patient, actor=Actor.system("bench"),
                procedures=[services.ProcedureRequest(
                    procedure_type=ptype, station=station,
                    scheduled_start=start + dt.timedelta(minutes=20 * i))],
            )
            uids.append(ups.workitem_uid(order.procedures.get().steps.get().pk))
        connection.close()
        process = start_serve(env, "web,events", port_open(events_port), "open the channel")
        deadline = time.monotonic() + 60
        while not port_open(http_port)() and time.monotonic() < deadline:
            time.sleep(0.3)
        base = f"http://127.0.0.1:{http_port}/dicomweb/workitems"
        watcher = requests.Session()
        watcher.headers["Authorization"] = f"Token {tokens['AI1']}"
        answer = watcher.post(f"{base}/1.2.840.10008.5.1.4.34.5/subscribers/AI1", timeout=60)
        channel = websocket.create_connection(answer.headers["Content-Location"], timeout=30,
                                              header=[f"Authorization: Token {tokens['AI1']}"])
        performer = requests.Session()
        performer.headers.update({"Authorization": f"Token {tokens['CT1']}",
                                  "Content-Type": "application/dicom+json"})
        delays = []
        for n, uid in enumerate(uids):
            body = json.dumps({"00741000": {"vr": "CS", "Value": ["IN PROGRESS"]},
                               "00081195": {"vr": "UI", "Value": [f"2.25.{n + 1}"]}})
            response = performer.put(f"{base}/{uid}/state", data=body, timeout=60)
            answered = time.perf_counter()
            assert response.status_code == 200, response.text
            while True:
                report = json.loads(channel.recv())
                if report["00001000"]["Value"] == [uid] and (
                        report.get("00741000", {}).get("Value") == ["IN PROGRESS"]):
                    break
            delays.append((time.perf_counter() - answered) * 1000)
        channel.close()
        delays.sort()
        p95 = delays[max(0, int(len(delays) * 0.95) - 1)]
        print(f"database: {connection.vendor}; poll {args.poll_ms} ms; {len(delays)} claims")
        print(f"claim 200 -> State Report received: median {statistics.median(delays):.0f} ms, "
              f"p95 {p95:.0f} ms, max {delays[-1]:.0f} ms")
    finally:
        if process is not None:
            process.terminate()
            process.wait(20)
        drop_database(url, args.database_url)


if __name__ == "__main__":
    main()
