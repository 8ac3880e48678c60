"""The REST API (``/api/v1/``): a thin adapter over ``worklist.services`` and the read queries.

Views decode and validate input with serializers, call one service function per write, and map
``worklist.errors.DomainError`` to HTTP statuses in :mod:`api.exceptions`, so the API
reports a refused transition exactly as HL7 and DICOM do, only in its own protocol.
"""
