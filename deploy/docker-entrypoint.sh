#!/bin/sh
# Entry point of the Redress image: one image, five programs.
#
#   serve                 run the service named by REDRESS_SERVICE under uvicorn (the default command)
#   migrate [ARGS...]     run its Alembic migrations: python -m shared.migrate $REDRESS_SERVICE [ARGS...]
#   wait-for-migrations   block until the database schema is at this image's head revision
#   healthcheck           GET /healthz on the local port; exit 0 when it answers 200 (Docker HEALTHCHECK)
#   port                  print the port the service listens on
#   anything else         executed as given (e.g. `python -m shared.cli.main watch`)
#
# REDRESS_SERVICE: intake | routing | recovery | loyalty | console
# REDRESS_PORT: overrides the service's standard port (8000 console, 8001-8004 the services).
set -eu

service_port() {
    case "$1" in
        console) echo 8000 ;;
        intake) echo 8001 ;;
        routing) echo 8002 ;;
        recovery) echo 8003 ;;
        loyalty) echo 8004 ;;
        *) return 1 ;;
    esac
}

require_service() {
    service="${REDRESS_SERVICE:-}"
    if [ -z "$service" ]; then
        echo "redress: set REDRESS_SERVICE to one of: intake routing recovery loyalty console" >&2
        exit 64
    fi
    if ! default_port="$(service_port "$service")"; then
        echo "redress: unknown REDRESS_SERVICE '$service' (intake routing recovery loyalty console)" >&2
        exit 64
    fi
    port="${REDRESS_PORT:-$default_port}"
}

has_migrations() {
    # The console keeps no tables of its own.
    [ "$1" != "console" ]
}

command="${1:-serve}"
[ "$#" -gt 0 ] && shift

case "$command" in
    serve)
        require_service
        # One worker per container: replicas scale the service, and every replica's consumer joins the
        # service's consumer group. The grace period matches the pod's preStop + drain budget.
        exec python -m uvicorn "services.${service}.app:app" \
            --host 0.0.0.0 --port "$port" \
            --no-server-header --timeout-graceful-shutdown 20 "$@"
        ;;
    migrate)
        require_service
        if ! has_migrations "$service"; then
            echo "redress: $service has no database migrations" >&2
            exit 0
        fi
        exec python -m shared.migrate "$service" "$@"
        ;;
    wait-for-migrations)
        require_service
        has_migrations "$service" || exit 0
        # Alembic marks the current revision "(head)" once the database reached this image's newest
        # migration: pods of a new release wait here until their migration Job has run.
        deadline=$(( $(date +%s) + ${REDRESS_MIGRATION_WAIT_SECONDS:-600} ))
        until python -m shared.migrate "$service" current 2>/dev/null | grep -q "(head)"; do
            if [ "$(date +%s)" -ge "$deadline" ]; then
                echo "redress: $service database is not at the image's head revision; did its migration job run?" >&2
                exit 1
            fi
            sleep 3
        done
        echo "redress: $service schema is at head" >&2
        ;;
    healthcheck)
        require_service
        exec python - "$port" <<'PY'
import sys
import urllib.request

try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as exc:
    print(f"healthcheck: {exc}", file=sys.stderr)
    sys.exit(1)
PY
        ;;
    port)
        require_service
        echo "$port"
        ;;
    *)
        exec "$command" "$@"
        ;;
esac
