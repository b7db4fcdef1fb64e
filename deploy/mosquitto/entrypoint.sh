#!/bin/sh
# Start Mosquitto for ParkPulse.
#   PARKPULSE_DEPLOYMENT=dev (default): anonymous broker for development and tests, host port on loopback.
#   PARKPULSE_DEPLOYMENT=production: no anonymous access; the password file is built here from
#     - the service accounts' passwords in the environment (ingest and healthcheck required, simulator and
#       demo devices optional), and
#     - the operator's device credentials, a file of hashed `user:password` lines made with
#       `mosquitto_passwd` (mounted as the secret mqtt_device_passwords; user name = device id).
# Passwords never reach the command line or the image.
set -eu

mode="${PARKPULSE_DEPLOYMENT:-dev}"
case "$mode" in
    dev) exec mosquitto -c /mosquitto/config/parkpulse-dev.conf ;;
    production) ;;
    *) echo "mosquitto: PARKPULSE_DEPLOYMENT must be dev or production, got '$mode'" >&2; exit 1 ;;
esac

passwd=/tmp/parkpulse.passwd
umask 077
: > "$passwd"

add() {  # user, password (may be empty), required?
    if [ -z "$2" ]; then
        if [ "$3" = required ]; then echo "mosquitto: no password for MQTT user '$1'" >&2; exit 1; fi
        return 0
    fi
    mosquitto_passwd -b "$passwd" "$1" "$2"
}

add ingest "${PARKPULSE_MQTT_INGEST_PASSWORD:-}" required
add healthcheck "${PARKPULSE_MQTT_HEALTHCHECK_PASSWORD:-}" required
add simulator "${PARKPULSE_MQTT_SIMULATOR_PASSWORD:-}" optional
for device in ${PARKPULSE_MQTT_DEMO_DEVICES:-}; do
    add "$device" "${PARKPULSE_MQTT_DEMO_DEVICE_PASSWORD:-}" required
done
if [ -s /run/secrets/mqtt_device_passwords ]; then
    grep -v '^[[:space:]]*\(#\|$\)' /run/secrets/mqtt_device_passwords >> "$passwd" || true
fi
chown mosquitto:mosquitto "$passwd"
exec mosquitto -c /mosquitto/config/parkpulse.conf
