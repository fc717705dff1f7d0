#!/usr/bin/env bash
# fetch.sh: wall time of `im1 apply` fetching one encrypted EMIS batch from a
# real OpenSSH sshd, against the shell pipeline a user would write for the same
# job (`sftp -b` get, then `gpg --decrypt` of each file). Same inputs, same
# cipher, same machine, runs interleaved; medians reported. See bench/README.md.
#
#   bench/fetch.sh [--size MiB] [--runs N] [--cipher aes|chacha]
#                  [--compress zlib|none] [--rsa] [--tables A,B] [--agent-s2k]
#                  [--keep] [--json FILE]
#
# FETCH_BASE=/path/to/another/im1 also times that build, interleaved in the
# same rounds (e.g. the previous commit's), and prints its median and ratio.
set -euo pipefail

size=64 runs=5 cipher=aes compress=zlib algo=curve25519 tables="" agent_s2k=0 keep=0 json=""
usage() { sed -n '2,12s/^# \{0,1\}//p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift ;;
	--runs) runs=$2; shift ;;
	--cipher) cipher=$2; shift ;;
	--compress) compress=$2; shift ;;
	--rsa) algo=rsa4096 ;;
	--tables) tables=$2; shift ;;
	--agent-s2k) agent_s2k=1 ;;
	--keep) keep=1 ;;
	--json) json=$(realpath -m "$2"); shift ;;
	-h | --help) usage ;;
	*) echo "fetch.sh: unknown flag $1" >&2; usage ;;
	esac
	shift
done
case $cipher in aes) ciphers=aes128-gcm@openssh.com ;; chacha) ciphers=chacha20-poly1305@openssh.com ;; *) usage ;; esac
case $compress in zlib | none) ;; *) usage ;; esac
[[ $runs =~ ^[1-9][0-9]*$ && $size =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/im1-fetch.XXXXXX")
sshd_pid=""
export GNUPGHOME=$work/gnupg
cleanup() {
	local rc=$?
	if [ -n "$sshd_pid" ]; then
		kill "$sshd_pid" 2>/dev/null || true
		wait "$sshd_pid" 2>/dev/null || true
	fi
	if [ -d "$GNUPGHOME" ]; then gpgconf --homedir "$GNUPGHOME" --kill all 2>/dev/null || true; fi
	if [ "$keep" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "fetch.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

# The fixed extract day and passphrase (not a secret: a throwaway key).
batch_time=20261121021500
export IM1_NOW=2026-11-21 IM1_KEY_PASSPHRASE="bench passphrase, throwaway key"
plain=$work/plain served=$work/served cfg=$work/im1 ssh_dir=$work/ssh
mkdir -p "$plain" "$served" "$cfg" "$ssh_dir" "$work/bin"
mkdir -m 700 "$GNUPGHOME"

log "building im1 and emisgen"
(cd "$repo" && go build -o "$work/bin/im1" ./cmd/im1 && go build -o "$work/bin/emisgen" ./bench/cmd/emisgen)
im1() { "$work/bin/im1" -chdir="$cfg" -no-color "$@"; }

log "generating ${size} MiB of plaintext EMIS CSVs"
"$work/bin/emisgen" -dir "$plain" -size "$size" -time "$batch_time" ${tables:+-tables "$tables"} >&2
bytes=$(cat "$plain"/*.csv | wc -c)

log "starting sshd (Ciphers $ciphers)"
# shellcheck source=bench/sshd.sh
source "$repo/bench/sshd.sh"
start_sshd "$ciphers" "$ssh_dir"

log "first im1 apply: creating the $algo key"
if [ -n "$tables" ]; then
	tables_hcl="[\"${tables//,/\", \"}\"]"
else # every file type except the two organisation files, which every batch has
	tables_hcl=$(cd "$plain" && ls -- *.csv | cut -d_ -f2,3 |
		grep -v -e '^Agreements_SharingOrganisation$' -e '^Admin_Organisation$' |
		sed 's/.*/"&"/' | paste -sd, - | sed 's/^/[/; s/$/]/; s/,/, /g')
fi
cat >"$cfg/main.im1.hcl" <<EOF
organisation "A81001" {
  name     = "Densham Surgery"
  supplier = "emis"
}
organisation "A81002" {
  name     = "Queens Park Medical Centre"
  supplier = "emis"
}
key "emis" {
  algorithm      = "$algo"
  passphrase_env = "IM1_KEY_PASSPHRASE"
}
emis_site "central" {
  host              = "127.0.0.1"
  port              = $port
  user              = "$user"
  host_key          = "$host_key"
  auth_key_file     = "$ssh_dir/client_ed25519"
  sharing_agreement = "45E7CD20-EE37-41AB-90D6-DC9D4B03D102"
  organisations     = [organisation.A81001.ods, organisation.A81002.ods]
  recipient_keys    = [key.emis.fingerprint]
  remote_dir        = "$served"
  stable_after      = "0s"
}
dataset "core" {
  tables      = $tables_hcl
  ig_approval = "IG-2026-014"
}
schedule "daily" {
  frequency = "daily"
  start     = "2026-11-21"
}
extract "core" {
  source   = emis_site.central
  dataset  = dataset.core
  schedule = schedule.daily
}
EOF
im1 apply -auto-approve >"$work/apply0.log" 2>&1 || die "first apply failed: $(cat "$work/apply0.log")"
im1 state backup "$work/state0.db" >/dev/null
pubs=("$cfg"/handoff/emis/central/public_key-central-*.asc)
[ -f "${pubs[0]}" ] || die "no public key handed off"
fpr=${pubs[0]##*-central-}
fpr=${fpr%.asc}

log "encrypting with gpg to $fpr (--compress-algo $compress)"
gpgq() { gpg --batch --yes --quiet --trust-model always --pinentry-mode loopback --passphrase "$IM1_KEY_PASSPHRASE" "$@"; }
# gpg-agent re-protects an imported key with an S2K count calibrated to about
# 100 ms of CPU and pays it on every decrypt (0.3-0.4 s a file here under
# load). By default the agent uses the minimum count, so that the reference
# measures the data path; --agent-s2k keeps gpg's calibrated default.
[ "$agent_s2k" = 1 ] || echo "s2k-count 65536" >"$GNUPGHOME/gpg-agent.conf"
gpgq --import "${pubs[0]}" 2>/dev/null
im1 keys export -private emis | gpgq --import 2>/dev/null
for f in "$plain"/*.csv; do
	gpgq --recipient "$fpr" --compress-algo "$compress" -o "$served/${f##*/}.gpg" --encrypt "$f"
done
touch -d "2026-11-21 02:15:00 UTC" "$served"/*.gpg # the supplier's upload time
cipher_bytes=$(cat "$served"/*.gpg | wc -c)
# sums DIR lists "sha256  FileType.csv" for the CSVs in DIR, by file type,
# whether named as EMIS names them or as im1 lands them.
sums() { (cd "$1" && for f in *.csv; do
	n=${f%.csv} && if [[ $f == [0-9]*_* ]]; then n=${f#*_} && n=${n%_*_*}; fi
	echo "$(sha256sum <"$f" | cut -d' ' -f1)  $n.csv"
done | sort -k2); }
sums "$plain" >"$work/want.sha256" # what gpg must produce and im1 must land

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

run_reference() {
	local ref=$work/ref t0 t1 f
	rm -rf "$ref"
	mkdir -p "$ref/dl" "$ref/out"
	echo "get $served/*.gpg $ref/dl/" >"$work/sftp.batch"
	t0=$EPOCHREALTIME
	sftp -q -F /dev/null -b "$work/sftp.batch" -P "$port" -o Ciphers="$ciphers" \
		-o IdentityFile="$ssh_dir/client_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
		-o UserKnownHostsFile="$ssh_dir/known_hosts" -o StrictHostKeyChecking=yes \
		"$user@127.0.0.1" >/dev/null
	for f in "$ref"/dl/*.gpg; do
		gpgq --decrypt -o "$ref/out/$(basename "$f" .gpg)" "$f" 2>/dev/null
	done
	t1=$EPOCHREALTIME
	sums "$ref/out" | cmp -s - "$work/want.sha256" || die "gpg-decrypted files differ from the plaintext"
	elapsed "$t0" "$t1"
}

run_im1() { # [binary]: this build's im1 unless given
	local t0 t1 dirs bin=${1:-$work/bin/im1}
	cp "$work/state0.db" "$cfg/.im1/state.db"
	rm -rf "$cfg/.im1/state.db-wal" "$cfg/.im1/state.db-shm" "$cfg/landing" "$cfg/archive"
	t0=$EPOCHREALTIME
	"$bin" -chdir="$cfg" -no-color apply -auto-approve >"$work/apply.log" 2>&1 || die "im1 apply failed: $(cat "$work/apply.log")"
	t1=$EPOCHREALTIME
	mapfile -t dirs < <(find "$cfg/landing" -name manifest.json -printf '%h\n')
	[ "${#dirs[@]}" = 1 ] || die "expected one landed batch, found ${#dirs[@]}: $(cat "$work/apply.log")"
	sums "${dirs[0]}" | diff "$work/want.sha256" - >&2 || die "landed files are not byte-identical to the gpg-decrypted plaintexts"
	elapsed "$t0" "$t1"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

log "$runs interleaved runs, $bytes plaintext bytes in $(wc -l <"$work/want.sha256") files ($cipher_bytes ciphertext)"
ref_times=() im1_times=() base_times=()
for i in $(seq "$runs"); do
	# Alternate the order so that neither side always runs on a warmer cache.
	if [ $((i % 2)) = 1 ]; then
		r=$(run_reference)
		m=$(run_im1)
		if [ -n "${FETCH_BASE:-}" ]; then b=$(run_im1 "$FETCH_BASE"); fi
	else
		if [ -n "${FETCH_BASE:-}" ]; then b=$(run_im1 "$FETCH_BASE"); fi
		m=$(run_im1)
		r=$(run_reference)
	fi
	ref_times+=("$r") im1_times+=("$m")
	if [ -n "${FETCH_BASE:-}" ]; then
		base_times+=("$b")
		printf 'run %d: reference %ss  im1 %ss  base %ss\n' "$i" "$r" "$m" "$b"
	else
		printf 'run %d: reference %ss  im1 %ss\n' "$i" "$r" "$m"
	fi
done
ref_med=$(printf '%s\n' "${ref_times[@]}" | median)
im1_med=$(printf '%s\n' "${im1_times[@]}" | median)
if [ -n "${FETCH_BASE:-}" ]; then
	base_med=$(printf '%s\n' "${base_times[@]}" | median)
	awk -v r="$ref_med" -v b="$base_med" 'BEGIN { printf "median base (%s): %.3f s, ratio base/reference %.2f\n", ENVIRON["FETCH_BASE"], b, b / r }'
fi
awk -v r="$ref_med" -v m="$im1_med" -v b="$bytes" -v c="$cipher_bytes" -v cip="$ciphers" -v z="$compress" \
	-v a="$algo" -v s="$([ "$agent_s2k" = 1 ] && echo calibrated || echo minimum)" 'BEGIN {
	printf "plaintext %.1f MB, ciphertext %.1f MB, %s, compress %s, key %s, agent S2K %s\n", b / 1e6, c / 1e6, cip, z, a, s
	printf "median reference (sftp + gpg): %.3f s  %.1f MB/s\n", r, b / r / 1e6
	printf "median im1 apply:              %.3f s  %.1f MB/s\n", m, b / m / 1e6
	printf "ratio im1/reference: %.2f (< 1 means im1 is faster)\n", m / r
}'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$json" ]; then
	list() { local IFS=,; echo "[$*]"; }
	printf '{"reference_s": %s, "im1_s": %s, "ratio": %.3f, "bytes": %s, "ciphertext_bytes": %s, "runs": %s,
 "cipher": "%s", "compress": "%s", "key": "%s", "agent_s2k_default": %s,
 "reference_runs_s": %s, "im1_runs_s": %s}\n' "$ref_med" "$im1_med" "$(awk "BEGIN { print $im1_med / $ref_med }")" \
		"$bytes" "$cipher_bytes" "$runs" "$ciphers" "$compress" "$algo" "$([ "$agent_s2k" = 1 ] && echo true || echo false)" \
		"$(list "${ref_times[@]}")" "$(list "${im1_times[@]}")" >"$json"
fi
