#!/bin/bash
# The whole test suite: installs what is missing, builds with ASan/UBSan and
# -Werror, runs the unit tests and fuzz-corpus replays (meson test), then the
# integration tests (pytest against the real binaries) and the Docker deploy
# test (tests/deploy: it installs and starts Docker itself), and ends with one
# line: "N passed, N failed[, N skipped]".
set -u
pytest_args=("$@")
cd "$(dirname "$0")/.."
. tests/deps.sh
roomd_install_deps python3 python3-pytest python3-websockets python3-msgpack python3-redis python3-prometheus-client \
    redis-server clang libclang-rt-14-dev curl chromium chromium-driver python3-selenium || { echo "0 passed, 1 failed"; exit 1; }
roomd_ensure_node20 || { echo "cannot provide Node.js 20 and npm"; echo "0 passed, 1 failed"; exit 1; }

BUILD=${ROOMD_TEST_BUILD:-build-test}
if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" -Db_sanitize=address,undefined -Dwerror=true -Dbuildtype=debugoptimized >/dev/null ||
        { echo "meson setup failed"; echo "0 passed, 1 failed"; exit 1; }
fi
if ! ninja -C "$BUILD" >"$BUILD/ninja.log" 2>&1; then
    cat "$BUILD/ninja.log"
    echo "build failed"
    echo "0 passed, 1 failed"
    exit 1
fi

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=66"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=67"

passed=0; failed=0; skipped=0
# Unit tests and fuzz replays.
meson test -C "$BUILD" --print-errorlogs >"$BUILD/meson-test.out" 2>&1
cat "$BUILD/meson-test.out" | grep -E '^ *[0-9]+/[0-9]+ ' || true
counts=$(/usr/bin/python3 - "$BUILD/meson-logs/testlog.json" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(p, f, s)
PY
) || counts="0 1 0"
read -r p f s <<<"$counts"
passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
if [ "$f" != 0 ]; then
    grep -B2 -A40 -E 'FAIL|ERROR' "$BUILD/meson-test.out" | head -200
fi

# Integration tests against the real binaries.
export ROOMD_BUILD="$PWD/$BUILD"
/usr/bin/python3 -m pytest -q -p no:cacheprovider --junitxml="$BUILD/pytest.xml" tests/integration tests/deploy "${pytest_args[@]}"
counts=$(/usr/bin/python3 - "$BUILD/pytest.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 1, 0); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = f = s = 0
for su in suites:
    t += int(su.get("tests", 0)); s += int(su.get("skipped", 0))
    f += int(su.get("failures", 0)) + int(su.get("errors", 0))
print(t - f - s, f, s)
PY
)
read -r p f s <<<"$counts"
passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))

if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
