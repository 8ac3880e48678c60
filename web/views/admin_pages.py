"""Administration pages beyond Django admin: the catalogue CSV import with per-row errors.

The import page shows real progress without JavaScript or a job table: once the file's header
is checked, the response is streamed while the rows load (each its own transaction), with a
progress bar after every percent of the rows (CSS shows only the latest one), then the report.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator

from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.html import escape
from django.utils.translation import gettext as _

from web.access import ADMIN, role_required
from web.forms import CatalogImportForm
from web.views.common import actor
from worklist.catalog import (
    REQUIRED_COLUMNS,
    CatalogFormatError,
    CatalogRows,
    ImportReport,
    load_rows,
    read_catalog,
)

log = logging.getLogger(__name__)

#: Where the streamed progress and report go in the rendered page.
_PROGRESS_MARK = "<!-- ris:import-progress -->"


@role_required(*ADMIN)
def catalog_import(request):
    form = CatalogImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            rows = read_catalog(form.cleaned_data["file"])
        except CatalogFormatError as exc:
            form.add_error("file", _(
                "This is not a catalogue file: the header lacks the columns %(missing)s."
            ) % {"missing": ", ".join(exc.missing)} if exc.missing else _(
                "This is not a catalogue file."
            ))
        except csv.Error:
            form.add_error("file", _("This is not a CSV file."))
        else:
            return _streamed_import(request, form, rows)
    return render(request, "web/catalog_import.html", _context(form))


def _context(form, **extra) -> dict:
    return {"form": form, "columns": ",".join(REQUIRED_COLUMNS), **extra}


def _streamed_import(request, form, rows: CatalogRows) -> StreamingHttpResponse:
    page = render_to_string(
        "web/catalog_import.html",
        _context(CatalogImportForm(), importing=len(rows), progress_mark=_PROGRESS_MARK),
        request=request,
    )
    head, tail = page.split(_PROGRESS_MARK, 1)
    by = actor(request)

    def body() -> Iterator[str]:
        yield head
        yield '<div class="ticks">'
        report = ImportReport()
        total = len(rows)
        every = max(1, total // 100)
        done = 0
        try:
            for done in load_rows(rows, actor=by, report=report):
                if done % every == 0 or done == total:
                    yield _tick(done, total)
        except Exception:  # the page is already under way: say where it stopped, not a 500
            log.exception("catalogue import stopped after %d of %d rows", done, total)
            line = rows.rows[done][0]
            report.errors.append((line, _("internal error: this row and the rest were not loaded")))
        yield "</div>"
        yield render_to_string("web/_catalog_report.html", {"report": report}, request=request)
        yield tail

    response = StreamingHttpResponse(body(), content_type="text/html; charset=utf-8")
    response["X-Accel-Buffering"] = "no"  # a reverse proxy must not hold the progress back
    response["Cache-Control"] = "no-store"
    return response


def _tick(done: int, total: int) -> str:
    label = escape(_("%(done)s of %(total)s rows") % {"done": done, "total": total})
    return (
        f'<p class="tick"><progress value="{done}" max="{total}">{done * 100 // total}%'
        f"</progress> {label}</p>"
    )
