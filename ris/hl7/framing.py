"""MLLP framing (HL7 v2.5.1 Appendix C): ``<VT> message <FS><CR>``.

Apart from the listener (``ris.hl7.mllp``) so that the senders of outbound messages frame the
same way without importing a listener.
"""

VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"
END = FS + CR


def frame(payload: bytes) -> bytes:
    return VT + payload + END
