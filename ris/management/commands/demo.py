from django.core.management.base import BaseCommand

from worklist.demo import load_demo


class Command(BaseCommand):
    help = "Load a demo catalogue, stations, patients and orders scheduled for today."

    def handle(self, *args, **options):
        result = load_demo()
        self.stdout.write(
            f"demo data: {result['patients']} patients, {result['orders_created']} new orders"
        )
