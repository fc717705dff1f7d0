package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/providers/registry"
	"github.com/im1dev/im1/reconcile"
)

// BenchmarkRefreshSites times a no-change plan *with* refresh over N
// organisation-specific sites (IM1_REFRESH_SITES, default 40), each its own
// SFTP server on 127.0.0.1 with a month of landed deliveries in state, and
// reports the cost per site. Each site is one SSH connection for the whole
// plan (its listing is reused by its extract); sites are refreshed
// IM1_NATIONAL_PARALLELISM at a time (default: plan's -parallelism, 10).
// Loopback has no network latency, so the figure is the CPU cost of a
// site's handshake, listing and planning on this machine, both ends.
func BenchmarkRefreshSites(b *testing.B) {
	n := 40
	if v, err := strconv.Atoi(os.Getenv("IM1_REFRESH_SITES")); err == nil {
		n = v
	}
	const days = 30
	dir := b.TempDir()
	start := time.Date(2026, 10, 22, 0, 0, 0, 0, time.UTC)
	now := start.AddDate(0, 0, days-1).Add(9 * time.Hour)
	keyFile := filepath.Join(dir, "client_ed25519")
	pub, err := emissim.GenerateClientKey(keyFile)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sites strings.Builder
	var servers []*emissim.Server
	for i := 0; i < n; i++ {
		siteDir := filepath.Join(dir, "sites", ods(i))
		if err := os.MkdirAll(siteDir, 0o750); err != nil {
			b.Fatal(err)
		}
		srv, err := emissim.StartServer(ctx, emissim.ServerConfig{Dir: siteDir, AuthorizedKeys: []ssh.PublicKey{pub}})
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		servers = append(servers, srv)
		fmt.Fprintf(&sites, "    %s = { port = %d, host_key = %q, agreement = %q }\n", ods(i), srv.Port(),
			emissim.AuthorizedKeyLine(srv.HostKey()), fmt.Sprintf("45E7CD20-EE37-41AB-90D6-%012X", i))
	}
	cfg := fmt.Sprintf(`
variable "sites" {
  default = {
%s  }
}
emis_site "org" {
  for_each          = var.sites
  host              = "127.0.0.1"
  port              = each.value.port
  user              = "im1"
  host_key          = each.value.host_key
  auth_key_file     = %q
  architecture      = "organisation_specific"
  sharing_agreement = each.value.agreement
  organisations     = [each.key]
  recipient_keys    = ["0000000000000000000000000000000000000000"]
}
`, sites.String(), keyFile) + dailyExtracts(start)
	if err := os.WriteFile(filepath.Join(dir, "main.im1.hcl"), []byte(cfg), 0o640); err != nil {
		b.Fatal(err)
	}
	opts := reconcile.Options{Dir: dir, Registry: registry.New(), NoRefresh: true, Now: func() time.Time { return now },
		Getenv: func(string) string { return "" }}
	if v, err := strconv.Atoi(os.Getenv("IM1_NATIONAL_PARALLELISM")); err == nil {
		opts.Parallelism = v
	}
	e, diags := reconcile.Load(opts)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	if err := e.OpenState(ctx, true); err != nil {
		b.Fatal(err)
	}
	if err := seedNational(ctx, e, e.Store(), n, days, start, 0); err != nil {
		b.Fatal(err)
	}
	e.Close()
	opts.NoRefresh = false
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		before := make([]int, len(servers))
		for j, s := range servers {
			before[j] = s.Connections()
		}
		e, _ := reconcile.Load(opts)
		if err := e.OpenState(ctx, false); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		p, diags := e.Plan(ctx)
		el := time.Since(t0)
		if diags.HasErrors() {
			b.Fatal(diags)
		}
		if !p.Empty() {
			b.Fatal("the generated state should plan empty")
		}
		e.Close()
		for j, s := range servers {
			if c := s.Connections() - before[j]; c != 1 {
				b.Fatalf("site on port %d saw %d connections in one plan; want 1", s.Port(), c)
			}
		}
		b.ReportMetric(float64(el.Milliseconds())/float64(n), "ms/site")
	}
}
