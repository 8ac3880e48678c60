"""Error Comment (0000,0902), as every SCP of ris fills it (worklist.dimse.error_comment)."""

from pydicom.dataset import Dataset

from worklist.dimse import error_comment


def test_a_backslash_quoted_from_a_request_does_not_make_a_second_value():
    ds = Dataset()
    ds.ErrorComment = error_comment(r"PatientName 'Wang\Li' is not a name")
    assert ds["ErrorComment"].VM == 1
    assert ds.ErrorComment == "PatientName 'Wang Li' is not a name"


def test_characters_outside_the_default_repertoire_show_as_question_marks():
    assert error_comment("PatientName '王^小东' is refused") == "PatientName '?^??' is refused"


def test_control_characters_become_spaces():
    assert error_comment("AE 'CT\x041'\r\n") == "AE 'CT 1'  "


def test_a_long_comment_keeps_the_tags_and_fits_64_characters():
    text = ("(0040,0253) PerformedProcedureStepID and (0008,0060) Modality are missing "
            "from the N-CREATE")
    comment = error_comment(text)
    assert len(comment) <= 64
    assert comment.startswith("(0040,0253) and (0008,0060) are missing")
