#!/usr/bin/env bash
# db.sh: the embedded, throwaway PostgreSQL cluster of this checkout.
#
#   bash scripts/db.sh start     initdb if needed, then start (idempotent)
#   bash scripts/db.sh stop      stop it
#   bash scripts/db.sh status    is it running?
#   bash scripts/db.sh env       export lines for clients: eval "$(bash scripts/db.sh env)"
#   bash scripts/db.sh psql ...  psql connected to it
#   bash scripts/db.sh shards-start  two more throwaway clusters, the "shards"
#                                of the distributed tests (.pgdata/shard1 and
#                                shard2, ports +1 and +2, the same socket
#                                folder); shards-stop stops them
#
# The cluster lives in .pgdata/ of the checkout (git-ignored): data in
# .pgdata/data, the Unix socket in .pgdata/ itself, no TCP (listen_addresses
# is empty), port 55432 unless MLCNN_PGPORT says otherwise, trust auth,
# superuser "postgres", fsync off. It never touches a system cluster.
# Run as root, the server runs as the unprivileged system user "mlcnn".
#
# When PGHOST or PGPORT is already set (to anything but this cluster's
# socket folder), or PGDATABASE is a postgres:// URI, that server is used:
# start and stop do nothing and say so.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BASE=$ROOT/.pgdata
DATA=$BASE/data
LOG=$BASE/server.log
PORT=${MLCNN_PGPORT:-55432}
# the socket lives in .pgdata unless its path ("<.pgdata>/.s.PGSQL.<port>")
# is too long for a Unix socket (107 bytes); then in a folder of /tmp named
# after the checkout
SOCK=$BASE
if [ $((${#BASE} + 10 + ${#PORT})) -gt 107 ]; then
	SOCK=/tmp/mlcnn-sock-$(printf '%s' "$ROOT" | md5sum | cut -c1-12)
fi
SERVER_USER=mlcnn
BINDIR=$(pg_config --bindir)

# true when the user points clients at some other server
external() {
	if [ -n "${PGHOST:-}" ] && [ "${PGHOST}" != "$SOCK" ]; then
		return 0
	fi
	if [ -z "${PGHOST:-}" ] && [ -n "${PGPORT:-}" ]; then
		return 0
	fi
	case "${PGDATABASE:-}" in
		postgres://* | postgresql://*) return 0 ;;
	esac
	return 1
}

# run a command as the server's OS user
as_server() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd "$BASE" && runuser -u "$SERVER_USER" -- "$@")
	else
		(cd "$BASE" && "$@")
	fi
}

# the port of the running cluster (from postmaster.pid), else the configured one
current_port() {
	if [ -f "$DATA/postmaster.pid" ]; then
		sed -n 4p "$DATA/postmaster.pid"
	else
		echo "$PORT"
	fi
}

running() {
	running_at "$DATA"
}

# is the cluster of data folder $1 running?
running_at() {
	[ -f "$1/PG_VERSION" ] && as_server "$BINDIR/pg_ctl" status -D "$1" >/dev/null 2>&1
}

# as root, for a checkout below a folder other users cannot enter (such as
# /root): give the server's user, and only it, search permission (x, not
# read) on each such folder with an ACL, and say so
grant_search() {
	command -v setfacl >/dev/null 2>&1 || return 0
	local d=""
	local part
	local IFS=/
	for part in $ROOT; do
		[ -n "$part" ] || continue
		d="$d/$part"
		if ! runuser -u "$SERVER_USER" -- test -x "$d"; then
			setfacl -m "u:$SERVER_USER:x" "$d" &&
				echo "db.sh: gave user $SERVER_USER search permission (an ACL, u:$SERVER_USER:x) on $d, so the server can reach the checkout"
		fi
	done
}

# as root: the unprivileged user exists, can reach the checkout, owns .pgdata
prepare_user() {
	[ "$(id -u)" -eq 0 ] || return 0
	if ! id "$SERVER_USER" >/dev/null 2>&1; then
		useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$SERVER_USER"
	fi
	if ! runuser -u "$SERVER_USER" -- test -x "$ROOT"; then
		grant_search
	fi
	if ! runuser -u "$SERVER_USER" -- test -x "$ROOT"; then
		echo "db.sh: the database server runs as the unprivileged user '$SERVER_USER', which cannot reach $ROOT." >&2
		echo "db.sh: make every folder on that path traversable (e.g. chmod o+x on each parent), or move the checkout to a place such as /srv or /tmp," >&2
		echo "db.sh: or point PGHOST/PGPORT at a server of your own." >&2
		exit 1
	fi
	if [ "$(stat -c %U "$BASE")" != "$SERVER_USER" ] ||
		{ [ -d "$DATA" ] && [ "$(stat -c %U "$DATA")" != "$SERVER_USER" ]; }; then
		chown -R "$SERVER_USER:$SERVER_USER" "$BASE"
	fi
}

# initdb (if needed) and start the cluster of data folder $1 on port $2, logging to $3
start_one() {
	local data=$1 port=$2 log=$3
	if [ ! -f "$data/PG_VERSION" ]; then
		as_server "$BINDIR/initdb" -D "$data" -U postgres -A trust -E UTF8 \
			--locale=C --no-sync >"$data.initdb.log" 2>&1 || {
			cat "$data.initdb.log" >&2
			exit 1
		}
		echo "include_if_exists = 'mlcnn.conf'" >>"$data/postgresql.conf"
	fi
	if running_at "$data"; then
		return 0
	fi
	# settings that depend on this checkout and MLCNN_PGPORT, rewritten each start
	as_server tee "$data/mlcnn.conf" >/dev/null <<EOF
# written by scripts/db.sh start; edits are lost
listen_addresses = ''
port = $port
unix_socket_directories = '$SOCK'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
	# test data for the SQL tests, by a path relative to the data directory
	ln -sfn "$ROOT/build/testdata" "$data/mlcnn_test_data"
	if ! as_server "$BINDIR/pg_ctl" start -w -t 60 -D "$data" -l "$log" >/dev/null; then
		echo "db.sh: the server of $data did not start; the end of $log:" >&2
		tail -n 20 "$log" >&2 || true
		exit 1
	fi
}

# the base folder (and, when the checkout's path is too long, the socket's)
prepare_base() {
	mkdir -p "$BASE"
	prepare_user
	if [ "$SOCK" != "$BASE" ]; then
		mkdir -p "$SOCK"
		[ "$(id -u)" -ne 0 ] || chown "$SERVER_USER:$SERVER_USER" "$SOCK"
		echo "db.sh: the checkout's path is too long for a Unix socket; the socket goes in $SOCK"
	fi
}

start() {
	if external; then
		echo "db.sh: PGHOST/PGPORT/PGDATABASE name an existing server; not starting the embedded cluster"
		return 0
	fi
	prepare_base
	if running; then
		echo "db.sh: the embedded cluster is already running (port $(current_port))"
		return 0
	fi
	start_one "$DATA" "$PORT" "$LOG"
	echo "db.sh: the embedded cluster is running (socket folder $SOCK, port $PORT)"
}

# the two shard clusters of the distributed tests
shards_start() {
	if external; then
		echo "db.sh: PGHOST/PGPORT/PGDATABASE name an existing server; no shard clusters are started"
		return 1
	fi
	prepare_base
	for n in 1 2; do
		start_one "$BASE/shard$n" $((PORT + n)) "$BASE/shard$n.log"
	done
	echo "db.sh: the shard clusters are running (socket folder $SOCK, ports $((PORT + 1)) and $((PORT + 2)))"
}

shards_stop() {
	for n in 1 2; do
		if running_at "$BASE/shard$n"; then
			as_server "$BINDIR/pg_ctl" stop -w -t 60 -m fast -D "$BASE/shard$n" >/dev/null
		fi
	done
	echo "db.sh: the shard clusters are stopped"
}

stop() {
	if external; then
		echo "db.sh: PGHOST/PGPORT/PGDATABASE name an existing server; nothing to stop"
		return 0
	fi
	if ! running; then
		echo "db.sh: the embedded cluster is not running"
		return 0
	fi
	as_server "$BINDIR/pg_ctl" stop -w -t 60 -m fast -D "$DATA" >/dev/null
	echo "db.sh: the embedded cluster is stopped"
}

status() {
	if external; then
		echo "db.sh: using the existing server named by PGHOST/PGPORT/PGDATABASE"
		return 0
	fi
	if running; then
		echo "db.sh: the embedded cluster is running (socket folder $SOCK, port $(current_port))"
	else
		echo "db.sh: the embedded cluster is not running"
		return 3
	fi
}

env_lines() {
	if external; then
		for v in PGHOST PGPORT PGUSER PGDATABASE; do
			[ -n "${!v:-}" ] && printf 'export %s=%q\n' "$v" "${!v}"
		done
		return 0
	fi
	printf 'export PGHOST=%q\n' "$SOCK"
	printf 'export PGPORT=%q\n' "$(current_port)"
	printf 'export PGUSER=%q\n' postgres
	printf 'export PGDATABASE=%q\n' postgres
}

case "${1:-}" in
	start) start ;;
	stop) stop ;;
	status) status ;;
	env) env_lines ;;
	shards-start) shards_start ;;
	shards-stop) shards_stop ;;
	psql)
		shift
		eval "$(env_lines)"
		exec psql "$@"
		;;
	*)
		echo "usage: bash scripts/db.sh start|stop|status|env|psql [psql arguments]|shards-start|shards-stop" >&2
		exit 2
		;;
esac
