"""DICOM network constants every SCP of ris offers alike (worklist, MPPS, the AE's Verification).

They live at the bottom of the house, beside the worklist domain, so that the worklist adapter,
the MPPS adapter and the AE assembly in ``ris.dicom_server`` share one list without any of them
importing another (docs/architecture.md).
"""

import re

#: ris's Implementation Class UID (PS3.7 D.3.3.2), sent in every A-ASSOCIATE-RQ and -AC: a UUID
#: derived UID (PS3.5 B.2), so no organisation root is needed; fixed for all releases (the
#: version name says which one).
IMPLEMENTATION_CLASS_UID = "2.25.67846284026819526225937584792260829273"
#: Implementation Version Name (at most 16 characters).
IMPLEMENTATION_VERSION_NAME = "RIS_0.1.0"

MAX_ERROR_COMMENT = 64  # Error Comment (0000,0902) is LO
_LABEL_KEYWORD = re.compile(r"(\([0-9A-F]{4},[0-9A-F]{4}\)) [A-Za-z]+")


def error_comment(text: str) -> str:
    """Fit a message into Error Comment (0000,0902), which every SCP of ris sends: LO, so 64
    characters and no backslash (a backslash would make it two values); in the command set, so
    in the default repertoire only (no Specific Character Set applies to a command), so a
    value quoted from a request, such as a Chinese name, shows as ``?``.

    When the message is too long the keywords go first (the tags stay), then the tail.
    """
    cleaned = "".join(
        " " if c == "\\" or not c.isprintable() else c if c.isascii() else "?" for c in text)
    if len(cleaned) > MAX_ERROR_COMMENT:
        cleaned = _LABEL_KEYWORD.sub(r"\1", cleaned)
    return cleaned[:MAX_ERROR_COMMENT]


def new_ae(ae_title: str):
    """A pynetdicom AE that introduces itself as ris (not as pynetdicom) on every association,
    as SCP and as SCU, so that a peer's logs and its conformance checks name ris."""
    from pynetdicom import AE

    ae = AE(ae_title=ae_title)
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    return ae


TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent by old modalities)
]


def decode_incoming(
    event, parameter: str, *, incoming: str, calling_ae: str, guess_unlabelled: bool = True
):
    """A DIMSE request's dataset (``Identifier``, ``AttributeList``, ``ModificationList``, ...)
    read in the character set its text is really in (worklist.charsets): the one it declares,
    the sending Device's incoming character set, or GB18030 behind a false ISO_IR 192.

    pynetdicom caches the decode of ``event.identifier`` and friends; it is returned when the
    declared set is right, else a fresh decode relabelled before any of its text is read.
    """
    from io import BytesIO

    from pynetdicom.dsutils import decode

    from worklist import charsets

    attribute = {
        "Identifier": "identifier",
        "AttributeList": "attribute_list",
        "ModificationList": "modification_list",
        "DataSet": "dataset",
    }[parameter]
    raw = getattr(event.request, parameter).getvalue()
    if raw.isascii():  # no byte above 0x7F anywhere (tags and lengths included): no text to fix
        return getattr(event, attribute)
    ts = event.context.transfer_syntax

    def decoded():
        return decode(BytesIO(raw), ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)

    # Reading a sequence converts its items in the character set of that moment, so the probe
    # is a decode of its own and the cached one is returned untouched when nothing changes.
    probe = decoded()
    term = charsets.decoding_character_set(
        probe.get("SpecificCharacterSet"),
        charsets.raw_text_values(probe),
        incoming=incoming,
        source=calling_ae,
        guess_unlabelled=guess_unlabelled,
    )
    if term is None:
        return getattr(event, attribute)
    dataset = decoded()
    charsets.relabel(dataset, term)
    return dataset
