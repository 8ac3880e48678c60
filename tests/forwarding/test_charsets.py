"""Instances sent to the storage gateway with GB18030 text under a false ISO_IR 192 label are
spooled (and forwarded) with the label corrected. pynetdicom sends the file's bytes as they are."""

from __future__ import annotations

import pytest
from pydicom import dcmread

from tests.forwarding.conftest import spool_files
from tests.forwarding.instances import ct_study, store, write_files

pytestmark = pytest.mark.django_db(transaction=True)


def test_gb18030_instance_labelled_iso_ir_192_is_spooled_as_gb18030(gateway, tmp_path):
    value = "李^娜".encode("gb18030")
    placeholder = "Z" * len(value)
    datasets = ct_study(1, patient_id="ZH-GW-1", patient_name=placeholder, charset="ISO_IR 192")
    (path,) = write_files(datasets, tmp_path)
    path.write_bytes(path.read_bytes().replace(placeholder.encode(), value))
    assert store(gateway.dicom_port, [str(path)]) == [0x0000]
    (spooled,) = spool_files(gateway, datasets)
    ds = dcmread(spooled)
    assert ds.SpecificCharacterSet == "GB18030"
    assert str(ds.PatientName) == "李^娜"
    assert "declared ISO_IR 192 (UTF-8) but sent GB18030" in gateway.log()
