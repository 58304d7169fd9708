"""gunicorn instead of waitress: `gunicorn -c docs/deploy/gunicorn.conf.py`.

Each worker process builds its own plugin manager (`make_app()` runs after the fork)
and runs the jobs (outbox, hook calls, polling, sweep) in a thread; workers share the
work through the database, as several `whopfunnel serve` processes do. Install it with
`pip install gunicorn` (it is not a whopfunnel dependency).
"""

wsgi_app = "whopfunnel_plugin.wsgi:make_app()"
bind = "127.0.0.1:8080"      # behind the TLS reverse proxy
workers = 4                  # PostgreSQL or MariaDB: SQLite is for one process
threads = 4                  # webhooks answer in milliseconds; a few threads per worker suffice
preload_app = False          # never build the manager (database, job thread) before the fork
timeout = 30                 # a webhook answers well inside Whop's 5 s; the jobs run in their own thread
graceful_timeout = 30
limit_request_line = 8190
limit_request_field_size = 16384
accesslog = "-"              # gunicorn's access log; whopfunnel's own lines go to stderr
# gunicorn's SIGHUP restarts the workers gracefully: each new worker loads the funnels anew
# (in-flight conversations keep their stored version). whopfunnel's own SIGHUP handler is
# only installed by `whopfunnel serve`.
