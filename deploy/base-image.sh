#!/bin/sh
# Makes a local debian:bookworm-slim image for a Docker host that cannot pull
# images: debootstrap (minbase) into a temporary directory, trimmed the way the
# official slim image is (no documentation, man pages or locales, no apt
# caches), then `docker import`. Does nothing when the image already exists.
# Needs root, debootstrap and a running Docker engine.
#   deploy/base-image.sh [TAG]     (default debian:bookworm-slim)
set -eu
tag=${1:-debian:bookworm-slim}
mirror=${ROOMD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
if docker image inspect "$tag" >/dev/null 2>&1; then
    exit 0
fi
dir=$(mktemp -d /var/tmp/roomd-base.XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM
echo "base-image: debootstrap bookworm into $dir (about a minute)" >&2
debootstrap --variant=minbase bookworm "$dir/root" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
    { tail -20 "$dir/debootstrap.log" >&2; exit 1; }
root=$dir/root
# Like the official image: apt gets the updates and security suites, dpkg
# leaves out documentation, and nothing downloaded stays in the image.
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
EOF
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root/usr/share/man/"* "$root/usr/share/info/"* "$root/var/cache/apt/"*.bin \
    "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"* "$root/var/log/"*.log \
    "$root/var/log/apt/"* "$root/tmp/"*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
tar --numeric-owner -C "$root" -c . | docker import -c 'CMD ["bash"]' - "$tag" >/dev/null
echo "base-image: made $tag ($(docker image inspect -f '{{.Size}}' "$tag") bytes)" >&2
