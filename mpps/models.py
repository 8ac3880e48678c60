"""Modality Performed Procedure Steps; filled in by the MPPS issue."""
