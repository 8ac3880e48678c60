from django.conf import settings
from django.core.management.base import BaseCommand
from gunicorn.app.base import BaseApplication

from ris.listeners import add_listener_arguments, override_settings_from_options


class _Gunicorn(BaseApplication):
    """gunicorn configured from ris settings, serving the Django WSGI app."""

    def __init__(self, options: dict) -> None:
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        from ris.wsgi import application

        return application


class Command(BaseCommand):
    help = "Run the web application (UI, REST API, /healthz) alone, under gunicorn."

    def add_arguments(self, parser):
        add_listener_arguments(parser)

    def handle(self, *args, **options):
        override_settings_from_options(options)
        self.stdout.write(f"web       http://{settings.RIS_HTTP}/")
        self.stdout.flush()
        _Gunicorn(
            {
                "bind": settings.RIS_HTTP,
                "workers": settings.RIS_HTTP_WORKERS,
                "worker_class": "gthread",
                "threads": 4,
                "graceful_timeout": 5,
                "timeout": 60,
                "accesslog": None,
                "loglevel": "warning",
                "proc_name": "ris-web",
            }
        ).run()
