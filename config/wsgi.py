import os

import django

from config.handlers import Application
from config.tracing import tracing_setup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
# Before the app loads its middleware: the Django instrumentation adds its own. Under
# gunicorn this runs in each worker after the fork (config/gunicorn.py does not preload).
tracing_setup()
django.setup(set_prefix=False)
application = Application()
