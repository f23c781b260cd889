#!/usr/bin/env bash
# Builds the container image from packaging/Containerfile without a registry
# and runs it as an operator would: read-only root, no capabilities, config
# and adapters mounted read-only, state in a named volume. Sends an OTP
# through the outbox adapter, finds it in the volume, and stops the
# container with SIGTERM.
#
#   packaging/test-image.sh [path/to/smsbridge]   (default: target/debug/smsbridge)
#
# Needs podman, runc and mmdebstrap (Debian's packages); run as root or with
# rootless podman set up. Everything it makes is removed when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-${CARGO_TARGET_DIR:-target}/debug/smsbridge}
[ -x "$binary" ] || { echo "no smsbridge binary at $binary: build it first" >&2; exit 1; }

tag=$$
work=$(mktemp -d)
base=localhost/smsbridge-base:$tag
image=localhost/smsbridge:$tag
volume=smsbridge-state-$tag
name=smsbridge-$tag
# The default ulimits cannot be raised in every sandbox; runc and cgroupfs
# work where systemd and crun are not there.
printf '[containers]\ndefault_ulimits = []\n' > "$work/containers.conf"
export CONTAINERS_CONF=$work/containers.conf
podman=(podman --runtime runc --cgroup-manager=cgroupfs)

cleanup() {
  "${podman[@]}" rm -f "$name" >/dev/null 2>&1 || true
  "${podman[@]}" volume rm -f "$volume" >/dev/null 2>&1 || true
  "${podman[@]}" rmi -f "$image" "$base" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "image test: $*" >&2; "${podman[@]}" logs "$name" 2>&1 | tail -20 >&2 || true; exit 1; }

echo "image test: base from Debian's packages"
mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$work/rootfs.tar"
"${podman[@]}" import --quiet "$work/rootfs.tar" "$base" >/dev/null

echo "image test: build"
mkdir -p "$work/context/config"
cp "$binary" "$work/context/smsbridge"
cp config/smsbridge.toml "$work/context/config/"
"${podman[@]}" build --quiet --isolation=chroot -f packaging/Containerfile \
  --build-arg BUILD_IMAGE="$base" --build-arg BASE_IMAGE="$base" --build-arg BINARY=smsbridge \
  -t "$image" "$work/context" >/dev/null

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port)
admin=$(port)
mkdir -p "$work/adapters"
cat > "$work/smsbridge.toml" <<TOML
[server]
listen = "127.0.0.1:$http"
[admin]
listen = "127.0.0.1:$admin"
[[provider]]
name = "box"
adapter = "outbox"
data_dir = "/var/lib/smsbridge/outbox"
[[route]]
path = "/v1/send"
providers = ["box"]
TOML
chmod 0644 "$work/smsbridge.toml"
chmod 0755 "$work/adapters"

echo "image test: run (read-only, no capabilities, unprivileged)"
"${podman[@]}" volume create "$volume" >/dev/null
"${podman[@]}" run -d --name "$name" --network host --read-only --cap-drop=all \
  -v "$work/smsbridge.toml:/etc/smsbridge/smsbridge.toml:ro" \
  -v "$work/adapters:/var/lib/smsbridge/adapters/dist:ro" \
  -v "$volume:/var/lib/smsbridge" \
  "$image" >/dev/null

for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$admin/admin/health" >/dev/null 2>&1 && break
  sleep 0.2
done
health=$(curl -sS "http://127.0.0.1:$admin/admin/health") || fail "no health answer"
[[ $health == *'"status":"ok"'* ]] || fail "health: $health"

answer=$(curl -sS -d phone=+447400123456 -d 'message=Your code is 482913' "http://127.0.0.1:$http/v1/send")
[[ $answer == *'"status":"pending"'* ]] || fail "send: $answer"
store=$("${podman[@]}" volume inspect "$volume" --format '{{.Mountpoint}}')
grep -q '"body":"Your code is 482913"' "$store/outbox/outbox.jsonl" || fail "the message is not in the volume"

pid=$("${podman[@]}" inspect "$name" --format '{{.State.Pid}}')
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
caps=$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")
[ "$uid" = 10001 ] || fail "runs as uid $uid, not the smsbridge user (10001)"
[ "$caps" = 0000000000000000 ] || fail "has capabilities $caps"
[ "$("${podman[@]}" inspect "$name" --format '{{.HostConfig.ReadonlyRootfs}}')" = true ] || fail "root is writable"
if "${podman[@]}" exec "$name" /usr/local/bin/smsbridge --version >/dev/null \
   && "${podman[@]}" exec "$name" sh -c ': > /usr/local/bin/planted' 2>/dev/null; then
  fail "the root filesystem took a write"
fi

echo "image test: SIGTERM"
"${podman[@]}" stop --time 20 "$name" >/dev/null
code=$("${podman[@]}" inspect "$name" --format '{{.State.ExitCode}}')
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
# Read whole, then matched: `grep -q` closing the pipe early would fail it.
said=$("${podman[@]}" logs "$name" 2>&1)
[[ $said == *'shutting down: no new requests'* ]] || fail "no graceful-shutdown line"
echo "image test: ok (uid $uid, no capabilities, read-only root, the OTP in the volume, exit 0 on SIGTERM)"
