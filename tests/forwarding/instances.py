"""Small valid CT instances made with pydicom, and a modality that sends them (pynetdicom SCU)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE


def ct_study(
    count: int,
    *,
    patient_id: str = "CT-LOCAL-77",
    patient_name: str = "Typed^At The Console",
    accession: str = "",
    study_uid: str | None = None,
    series: int = 1,
    charset: str | None = None,
) -> list[Dataset]:
    """``count`` 8x8 CT images of one study spread over ``series`` series."""
    study_uid = study_uid or generate_uid()
    series_uids = [generate_uid() for _ in range(series)]
    now = dt.datetime.now()
    out = []
    for number in range(count):
        ds = Dataset()
        if charset:
            ds.SpecificCharacterSet = charset
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uids[number % series]
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = "19800101"
        ds.PatientSex = "O"
        ds.AccessionNumber = accession
        ds.StudyDate = now.strftime("%Y%m%d")
        ds.StudyTime = now.strftime("%H%M%S")
        ds.StudyID = "1"
        ds.Modality = "CT"
        ds.SeriesNumber = number % series + 1
        ds.InstanceNumber = number + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.Rows = 8
        ds.Columns = 8
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.PixelData = bytes(range(128))
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        out.append(ds)
    return out


def write_files(datasets: list[Dataset], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = directory / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def store(
    port: int, datasets: list[Dataset], *, ae_title: str = "CT01", called: str = "RIS"
) -> list[int | None]:
    """C-STORE ``datasets`` over one association like a modality; the status of each (None:
    no response, the association broke)."""
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.dimse_timeout = ae.network_timeout = ae.acse_timeout = 10
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        return [None] * len(datasets)
    statuses: list[int | None] = []
    try:
        for ds in datasets:
            if not assoc.is_established:
                statuses.append(None)
                continue
            try:
                status = assoc.send_c_store(ds)
            except (RuntimeError, OSError):  # the association went away (ris was killed)
                statuses.append(None)
                continue
            statuses.append(int(status.Status) if "Status" in status else None)
    finally:
        if assoc.is_established:
            assoc.release()
    return statuses


def dx_study(count: int = 1, **kwargs) -> list[Dataset]:
    """``count`` small DX images (Digital X-Ray Image Storage - For Presentation) of one study."""
    from pydicom.uid import DigitalXRayImageStorageForPresentation

    out = ct_study(count, **kwargs)
    for ds in out:
        ds.SOPClassUID = DigitalXRayImageStorageForPresentation
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.Modality = "DX"
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        del ds.RescaleIntercept, ds.RescaleSlope
        ds.PresentationIntentType = "FOR PRESENTATION"
    return out
