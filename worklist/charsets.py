"""Which character set a peer's DICOM text is really in, and reading ISO 2022 IR 58 correctly.

Two problems of Chinese departments live here, for every DICOM intake (C-FIND identifiers, MPPS
attribute and modification lists, instances sent to the storage gateway):

- Modalities that send GB18030 bytes without a Specific Character Set (0008,0005), or labelled
  ``ISO_IR 192`` (UTF-8). Each Device has an *incoming character set* (``as labelled``,
  ``GB18030``, ``UTF-8``) that says what its text really is; and the common lie (declared
  ISO_IR 192, bytes not UTF-8 but valid GB18030) is detected for every peer and read as GB18030
  with a warning that names the device.
- pydicom 3.0 leaves the ``ESC $ ) A`` escape of ISO 2022 IR 58 (GB2312 designated to G1) inside
  decoded text: it lists ``iso_ir_58`` among the codecs that strip their own escapes, and
  Python's ``iso_ir_58`` (an alias of GB2312) does not. A query with Annex K bytes then matched
  nothing and an imported ``.wl`` file kept the escapes in the stored name. ``install()`` makes
  pydicom strip the escape and switch back to the first character set at each delimiter, as
  PS3.5 6.1.2.5.3 says, which is what it already does for the other ISO 2022 sets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import models
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger("ris.charsets")

UTF8 = "ISO_IR 192"
GB18030 = "GB18030"


class IncomingCharacterSet(models.TextChoices):
    """What a Device's DICOM text is really in, whatever its (0008,0005) says."""

    AS_LABELLED = "", _("As labelled")
    GB18030 = GB18030, "GB18030"
    UTF8 = UTF8, "UTF-8 (ISO_IR 192)"


def install() -> None:
    """Make pydicom decode ISO 2022 IR 58 without leaving its escape sequence in the text."""
    from pydicom import charset

    if "iso_ir_58" in charset.handled_encodings:
        charset.handled_encodings = tuple(
            name for name in charset.handled_encodings if name != "iso_ir_58"
        )


def _terms(declared) -> list[str]:
    if declared is None:
        return []
    values = [declared] if isinstance(declared, str) else list(declared)
    return [str(v).strip() for v in values if str(v).strip()]


def _decodes(values: list[bytes], codec: str) -> bool:
    try:
        for value in values:
            value.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def decoding_character_set(
    declared,
    values: Iterable[bytes],
    *,
    incoming: str = "",
    source: str = "",
    guess_unlabelled: bool = True,
) -> str | None:
    """The (0008,0005) term to read a peer's text with, or None to read it as labelled.

    ``declared`` is the (0008,0005) value the peer sent (None when absent), ``values`` the raw
    bytes of its text elements, ``incoming`` the Device's incoming character set, ``source``
    the peer's AE title for the log.

    - Plain ASCII text is read as labelled, always.
    - A Device set to GB18030 or UTF-8 is read in that set whatever it declared.
    - Declared ISO_IR 192 with bytes that are not UTF-8 but are valid GB18030: GB18030, with a
      warning naming the device (the common lie of modalities configured for Chinese).
    - No (0008,0005) at all (malformed with non-ASCII text, but frequent): UTF-8 when the bytes
      are valid UTF-8, else ISO_IR 100 (Latin-1 decodes anything; a GB18030 modality that does
      not label its text needs its incoming character set set to GB18030). Not with
      ``guess_unlabelled`` False: an MPPS N-SET without (0008,0005) is in its N-CREATE's set.
    """
    texts = [v for v in values if not v.isascii()]
    if not texts:
        return None
    terms = _terms(declared)
    if incoming:
        return None if terms == [incoming] else incoming
    if terms == [UTF8] and not _decodes(texts, "utf-8") and _decodes(texts, "gb18030"):
        logger.warning(
            "%s declared ISO_IR 192 (UTF-8) but sent GB18030 text: read as GB18030 (set the "
            "device's incoming character set to GB18030 to make this explicit)",
            source or "a peer",
        )
        return GB18030
    if declared is None and guess_unlabelled:
        return UTF8 if _decodes(texts, "utf-8") else "ISO_IR 100"
    return None


_TEXT_VRS = {"SH", "LO", "ST", "LT", "UC", "UT", "PN"}


def raw_text_values(ds) -> Iterable[bytes]:
    """The still-encoded bytes of every text element of ``ds`` (sequences included).

    Reading a sequence converts it, with the character set of that moment: call this on a
    throwaway decode of the bytes, not on the dataset that will be relabelled.
    """
    from pydicom.datadict import dictionary_VR

    for elem in ds.elements():
        vr = elem.VR
        if vr is None:  # implicit VR transfer syntax: the dictionary knows it
            try:
                vr = dictionary_VR(elem.tag)
            except KeyError:
                continue
        if vr == "SQ":
            for item in ds[elem.tag].value or []:
                yield from raw_text_values(item)
        elif vr in _TEXT_VRS and isinstance(elem.value, bytes):
            yield elem.value


def relabel(ds, term: str) -> None:
    """Read ``ds`` (not yet decoded) in ``term``: its elements and sequence items convert lazily
    with the dataset's (0008,0005), so replacing it before any access is enough."""
    ds.SpecificCharacterSet = term
    implicit_vr, little_endian = getattr(ds, "original_encoding", (None, None))
    if implicit_vr is not None:
        from pydicom.charset import convert_encodings

        ds.set_original_encoding(implicit_vr, little_endian, convert_encodings(term))
