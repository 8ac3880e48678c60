"""DICOM network constants every SCP of ris offers alike (worklist, MPPS, the AE's Verification).

They live at the bottom of the house, beside the worklist domain, so that the worklist adapter,
the MPPS adapter and the AE assembly in ``ris.dicom_server`` share one list without any of them
importing another (docs/architecture.md).
"""

TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent by old modalities)
]
