"""What peers put into log lines (ris.log_filters.ControlCharactersEscaped)."""

import logging

from ris.log_filters import ControlCharactersEscaped, JobStillRunning


def _record(msg: str, *args) -> logging.LogRecord:
    return logging.LogRecord("ris.dicom", logging.WARNING, __file__, 1, msg, args, None)


def test_a_newline_from_a_peer_cannot_start_a_log_line_of_its_own():
    record = _record("refused AE title %s", "CT1\n2026-12-06 INFO forged")
    ControlCharactersEscaped().filter(record)
    assert record.getMessage() == "refused AE title CT1\\x0a2026-12-06 INFO forged"


def test_control_characters_are_written_as_hex_escapes():
    record = _record("Called AE Title 'RIS\x04\x1b'")
    ControlCharactersEscaped().filter(record)
    assert record.getMessage() == "Called AE Title 'RIS\\x04\\x1b'"


def test_a_clean_line_keeps_its_arguments_for_handlers_that_read_them():
    record = _record("%s:%s sent nothing", "127.0.0.1", 4242)
    ControlCharactersEscaped().filter(record)
    assert record.args == ("127.0.0.1", 4242)


def test_a_tab_is_left_as_it_is():
    record = _record("segment\tfield")
    ControlCharactersEscaped().filter(record)
    assert record.getMessage() == "segment\tfield"


def test_a_job_skipped_while_its_last_run_works_is_not_logged():
    skipped = logging.LogRecord(
        "apscheduler.scheduler", logging.WARNING, __file__, 1,
        'Execution of job "%s" skipped: maximum number of running instances reached (%d)',
        ("run_job", 1), None)
    missed = logging.LogRecord("apscheduler.scheduler", logging.WARNING, __file__, 1,
                               'Run time of job "%s" was missed by %s', ("run_job", "0:01"), None)
    assert not JobStillRunning().filter(skipped)
    assert JobStillRunning().filter(missed)


def test_the_settings_put_the_filter_on_apschedulers_logger():
    from django.conf import settings

    assert "job_still_running" in settings.LOGGING["loggers"]["apscheduler.scheduler"]["filters"]
