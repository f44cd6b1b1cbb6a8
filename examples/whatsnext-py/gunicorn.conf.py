# gunicorn settings of the What's Next example: sync workers sharing one pipecache segment.
import os

bind = os.environ.get("WHATSNEXT_BIND", "127.0.0.1:8090")
workers = int(os.environ.get("WHATSNEXT_WORKERS", "4"))
worker_class = "sync"
preload_app = True  # the master imports app.py (creating the Pipeline); workers inherit it
chdir = os.path.dirname(os.path.abspath(__file__))
accesslog = None
timeout = 60
