# sshd.sh: start a throwaway OpenSSH sshd on 127.0.0.1 for the benchmarks.
# Source it, then: start_sshd CIPHERS DIR. It sets sshd_pid, port, user and
# host_key and writes DIR/client_ed25519 and DIR/known_hosts; the caller's
# EXIT trap must kill "$sshd_pid". The configuration is like
# providers/emis/sshdtest's: read-only internal-sftp, key auth only.

start_sshd() {
	local ciphers=$1 ssh_dir=$2
	ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$ssh_dir/host_ed25519"
	ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$ssh_dir/client_ed25519"
	cp "$ssh_dir/client_ed25519.pub" "$ssh_dir/authorized_keys"
	if [ "$(id -u)" = 0 ]; then mkdir -p /run/sshd; fi # Debian's privsep dir, needed as root
	port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
	banner() { # true once sshd answers on port $1 with an SSH banner
		local line=""
		exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
		IFS= read -r -t 2 line <&3 || true
		exec 3<&-
		[[ $line == SSH-2.0-* ]]
	}
	for _ in 1 2 3 4 5; do
		port=$((40000 + RANDOM % 20000))
		port_free "$port" || continue
		cat >"$ssh_dir/sshd_config" <<-EOF
			Port $port
			ListenAddress 127.0.0.1
			HostKey $ssh_dir/host_ed25519
			PidFile $ssh_dir/sshd.pid
			AuthorizedKeysFile $ssh_dir/authorized_keys
			PermitRootLogin prohibit-password
			PasswordAuthentication no
			KbdInteractiveAuthentication no
			UsePAM no
			StrictModes no
			AllowTcpForwarding no
			X11Forwarding no
			PrintMotd no
			LogLevel ERROR
			Subsystem sftp internal-sftp -R
			Ciphers $ciphers
		EOF
		/usr/sbin/sshd -D -e -f "$ssh_dir/sshd_config" 2>>"$ssh_dir/sshd.log" &
		sshd_pid=$!
		for _ in $(seq 100); do # up to 5 s for the banner, unless sshd exited
			banner "$port" 2>/dev/null && break 2
			kill -0 "$sshd_pid" 2>/dev/null || break
			sleep 0.05
		done
		kill "$sshd_pid" 2>/dev/null || true
		wait "$sshd_pid" 2>/dev/null || true
		sshd_pid=""
	done
	[ -n "$sshd_pid" ] || die "sshd did not start: $(cat "$ssh_dir/sshd.log")"

	user=$(id -un)
	host_key=$(cut -d' ' -f1,2 "$ssh_dir/host_ed25519.pub")
	echo "[127.0.0.1]:$port $host_key" >"$ssh_dir/known_hosts"
}
