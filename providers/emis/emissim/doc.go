// Package emissim simulates an EMIS Extract Service secure SFTP site.
//
// It has two halves. The generator (generate*.go) writes plausible EMIS
// batches: 20 *.csv.gpg files per run, named as EMIS names them, encrypted to
// the public key found in the handoff directory. The server (server*.go) is
// an SFTP server (pkg/sftp request server over golang.org/x/crypto/ssh) on
// 127.0.0.1 that serves one flat directory of those files read-only, with key
// authentication only, and with transport fault knobs (a connection dropped
// mid-file, a stalled read, a file still being uploaded) so that im1's
// retry, resume and size checks can be exercised without a real supplier.
//
// A running simulator publishes how to reach it (address, host key, user,
// client key) in a ConnectInfo JSON file, which `im1 demo` and tests read.
package emissim
