"""Generated DICOM worklist files (.wl) with a realistic spread, for the differential test against
DCMTK wlmscpfs and for bench/mwl.py: ~20 stations, 5 modalities, N days, some Chinese names with
three component groups, some Latin-1 names, all in UTF-8 (ISO_IR 192).

Deterministic for a seed, so ris and wlmscpfs serve the very same items.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

MODALITIES = ("CT", "MR", "US", "CR", "DX")
STATIONS = [f"{m}{i}" for m in MODALITIES for i in range(1, 5)]  # 20 stations
FAMILY = ["Smith", "Jones", "Brown", "Miller", "Wilson", "Moore", "Taylor", "Martin", "Lee"]
GIVEN = ["John", "Mary", "Anna", "Peter", "Paul", "Lucy", "Mark", "Eva", "Tom", "Sara"]
CHINESE = [
    ("Wang^XiaoDong", "王^小东", "wang^xiao dong"),
    ("Li^Na", "李^娜", ""),
    ("Zhang^Wei", "张^伟", "zhang^wei"),
    ("Chen^Jing", "陈^静", ""),
    ("Liu^Yang", "刘^洋", "liu^yang"),
]
LATIN1 = ["Müller^Anna", "Brontë^Émile", "Núñez^José"]
PHYSICIANS = ["House^Gregory", "Grey^Meredith", "Ross^Doug", ""]
PROCEDURES = {
    "CT": [("CTHEAD", "CT head"), ("CTCHEST", "CT chest with contrast")],
    "MR": [("MRBRAIN", "MR brain"), ("MRKNEE", "MR knee")],
    "US": [("USABD", "US abdomen")],
    "CR": [("CRCHEST", "Chest X-ray")],
    "DX": [("DXHAND", "Hand X-ray"), ("DXSPINE", "Spine X-ray")],
}


@dataclass(frozen=True)
class Spread:
    count: int
    first_day: dt.date
    days: int = 60
    seed: int = 4


def item_values(n: int, rng: random.Random, spread: Spread) -> dict:
    """The values of item ``n`` as plain Python (no pydicom: bench/mwl.py loads a million of
    them), drawing from ``rng`` in the order ``worklist_item`` always has."""
    station = STATIONS[rng.randrange(len(STATIONS))]
    modality = station[:2]
    day = spread.first_day + dt.timedelta(days=rng.randrange(spread.days))
    minute = rng.randrange(7 * 60, 19 * 60)
    start = dt.datetime.combine(day, dt.time(minute // 60, minute % 60))
    # One patient, one set of demographics: drawn from the patient number, not from the item.
    patient_number = n % max(spread.count * 2 // 3, 1)
    person = random.Random(spread.seed * 1_000_003 + patient_number)
    roll = person.random()
    if roll < 0.15:
        alpha, ideo, phon = CHINESE[person.randrange(len(CHINESE))]
        name = "=".join([alpha, ideo, phon]).rstrip("=")
    elif roll < 0.2:
        name = LATIN1[person.randrange(len(LATIN1))]
    else:
        name = f"{person.choice(FAMILY)}^{person.choice(GIVEN)}"
    birth = f"{person.randrange(1930, 2020)}{person.randrange(1, 13):02d}15"
    sex = person.choice("MF")
    weight = str(person.randrange(40, 110))
    allergies = person.choice(["", "", "", "Iodine"])
    code, meaning = rng.choice(PROCEDURES[modality])
    referring = rng.choice(PHYSICIANS)
    requesting = rng.choice(PHYSICIANS)
    priority = rng.choice(["ROUTINE", "ROUTINE", "HIGH", "STAT"])
    admission = f"V{n:07d}" if rng.random() < 0.3 else ""
    location = rng.choice(["Ward 3", "ER"]) if admission else ""
    performing = rng.choice(PHYSICIANS)
    return {
        "station": station, "modality": modality, "start": start,
        "patient_id": f"P{patient_number:07d}", "name": name, "birth": birth, "sex": sex,
        "weight": weight, "allergies": allergies, "code": code, "meaning": meaning,
        "referring": referring, "requesting": requesting, "priority": priority,
        "admission": admission, "location": location, "performing": performing,
        "accession": f"ACC{n:07d}", "study_uid": f"1.2.826.0.1.3680043.10.543.{spread.seed}.{n}",
        "rp_id": f"RP{n:07d}", "sps_id": f"SPS{n:07d}",
    }


def worklist_item(n: int, rng: random.Random, spread: Spread) -> Dataset:
    v = item_values(n, rng, spread)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.AccessionNumber = v["accession"]
    ds.ReferringPhysicianName = v["referring"]
    ds.PatientName = v["name"]
    ds.PatientID = v["patient_id"]
    ds.IssuerOfPatientID = "HOSP"
    ds.PatientBirthDate = v["birth"]
    ds.PatientSex = v["sex"]
    ds.PatientWeight = v["weight"]
    ds.MedicalAlerts = ""
    ds.Allergies = v["allergies"]
    ds.PregnancyStatus = 4
    ds.StudyInstanceUID = v["study_uid"]
    ds.RequestingPhysician = v["requesting"]
    ds.RequestedProcedureDescription = v["meaning"]
    rp_code = Dataset()
    rp_code.CodeValue = v["code"]
    rp_code.CodingSchemeDesignator = "L"
    rp_code.CodeMeaning = v["meaning"]
    ds.RequestedProcedureCodeSequence = [rp_code]
    ds.RequestedProcedureID = v["rp_id"]
    ds.RequestedProcedurePriority = v["priority"]
    ds.AdmissionID = v["admission"]
    ds.CurrentPatientLocation = v["location"]

    sps = Dataset()
    sps.ScheduledStationAETitle = v["station"]
    sps.ScheduledProcedureStepStartDate = v["start"].strftime("%Y%m%d")
    sps.ScheduledProcedureStepStartTime = v["start"].strftime("%H%M%S")
    sps.Modality = v["modality"]
    sps.ScheduledPerformingPhysicianName = v["performing"]
    sps.ScheduledProcedureStepDescription = v["meaning"]
    protocol = Dataset()
    protocol.CodeValue = f"{v['code']}-P"
    protocol.CodingSchemeDesignator = "L"
    protocol.CodeMeaning = f"{v['meaning']} protocol"
    sps.ScheduledProtocolCodeSequence = [protocol]
    sps.ScheduledProcedureStepID = v["sps_id"]
    sps.ScheduledStationName = v["station"]
    sps.ScheduledProcedureStepLocation = f"Room {v['station']}"
    sps.PreMedication = ""
    sps.RequestedContrastAgent = "Iodine" if v["code"] == "CTCHEST" else ""
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def write_worklist(directory: Path, spread: Spread) -> list[Path]:
    """Write ``spread.count`` items as ``<n>.wl`` into ``directory`` (created), with the
    ``lockfile`` wlmscpfs wants beside them."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "lockfile").touch()
    rng = random.Random(spread.seed)
    paths = []
    for n in range(1, spread.count + 1):
        ds = worklist_item(n, rng, spread)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.31"
        meta.MediaStorageSOPInstanceUID = f"{ds.StudyInstanceUID}.1"
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        path = directory / f"{n:07d}.wl"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
