"""Patient search at department scale: N patients (a third with Hanzi-only names, Pinyin derived),
then the web page's search (worklist.selectors.patients_matching + birth date, 50 rows in name
order) timed for Hanzi, Pinyin with and without spaces, initials, a one-letter prefix and an ID.

    .venv/bin/python bench/patient_search.py [--patients 100000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._harness import fresh_database  # noqa: E402

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾单解欧阳"
GIVEN = "小东明华伟芳娜敏静丽强磊军洋勇艳杰娟涛超秀霞平刚桂英堃文斌辉鹏宇浩"
LATIN = ["Smith", "Jones", "Brown", "Garcia", "Müller", "Nguyen", "Kim", "Ivanov"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    args = parser.parse_args()
    url, data_dir = fresh_database(args.database_url, "search")
    os.environ.update(DATABASE_URL=url, RIS_DATA_DIR=data_dir,
                      DJANGO_SETTINGS_MODULE="ris.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from web.selectors import patient_search
    from worklist import pn
    from worklist.models import Patient, PatientNameKey

    rng = random.Random(14)
    started = time.perf_counter()
    patients, keys = [], []
    for n in range(args.patients):
        if n % 3 == 0:
            ideo = f"{rng.choice(SURNAMES)}^{''.join(rng.choices(GIVEN, k=rng.choice((1, 2))))}"
            name = pn.resolve(f"={ideo}").name
        else:
            name = pn.PersonName(f"{rng.choice(LATIN)}^Pat{n}")
        patient = Patient(patient_id=f"B{n:07d}", birth_date=None)
        patient.set_person_name(name)
        patients.append(patient)
    Patient.objects.bulk_create(patients, batch_size=2000)  # bulk: no post_save, keys below
    for patient in Patient.objects.only("pk", "name_alphabetic", "name_ideographic",
                                        "name_phonetic").iterator(chunk_size=5000):
        keys += [PatientNameKey(patient_id=patient.pk, key=k)
                 for k in pn.search_keys(patient.person_name)]
    PatientNameKey.objects.bulk_create(keys, batch_size=5000)
    print(f"{args.patients} patients, {len(keys)} keys, built in "
          f"{time.perf_counter() - started:.0f} s ({django.db.connection.vendor})")
    for typed in ["王小东", "小东", "wang xiaodong", "wangxiaodong", "WANG^XIAODONG", "wxd",
                  "w", "B0050000"]:
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            found = patient_search(text=typed)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"{typed!r:18} {len(found):3} rows  median {statistics.median(times):6.1f} ms  "
              f"max {max(times):6.1f} ms")


if __name__ == "__main__":
    main()
