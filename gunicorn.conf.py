"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app` (workers from WEB_CONCURRENCY)."""

import os

from receptions.logging_filters import install

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
accesslog = "-"
# The same lines as gunicorn's own logger, with only the fields the format uses computed.
logger_class = "receptions.access_log.AccessLogger"
# The access log never shows a manage token: the path is redacted by the filter below.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'


def on_starting(server):
    install("gunicorn.access", "gunicorn.error")


def post_fork(server, worker):
    install("gunicorn.access", "gunicorn.error", "werkzeug")
