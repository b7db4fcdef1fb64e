#!/bin/sh
# Compose one-shot `preflight` (profile "stack"): refuse to start the production stack with development
# settings or missing secrets. Every stack service waits for it to succeed, so a forgotten .env fails closed.
set -eu
fail=0
need() {  # variable name, value
    if [ -z "$2" ]; then
        echo "preflight: $1 is not set (copy .env.example to .env and fill it in)" >&2; fail=1
    elif [ "${#2}" -lt 12 ]; then
        echo "preflight: $1 is shorter than 12 characters" >&2; fail=1
    fi
}
if [ "${PARKPULSE_DEPLOYMENT:-dev}" != production ]; then
    echo "preflight: PARKPULSE_DEPLOYMENT must be 'production' for the full stack (the broker would allow anonymous clients)" >&2
    fail=1
fi
need POSTGRES_PASSWORD "${POSTGRES_PASSWORD:-}"
if [ "${POSTGRES_PASSWORD:-}" = parkpulse ]; then
    echo "preflight: POSTGRES_PASSWORD is the development default" >&2; fail=1
fi
need PARKPULSE_MQTT_INGEST_PASSWORD "${PARKPULSE_MQTT_INGEST_PASSWORD:-}"
need PARKPULSE_MQTT_HEALTHCHECK_PASSWORD "${PARKPULSE_MQTT_HEALTHCHECK_PASSWORD:-}"
need PARKPULSE_GRAFANA_DB_PASSWORD "${PARKPULSE_GRAFANA_DB_PASSWORD:-}"
need GF_SECURITY_ADMIN_PASSWORD "${GF_SECURITY_ADMIN_PASSWORD:-}"
# Devices reach the broker over TLS (8883): the stack needs the broker's own certificate and key, not the
# placeholder the development broker starts with.
for var in PARKPULSE_MQTT_TLS_CERT_FILE PARKPULSE_MQTT_TLS_KEY_FILE; do
    eval "value=\${$var:-}"
    case "$value" in
        ""|*tls.placeholder)
            echo "preflight: $var must name the broker's TLS $( [ "$var" = PARKPULSE_MQTT_TLS_KEY_FILE ] && echo key || echo certificate chain ) (PEM) for the device listener" >&2
            fail=1 ;;
    esac
done
if [ "$fail" -ne 0 ]; then exit 1; fi
echo "preflight: ok"
