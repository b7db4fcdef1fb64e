#!/bin/sh
# Start Mosquitto for ParkPulse.
#   PARKPULSE_DEPLOYMENT=dev (default): anonymous broker for development and tests, host port on loopback.
#   PARKPULSE_DEPLOYMENT=production: no anonymous access, TLS on the device listener (8883). Built here:
#     - the password file, from the service accounts' passwords in the environment (ingest and
#       healthcheck required, simulator and demo devices optional) and the operator's device
#       credentials, a file of hashed `user:password` lines made with `mosquitto_passwd` (mounted as the
#       secret mqtt_device_passwords; user name = `park/device`, e.g. `park-a/m1-boundary`, which
#       parkpulse.acl binds to that park's and device's topics);
#     - the TLS files, copied from the secrets mqtt_tls_cert, mqtt_tls_key (server certificate chain and
#       key, PEM, required) and mqtt_tls_ca (CA of device certificates, only for the certificate variant
#       in parkpulse.conf) to a directory only the broker's user can read.
# Passwords and keys never reach the command line or the image.
set -eu

mode="${PARKPULSE_DEPLOYMENT:-dev}"
case "$mode" in
    dev) exec mosquitto -c /mosquitto/config/parkpulse-dev.conf ;;
    production) ;;
    *) echo "mosquitto: PARKPULSE_DEPLOYMENT must be dev or production, got '$mode'" >&2; exit 1 ;;
esac

# parkpulse.acl needs 2.0's `%u` substitution of user names containing / (2.1 denies every device).
version="$(mosquitto -h 2>&1 | sed -n 's/^mosquitto version \([0-9.]*\).*/\1/p' | head -n 1)"
case "$version" in
    2.0.*) ;;
    *) echo "mosquitto: version '$version' found; parkpulse.acl needs Mosquitto 2.0.x" \
            "(image eclipse-mosquitto:2.0)" >&2
       exit 1 ;;
esac

# The device listener needs the broker's certificate and key; refuse the compose placeholder up front.
for secret in mqtt_tls_cert mqtt_tls_key; do
    if ! grep -q -- '-----BEGIN ' "/run/secrets/$secret" 2>/dev/null; then
        echo "mosquitto: secret $secret is not a PEM file; set PARKPULSE_MQTT_TLS_CERT_FILE and" \
             "PARKPULSE_MQTT_TLS_KEY_FILE to the broker's certificate chain and key (see .env.example)" >&2
        exit 1
    fi
done

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
for device in ${PARKPULSE_MQTT_DEMO_DEVICES:-}; do  # park/device user names, e.g. demo-park/m-mb-001
    add "$device" "${PARKPULSE_MQTT_DEMO_DEVICE_PASSWORD:-}" required
done
if [ -s /run/secrets/mqtt_device_passwords ]; then
    grep -v '^[[:space:]]*\(#\|$\)' /run/secrets/mqtt_device_passwords >> "$passwd" || true
fi
chown mosquitto:mosquitto "$passwd"

# Copies the broker's user (mosquitto) can read, whatever the owner and mode of the mounted files.
tls=/tmp/parkpulse-tls
mkdir -p "$tls"
cp /run/secrets/mqtt_tls_cert "$tls/server.crt"
cp /run/secrets/mqtt_tls_key "$tls/server.key"
if grep -q -- '-----BEGIN ' /run/secrets/mqtt_tls_ca 2>/dev/null; then  # only the certificate variant reads it
    cp /run/secrets/mqtt_tls_ca "$tls/ca.crt"
fi
chown -R mosquitto:mosquitto "$tls"
exec mosquitto -c /mosquitto/config/parkpulse.conf
