"""Rule 4 of docs/architecture.md: every domain error code is mapped by every interface.

A code added to ``worklist.errors.ErrorCode`` without its HL7, DICOM and HTTP mapping fails here,
before any peer sees a generic error for it.
"""

import pytest

from api.exceptions import DOMAIN_STATUS, domain_status
from mpps.validation import DOMAIN_ERROR_STATUS
from ris.hl7.ack import ERROR_CODES, ERROR_TEXT
from worklist.errors import DomainError, ErrorCode

CODES = list(ErrorCode)


@pytest.mark.parametrize("code", CODES)
def test_every_error_code_has_an_hl7_table_0357_condition(code):
    assert ERROR_CODES[code] in ERROR_TEXT


@pytest.mark.parametrize("code", CODES)
def test_every_error_code_has_a_dimse_failure_status(code):
    status = DOMAIN_ERROR_STATUS[code]
    # PS3.7 Annex C: failures of N-CREATE / N-SET are 0x01xx, 0x02xx or 0xA000-0xCFFF.
    assert 0x0100 <= status < 0x0300 or 0xA000 <= status <= 0xCFFF


@pytest.mark.parametrize("code", CODES)
def test_every_error_code_has_an_http_client_error_status(code):
    assert 400 <= DOMAIN_STATUS[code] < 500
    assert domain_status(DomainError("refused", code=code)) == DOMAIN_STATUS[code]


def test_the_hl7_table_is_keyed_by_the_enum_not_by_strings():
    assert all(type(key) is ErrorCode for key in ERROR_CODES)


def test_no_interface_maps_a_code_the_domain_does_not_have():
    for table in (ERROR_CODES, DOMAIN_ERROR_STATUS, DOMAIN_STATUS):
        assert set(table) == set(ErrorCode)


@pytest.mark.parametrize("code", CODES)
def test_every_error_code_has_a_dicomweb_client_error_status(code):
    from dicomweb.mpps import http_status_of

    # MPPS-RS answers a refused create/update with the HTTP status of its DIMSE status.
    assert 400 <= http_status_of(DOMAIN_ERROR_STATUS[code]) < 500
