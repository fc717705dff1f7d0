#!/usr/bin/env bash
# download.sh: one large file from a real OpenSSH sshd on 127.0.0.1, fetched
# by OpenSSH's `sftp` and by im1's SFTP client (bench/cmd/sftpget), both
# pinned to the same cipher; runs interleaved, medians, throughput ratio.
#
#   bench/download.sh [--size MiB] [--runs N] [--cipher aes|chacha|both]
#
# Each line also gives the client's median CPU seconds (user+sys, `sftp`
# with its `ssh`), which /usr/bin/time measures if it is installed: client
# and server share this machine's cores, so CPU per byte is what decides
# the ratio, and it is less disturbed than wall time by other load.
# SFTPGET_FLAGS is passed to sftpget (e.g. "-packet 32768 -concurrency 64"),
# and so is the environment (e.g. GOMAXPROCS=1, GOGC=400: process settings
# that the im1 CLI would have to make for the figures to apply to it).
set -euo pipefail

size=1024 runs=5 which=both
usage() { sed -n '2,7s/^# \{0,1\}//p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift ;;
	--runs) runs=$2; shift ;;
	--cipher) which=$2; shift ;;
	-h | --help) usage ;;
	*) usage ;;
	esac
	shift
done
case $which in aes) ciphers_list="aes128-gcm@openssh.com" ;; chacha) ciphers_list="chacha20-poly1305@openssh.com" ;;
both) ciphers_list="aes128-gcm@openssh.com chacha20-poly1305@openssh.com" ;; *) usage ;; esac

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/im1-download.XXXXXX")
sshd_pid=""
cleanup() {
	local rc=$?
	if [ -n "$sshd_pid" ]; then kill "$sshd_pid" 2>/dev/null || true; wait "$sshd_pid" 2>/dev/null || true; fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "download.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
# shellcheck source=bench/sshd.sh
source "$repo/bench/sshd.sh"

log "building sftpget"
(cd "$repo" && go build -o "$work/sftpget" ./bench/cmd/sftpget)
mkdir -p "$work/site"
head -c "$((size << 20))" /dev/urandom >"$work/site/big.csv.gpg"
bytes=$(stat -c %s "$work/site/big.csv.gpg")
now() { date +%s.%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
# timed FILE CMD...: runs CMD, appending "user+sys" CPU seconds to FILE.
timed() {
	local out=$1
	shift
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f '%U %S' -o "$work/cpu" "$@" || return
		awk '{ printf "%.2f\n", $1 + $2 }' "$work/cpu" >>"$out"
	else
		"$@"
	fi
}

for cipher in $ciphers_list; do
	ssh_dir=$work/ssh-${cipher%%@*}
	mkdir -p "$ssh_dir"
	[ -z "$sshd_pid" ] || { kill "$sshd_pid"; wait "$sshd_pid" 2>/dev/null || true; sshd_pid=""; }
	start_sshd "$cipher" "$ssh_dir"
	ref=() ours=()
	: >"$work/cpu-ref"
	: >"$work/cpu-ours"
	for r in $(seq "$runs"); do
		for side in ref ours; do
			if [ $((r % 2)) = 0 ]; then side=$([ "$side" = ref ] && echo ours || echo ref); fi
			t0=$(now)
			if [ "$side" = ref ]; then
				echo "get $work/site/big.csv.gpg /dev/null" | timed "$work/cpu-ref" sftp -q -b - -o Ciphers="$cipher" -i "$ssh_dir/client_ed25519" \
					-o UserKnownHostsFile="$ssh_dir/known_hosts" -o BatchMode=yes -P "$port" "$user@127.0.0.1" >/dev/null
				ref+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')")
			else
				# shellcheck disable=SC2086 # SFTPGET_FLAGS is a list of flags
				timed "$work/cpu-ours" "$work/sftpget" -port "$port" -user "$user" -key "$ssh_dir/client_ed25519" -host-key "$host_key" \
					-dir "$work/site" -name big.csv.gpg -size "$bytes" ${SFTPGET_FLAGS:-} 2>/dev/null
				ours+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')")
			fi
		done
	done
	log "${cipher%%@*} wall s, sftp: ${ref[*]}; im1: ${ours[*]}"
	rm=$(printf '%s\n' "${ref[@]}" | median)
	om=$(printf '%s\n' "${ours[@]}" | median)
	rc="" oc=""
	if [ -s "$work/cpu-ref" ] && [ -s "$work/cpu-ours" ]; then rc=$(median <"$work/cpu-ref") oc=$(median <"$work/cpu-ours"); fi
	awk -v c="$cipher" -v r="$rm" -v o="$om" -v b="$bytes" -v rc="$rc" -v oc="$oc" 'BEGIN {
		printf "%s: sftp %.3f s (%.0f MB/s), im1 %.3f s (%.0f MB/s), throughput ratio im1/sftp %.2f (>= 1 means im1 is as fast or faster)",
			c, r, b / r / 1e6, o, b / o / 1e6, r / o
		if (rc != "" && oc != "") printf "; client CPU sftp %.2f s, im1 %.2f s", rc, oc
		printf "\n" }'
done
