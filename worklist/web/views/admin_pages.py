"""Administration pages beyond Django admin: the catalogue CSV import with per-row errors."""

from __future__ import annotations

import csv

from django.shortcuts import render

from worklist.catalog import REQUIRED_COLUMNS, CatalogFormatError, import_catalog
from worklist.web.access import ADMIN, role_required
from worklist.web.forms import CatalogImportForm
from worklist.web.views.common import actor


@role_required(*ADMIN)
def catalog_import(request):
    form = CatalogImportForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        try:
            report = import_catalog(form.cleaned_data["file"], actor=actor(request))
        except (CatalogFormatError, csv.Error) as exc:
            form.add_error("file", str(exc))
    return render(
        request,
        "web/catalog_import.html",
        {"form": form, "report": report, "columns": ",".join(REQUIRED_COLUMNS)},
    )

