"""DICOMweb (PS3.18) adapter: the standard HTTP resources over the same domain as DIMSE.

``/dicomweb/modality-scheduled-procedure-steps`` (MWL-RS, PS3.18 chapter 14) answers from the
matching engine and item builder of the MWL C-FIND SCP; the performed and unified procedure step
resources call the same services as the MPPS SCP. Decoding and encoding live here, nothing else.
"""
