#!/usr/bin/env bash
# setup.sh: install what mlcnn needs on Debian 12 (apt), and only what is
# missing. Silent when everything is already there; runs apt-get through
# sudo when not root. Usage: bash scripts/setup.sh
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# PostgreSQL major version: the one pg_config names, else Debian 12's 15
pgmajor=15
if command -v pg_config >/dev/null 2>&1; then
	v=$(pg_config --version | sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p')
	[ -n "$v" ] && pgmajor=$v
fi

wanted=(
	"postgresql-$pgmajor"
	"postgresql-server-dev-$pgmajor"
	"postgresql-$pgmajor-pgtap"
	libtap-parser-sourcehandler-pgtap-perl
	libopenblas-dev
	zlib1g-dev
	libpng-dev
	libjpeg-dev
	python3-pil
	libprotobuf-c-dev
	protobuf-c-compiler
	libonnx-dev
	python3-onnx
	python3-opencv
	python3-numpy
	dataset-fashion-mnist
	make
	gcc
	acl
)

missing=()
for p in "${wanted[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	sudo=()
elif command -v sudo >/dev/null 2>&1; then
	sudo=(sudo DEBIAN_FRONTEND=noninteractive)
else
	echo "setup.sh: missing packages: ${missing[*]}" >&2
	echo "setup.sh: run as root, or install sudo, or install them yourself: apt-get install ${missing[*]}" >&2
	exit 1
fi

echo "setup.sh: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
