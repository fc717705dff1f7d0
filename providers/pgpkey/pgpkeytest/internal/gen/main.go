// Command gen regenerates the committed test keys of package pgpkeytest.
// RSA-4096 generation takes seconds, so tests load these instead:
//
//	go run ./providers/pgpkey/pgpkeytest/internal/gen -out providers/pgpkey/pgpkeytest/testdata
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/im1dev/im1/providers/pgpkey"
	"github.com/im1dev/im1/providers/pgpkey/pgpkeytest"
)

func main() {
	out := flag.String("out", "testdata", "directory to write <name>.json into")
	flag.Parse()
	// Fixed dates and a 50-year validity keep tests independent of the
	// real clock (and inside GnuPG's 32-bit expiry range).
	const validFor = 50 * 365 * 24 * time.Hour
	specs := []struct {
		name, uid string
		alg       pgpkey.Algorithm
		created   time.Time
	}{
		{"current", "im1 test current", pgpkey.RSA4096, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"next", "im1 test next", pgpkey.RSA4096, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)},
		{"rsa3072", "im1 test rsa3072", pgpkey.RSA3072, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"curve25519", "im1 test curve25519", pgpkey.Curve25519, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"sender", "EMIS test sender", pgpkey.Curve25519, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, s := range specs {
		k, err := pgpkey.Generate(pgpkey.GenerateOptions{
			Name: s.uid, Email: s.name + "@im1.invalid", Algorithm: s.alg,
			ValidFor: validFor, Passphrase: []byte(pgpkeytest.Passphrase), Now: s.created,
		})
		if err != nil {
			log.Fatal(err)
		}
		b, err := pgpkey.MarshalKey(k)
		if err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*out, s.name+".json"), append(b, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Println(s.name, k.Algorithm, k.Fingerprint)
	}
}
