#!/bin/sh
# Roles of the one Runnable Answers image (docker-compose.yml picks one per service):
#   web      gunicorn with service/gunicorn_conf.py (WEB_BIND, WEB_WORKERS, WEB_THREADS)
#   worker   the experiment queue consumer; runs experiments in bubblewrap
#   migrate  one-shot deploy step: apply migrations (waiting for the database), import
#            the seed knowledge (idempotent)
# Anything else runs as given, e.g. `flask --app service backup create /backups/db.jsonl.gz`.
set -eu
role="${1:-web}"
[ "$#" -gt 0 ] && shift
case "$role" in
  web) exec gunicorn --config service/gunicorn_conf.py "$@" service.wsgi:app ;;
  worker) exec flask --app service worker "$@" ;;
  migrate) flask --app service db upgrade --retries 30 && exec flask --app service kb import knowledge/content ;;
  *) exec "$role" "$@" ;;
esac
