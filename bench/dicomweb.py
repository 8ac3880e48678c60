"""MWL-RS against C-FIND: one station's day and a modality's day, with 100k steps.

Loads the steps of ``bench/api.py`` (100,000: 20 stations, 30 days), starts one real
``ris serve --only web,dicom`` and asks the same worklist query both ways, side by side:

- C-FIND: one DCMTK ``findscu -W`` process per query (association, query, release), as a
  modality does it;
- MWL-RS: ``GET /dicomweb/modality-scheduled-procedure-steps?...`` over one keep-alive HTTP
  connection with a token, the same keys as ``includefield``; and the same GET on a new
  connection each time (as a modality that does not keep connections would).

The items are compared once (same count). Median and p95 in ms, ``--requests`` timed runs each.

    python3 bench/dicomweb.py                      # SQLite
    python3 bench/dicomweb.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._harness import drop_database, free_port, fresh_database, port_open, start_serve  # noqa: E402
from bench.api import DAYS, load_steps, summary  # noqa: E402
from tests.mwl.dcmtk import tool  # noqa: E402

SPS = "ScheduledProcedureStepSequence"
RETURN = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
          "StudyInstanceUID", "RequestedProcedureID", "RequestedProcedureDescription",
          f"{SPS}.ScheduledProcedureStepStartDate", f"{SPS}.ScheduledProcedureStepStartTime",
          f"{SPS}.ScheduledProcedureStepID", f"{SPS}.ScheduledProcedureStepDescription"]


def findscu(port: int, match: dict[str, str]) -> tuple[float, int]:
    args = [tool("findscu"), "-W", "-v", "-aec", "RIS", "-aet", "BENCH"]
    for name in RETURN:
        if name not in match:
            args += ["-k", name.replace(f"{SPS}.", f"{SPS}[0].") + "="]
    for name, value in match.items():
        args += ["-k", f"{name.replace(f'{SPS}.', f'{SPS}[0].')}={value}"]
    started = time.perf_counter()
    out = subprocess.run([*args, "127.0.0.1", str(port)], capture_output=True, text=True,
                         errors="replace")
    elapsed = (time.perf_counter() - started) * 1000
    text = out.stdout + out.stderr
    if "Final Find Response (Success)" not in text:
        raise SystemExit(text[-2000:])
    return elapsed, text.count("(Pending)")


def path_of(match: dict[str, str]) -> str:
    params = [*match.items(), *(("includefield", n) for n in RETURN if n not in match)]
    return "/dicomweb/modality-scheduled-procedure-steps?" + urllib.parse.urlencode(params)


def get(connection: http.client.HTTPConnection, token: str, path: str) -> tuple[float, int]:
    started = time.perf_counter()
    connection.request("GET", path, headers={"Authorization": f"Token {token}",
                                             "Accept": "application/dicom+json"})
    response = connection.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status not in (200, 204):
        raise SystemExit(f"{path}: HTTP {response.status}: {body[:300]!r}")
    return elapsed, len(json.loads(body)) if body else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    url, data_dir = fresh_database(args.database_url, "dicomweb")
    http_port, dicom_port = free_port(), free_port()
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": url, "RIS_DATA_DIR": data_dir, "RIS_HTTP": f"127.0.0.1:{http_port}",
        "RIS_DICOM_PORT": str(dicom_port), "RIS_DICOM_HOST": "127.0.0.1",
        "RIS_ADMIN_PASSWORD": "bench-admin-password", "RIS_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "ris.settings",
    })
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.authtoken.models import Token

    process = None
    try:
        call_command("migrate", interactive=False, verbosity=0)
        first_day = dt.date(2026, 12, 1)
        started = time.perf_counter()
        load_steps(args.steps, first_day)
        loaded_in = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        user = User.objects.create_user("bench-modality")
        user.groups.add(Group.objects.get(name="technologist"))
        token = Token.objects.create(user=user).key
        vendor = connection.vendor
        connection.close()
        process = start_serve(env, "web,dicom", port_open(dicom_port), "listen for DICOM")
        deadline = time.monotonic() + 60
        while not port_open(http_port)() and time.monotonic() < deadline:
            time.sleep(0.3)
        day = (first_day + dt.timedelta(days=DAYS // 2)).strftime("%Y%m%d")
        queries = {
            "one station, one day": {f"{SPS}.ScheduledStationAETitle": "CT1",
                                     f"{SPS}.ScheduledProcedureStepStartDate": day},
            "one modality, one day": {f"{SPS}.Modality": "MR",
                                      f"{SPS}.ScheduledProcedureStepStartDate": day},
        }
        print(f"database: {vendor}; {args.steps} steps loaded in {loaded_in:.0f} s; "
              f"{args.requests} timed runs per query after 3 warm-ups")
        for name, match in queries.items():
            path = path_of(match)
            keep = http.client.HTTPConnection("127.0.0.1", http_port, timeout=60)
            c_find, web, fresh = [], [], []
            counts = set()
            for i in range(args.requests + 3):
                elapsed, n = findscu(dicom_port, match)
                counts.add(("C-FIND", n))
                if i >= 3:
                    c_find.append(elapsed)
                try:
                    elapsed, n = get(keep, token, path)
                except http.client.RemoteDisconnected:
                    # gunicorn closes a connection idle for its keep-alive time (2 s), which
                    # a long findscu run in between can exceed: reconnect and time the retry.
                    keep.close()
                    keep = http.client.HTTPConnection("127.0.0.1", http_port, timeout=60)
                    elapsed, n = get(keep, token, path)
                counts.add(("MWL-RS", n))
                if i >= 3:
                    web.append(elapsed)
                one = http.client.HTTPConnection("127.0.0.1", http_port, timeout=60)
                elapsed, _ = get(one, token, path)
                one.close()
                if i >= 3:
                    fresh.append(elapsed)
            keep.close()
            (cf_m, cf_p), (w_m, w_p), (f_m, f_p) = summary(c_find), summary(web), summary(fresh)
            print(f"  {name:22s} items {sorted(counts)}")
            print(f"    C-FIND (findscu process)   median {cf_m:6.1f} ms  p95 {cf_p:6.1f} ms")
            print(f"    MWL-RS keep-alive          median {w_m:6.1f} ms  p95 {w_p:6.1f} ms  "
                  f"ratio {w_m / cf_m:4.2f}")
            print(f"    MWL-RS new connection      median {f_m:6.1f} ms  p95 {f_p:6.1f} ms  "
                  f"ratio {f_m / cf_m:4.2f}")
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        connection.close()
        drop_database(url, args.database_url)


if __name__ == "__main__":
    main()
