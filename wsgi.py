"""WSGI entry point: `gunicorn wsgi:app` (production settings unless ASHYQ_ENV says otherwise)."""

import os

from receptions import create_app

app = create_app(os.environ.get("ASHYQ_ENV", "production"))
