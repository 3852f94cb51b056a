#!/usr/bin/env bash
# Host test of the ESP-IDF OTA client example against a real ota-server.
#
#   firmware-samples/esp-idf/run-host-test.sh [TARGET_DIR]      (default /tmp; `cargo xtask test`
#                                                               runs it with <repo>/target)
#
# Builds example/ for IDF_TARGET=linux under TARGET_DIR/esp-idf-host, starts a fresh ota-server on a
# free port, publishes samples/demo-esp32c3-1.1.0.bin, rolls it out, mints a device token, runs the
# example as a device on 1.0.0 and checks: exit 0, the updated partition starts with the published
# bytes, and the server's OTA log shows downloading, installing, success.
#
# Environment (defaults in brackets):
#   IDF_PATH     ESP-IDF tree for linux host builds [<repo>/../shared/esp-idf]
#   IDF_PYTHON   python with xtask/requirements-esp-idf.txt [<repo>/target/esp-idf-venv/bin/python3]
#   OTA_SERVER   ota-server binary [<repo>/target/debug/ota-server]
#   ESPTOOL      optional; if executable, prints esptool image-info of the dumped image
# Needs: cmake, ninja, gcc, libbsd-dev, curl, jq, python3.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TARGET_DIR=${1:-${TARGET:-/tmp}}
WORK="$TARGET_DIR/esp-idf-host"
BUILD="$WORK/build"
export IDF_PATH=${IDF_PATH:-$REPO/../shared/esp-idf}
export IDF_COMPONENT_MANAGER=0
IDF_PYTHON=${IDF_PYTHON:-$REPO/target/esp-idf-venv/bin/python3}
OTA_SERVER=${OTA_SERVER:-$REPO/target/debug/ota-server}
ESPTOOL=${ESPTOOL:-$REPO/target/xtask-venv/bin/esptool}
IMAGE="$REPO/firmware-samples/samples/demo-esp32c3-1.1.0.bin"
DEVICE_TYPE=demo-c3
DEVICE_ID=host-esp32c3-0001

for tool in cmake ninja curl jq python3; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
[[ -x "$OTA_SERVER" ]] || { echo "no ota-server binary at $OTA_SERVER (set OTA_SERVER)" >&2; exit 1; }
[[ -x "$IDF_PYTHON" ]] || { echo "no python at $IDF_PYTHON (set IDF_PYTHON)" >&2; exit 1; }
mkdir -p "$WORK"

# ---- build (sdkconfig regenerated from example/sdkconfig.defaults every time, so edits there apply)
rm -f "$BUILD/sdkconfig"
t0=$(date +%s.%N)
cmake -S "$HERE/example" -B "$BUILD" -G Ninja -DIDF_TARGET=linux -DPYTHON="$IDF_PYTHON" \
      -DPYTHON_DEPS_CHECKED=1 -DSDKCONFIG="$BUILD/sdkconfig" >"$WORK/cmake.log" 2>&1 \
    || { tail -30 "$WORK/cmake.log" >&2; exit 1; }
ninja -C "$BUILD" >"$WORK/ninja.log" 2>&1 || { tail -40 "$WORK/ninja.log" >&2; exit 1; }
t1=$(date +%s.%N)
BUILD_S=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
echo "build: ${BUILD_S} s ($BUILD/ota_host_example.elf)"

# ---- fresh server on a free port
DATA="$WORK/ota-data"
rm -rf "$DATA"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
OTA="http://127.0.0.1:$PORT"
OTA_DATA_DIR="$DATA" OTA_LISTEN="127.0.0.1:$PORT" "$OTA_SERVER" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -sf "$OTA/health" >/dev/null 2>&1 && [[ -s "$DATA/admin-token" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done
curl -sf "$OTA/health" >/dev/null || { echo "server did not come up" >&2; cat "$WORK/server.log" >&2; exit 1; }
TOKEN=$(cat "$DATA/admin-token")
admin() { curl -sS --fail-with-body -H "Authorization: Bearer $TOKEN" "$@"; }

# ---- publish, roll out, mint the device credential
admin -X PUT -H 'Content-Type: application/json' -d '{"chip": "esp32c3"}' \
    "$OTA/api/ota/admin/device-types/$DEVICE_TYPE" >/dev/null
FW=$(admin -F "file=@$IMAGE" -F "device_type=$DEVICE_TYPE" -F version=1.1.0 "$OTA/api/ota/admin/upload")
FW_ID=$(jq -r .id <<<"$FW")
admin -H 'Content-Type: application/json' \
    -d "{\"name\": \"host test 1.1.0\", \"firmware_id\": \"$FW_ID\", \"target_type\": \"all\"}" \
    "$OTA/api/ota/admin/rollouts" >/dev/null
DEVICE_TOKEN=$(admin -H 'Content-Type: application/json' -d "{\"device_type\": \"$DEVICE_TYPE\"}" \
    "$OTA/api/ota/admin/devices/$DEVICE_ID/token" | jq -r .token)
echo "server: $OTA, release $FW_ID ($(jq -r .state <<<"$FW"))"

# ---- run the device
DUMP="$WORK/ota-partition.bin"
rm -f "$DUMP"
t2=$(date +%s.%N)
set +e
OTA_URL="$OTA" OTA_DEVICE_ID="$DEVICE_ID" OTA_DEVICE_TYPE="$DEVICE_TYPE" OTA_DEVICE_TOKEN="$DEVICE_TOKEN" \
OTA_CURRENT_VERSION=1.0.0 OTA_DUMP_PATH="$DUMP" \
    timeout 120 "$BUILD/ota_host_example.elf" >"$WORK/device.log" 2>&1
RC=$?
set -e
t3=$(date +%s.%N)
RUN_S=$(python3 -c "print(f'{$t3 - $t2:.2f}')")
cat "$WORK/device.log"
echo "run: ${RUN_S} s, exit $RC"

# ---- checks
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ $RC -eq 0 ]] || fail "example exited $RC"
SIZE=$(stat -c %s "$IMAGE")
cmp -n "$SIZE" "$IMAGE" "$DUMP" || fail "the updated partition does not start with the published image"
echo "ok: the partition's first $SIZE bytes equal $(basename "$IMAGE")"
if [[ -x "$ESPTOOL" ]]; then
    # esptool reads the image out of the dumped partition (it stops at the image's end).
    INFO=$("$ESPTOOL" image-info "$DUMP" 2>&1) || fail "esptool image-info: $INFO"
    grep -E '^(Detected image type|Chip ID|Checksum|Validation hash|App version)' <<<"$INFO"
    grep -q '^Checksum: .*(valid)' <<<"$INFO" && grep -q '^Validation hash: .*(valid)' <<<"$INFO" \
        || fail "esptool does not find a valid image in the partition"
else
    echo "(no esptool at $ESPTOOL: image-info skipped)"
fi
STATUSES=$(admin "$OTA/api/ota/admin/logs?device_id=$DEVICE_ID" | jq -r '[.items | reverse | .[].status] | join(",")')
[[ "$STATUSES" == "downloading,installing,success" ]] || fail "OTA log shows '$STATUSES'"
echo "ok: OTA log for $DEVICE_ID: $STATUSES"
echo "PASS (build ${BUILD_S} s, run ${RUN_S} s)"
