from django.core.management.base import BaseCommand

from history.services import instance_id_rotate


class Command(BaseCommand):
    help = (
        "Give this database a new instance id, so no process reads the cache entries written "
        "under the old one. Run it after restoring a backup over a running system, then "
        "restart the web and worker processes (each reads the id when it connects)."
    )

    def handle(self, *args, **options):
        old, new = instance_id_rotate()
        self.stdout.write(f"old instance id: {old or '(none)'}\nnew instance id: {new}")
