from django.contrib import admin

from ris.models import Heartbeat

admin.site.register(Heartbeat)
