#!/bin/sh
# example-check.sh - a small health-check script for Vector's exec source.
#
# Each run prints one JSON object per check on stdout (one per line):
#   {"check":"disk_root","status":"warning","output":"/ is 83% full (...)"}
# Vector's exec source adds host and timestamp; the remap transform in
# ../healthrouter.yaml completes healthrouter's event contract.
#
# Tunables (environment):
#   DISK_WARN, DISK_CRIT              percent used of / (80, 90)
#   LOAD_WARN_PER_CPU, LOAD_CRIT_PER_CPU
#                                     5-minute load average per CPU (1.5, 3)
#   TCP_TARGET                        host:port that must accept connections (127.0.0.1:22)
#   TCP_CHECK                         name of that check (tcp_ssh)
set -u

DISK_WARN=${DISK_WARN:-80}
DISK_CRIT=${DISK_CRIT:-90}
LOAD_WARN_PER_CPU=${LOAD_WARN_PER_CPU:-1.5}
LOAD_CRIT_PER_CPU=${LOAD_CRIT_PER_CPU:-3}
TCP_TARGET=${TCP_TARGET:-127.0.0.1:22}
TCP_CHECK=${TCP_CHECK:-tcp_ssh}

# json_string prints $1 as the inside of a JSON string: backslashes and
# quotes escaped, control characters dropped.
json_string() {
	printf '%s' "$1" | tr -d '\000-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'
}

# emit CHECK STATUS OUTPUT [SEVERITY]
emit() {
	severity=""
	if [ -n "${4:-}" ]; then
		severity=",\"severity\":\"$4\""
	fi
	printf '{"check":"%s","status":"%s","output":"%s"%s}\n' \
		"$(json_string "$1")" "$2" "$(json_string "$3")" "$severity"
}

check_disk() {
	used=$(df -P / 2>/dev/null | awk 'NR == 2 { sub(/%/, "", $5); print $5 }')
	case $used in
	'' | *[!0-9]*)
		emit disk_root unknown "df -P / gave no usage"
		return
		;;
	esac
	if [ "$used" -ge "$DISK_CRIT" ]; then
		status=critical
	elif [ "$used" -ge "$DISK_WARN" ]; then
		status=warning
	else
		status=passing
	fi
	emit disk_root "$status" "/ is ${used}% full (warning at ${DISK_WARN}%, critical at ${DISK_CRIT}%)"
}

check_load() {
	if [ ! -r /proc/loadavg ]; then
		emit load unknown "cannot read /proc/loadavg"
		return
	fi
	read -r _ load5 _ </proc/loadavg
	cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
	status=$(awk -v load="$load5" -v cpus="$cpus" -v warn="$LOAD_WARN_PER_CPU" -v crit="$LOAD_CRIT_PER_CPU" \
		'BEGIN { r = load / cpus; if (r >= crit) print "critical"; else if (r >= warn) print "warning"; else print "passing" }')
	if [ -z "$status" ]; then
		emit load unknown "cannot evaluate load average $load5"
		return
	fi
	emit load "$status" "5-minute load average $load5 on $cpus CPUs"
}

# tcp_connect HOST PORT succeeds when a TCP connection opens within 2s.
# POSIX sh cannot open sockets: use nc, else bash's /dev/tcp.
tcp_connect() {
	if command -v nc >/dev/null 2>&1; then
		nc -z -w 2 "$1" "$2" >/dev/null 2>&1
	else
		timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
	fi
}

check_tcp() {
	host=${TCP_TARGET%:*}
	port=${TCP_TARGET##*:}
	# [::1]:22 names an IPv6 address; nc and /dev/tcp take it bare.
	host=${host#[}
	host=${host%]}
	if ! command -v nc >/dev/null 2>&1 && ! { command -v bash && command -v timeout; } >/dev/null 2>&1; then
		# No way to test: say nothing rather than report a failure that
		# is not one. healthrouter flags the check as stale if it was
		# ever reported.
		echo "example-check: neither nc nor bash with timeout; skipping $TCP_CHECK" >&2
		return
	fi
	if tcp_connect "$host" "$port"; then
		emit "$TCP_CHECK" passing "connected to $TCP_TARGET"
	else
		emit "$TCP_CHECK" critical "cannot connect to $TCP_TARGET within 2s" critical
	fi
}

check_disk
check_load
check_tcp
