#!/usr/bin/env bash
# download.sh: one large file from a real OpenSSH sshd on 127.0.0.1, fetched
# by OpenSSH's `sftp` and by im1's SFTP client (bench/cmd/sftpget), both
# pinned to the same cipher; runs interleaved, medians, throughput ratio.
#
#   bench/download.sh [--size MiB] [--runs N] [--cipher aes|chacha|both]
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

for cipher in $ciphers_list; do
	ssh_dir=$work/ssh-${cipher%%@*}
	mkdir -p "$ssh_dir"
	[ -z "$sshd_pid" ] || { kill "$sshd_pid"; wait "$sshd_pid" 2>/dev/null || true; sshd_pid=""; }
	start_sshd "$cipher" "$ssh_dir"
	ref=() ours=()
	for r in $(seq "$runs"); do
		for side in ref ours; do
			if [ $((r % 2)) = 0 ]; then side=$([ "$side" = ref ] && echo ours || echo ref); fi
			t0=$(now)
			if [ "$side" = ref ]; then
				echo "get $work/site/big.csv.gpg /dev/null" | sftp -q -b - -o Ciphers="$cipher" -i "$ssh_dir/client_ed25519" \
					-o UserKnownHostsFile="$ssh_dir/known_hosts" -o BatchMode=yes -P "$port" "$user@127.0.0.1" >/dev/null
				ref+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')")
			else
				"$work/sftpget" -port "$port" -user "$user" -key "$ssh_dir/client_ed25519" -host-key "$host_key" \
					-dir "$work/site" -name big.csv.gpg -size "$bytes" ${SFTPGET_FLAGS:-} 2>/dev/null
				ours+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')")
			fi
		done
	done
	rm=$(printf '%s\n' "${ref[@]}" | median)
	om=$(printf '%s\n' "${ours[@]}" | median)
	awk -v c="$cipher" -v r="$rm" -v o="$om" -v b="$bytes" 'BEGIN {
		printf "%s: sftp %.3f s (%.0f MB/s), im1 %.3f s (%.0f MB/s), throughput ratio im1/sftp %.2f (>= 1 means im1 is as fast or faster)\n",
			c, r, b / r / 1e6, o, b / o / 1e6, r / o }'
done
