"""The ASGI application the servers run (Procfile, Dockerfile, ASGI_APPLICATION): Django's, in a
web process tuned for streaming answers by portal.runtime."""

import os

from portal.runtime.asgi import asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

application = asgi_application()
