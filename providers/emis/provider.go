package emis

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/check"
	"github.com/im1dev/im1/providers/emis/sftpsite"
	"github.com/im1dev/im1/providers/extract"
	"github.com/im1dev/im1/state"
)

// Provider holds what the EMIS resources share during one run: one SSH
// connection per site, and each site's listing.
type Provider struct {
	mu       sync.Mutex
	clients  map[string]*sftpsite.Client
	listings map[string]*listing
	// Workers bounds concurrent file transfers per batch (default 4).
	Workers int

	// unlocking holds the key unlocks prepareKeys started, by the
	// extract's fingerprints, until ApplyExtract takes them.
	unlocking struct {
		sync.Mutex
		m map[string]func() (openpgp.EntityList, error)
	}

	// handoffs holds every public-key handoff by site, read once per
	// state generation: a plan over thousands of sites asked once per site.
	handoffs struct {
		sync.Mutex
		store state.Store
		gen   uint64
		by    map[string][]state.Handoff
	}
}

// siteHandoffs returns the handoffs of source, from one read of all of
// them per state generation.
func (p *Provider) siteHandoffs(ctx context.Context, st state.Store, source string) ([]state.Handoff, error) {
	gen := st.Generation()
	h := &p.handoffs
	h.Lock()
	defer h.Unlock()
	if h.by == nil || h.store != st || h.gen != gen {
		all, err := st.Handoffs(ctx, "")
		if err != nil {
			return nil, err
		}
		h.by = map[string][]state.Handoff{}
		for _, x := range all {
			h.by[x.Source] = append(h.by[x.Source], x)
		}
		h.store, h.gen = st, gen
	}
	return h.by[source], nil
}

type listing struct {
	at      time.Time
	entries []sftpsite.Entry
}

// New returns the EMIS provider.
func New() *Provider {
	return &Provider{clients: map[string]*sftpsite.Client{}, listings: map[string]*listing{}}
}

// Site returns the emis_site resource.
func (p *Provider) Site() providers.Resource { return &Site{p: p} }

// Close ends every connection the run opened.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.clients {
		c.Close()
		delete(p.clients, k)
	}
	p.listings = map[string]*listing{}
	return nil
}

// siteConfig turns an emis_site value into the SFTP client configuration.
func siteConfig(site cty.Value, env *providers.Env) (sftpsite.Config, error) {
	cfg := sftpsite.Config{
		Host:      providers.String(site, "host"),
		User:      providers.String(site, "user"),
		RemoteDir: providers.String(site, "remote_dir"),
		Getenv:    env.Getenv,
	}
	if port := providers.GetAttr(site, "port"); port.IsKnown() && !port.IsNull() && port.Type() == cty.Number {
		n, _ := port.AsBigFloat().Int64()
		cfg.Port = int(n)
	}
	if k := providers.String(site, "host_key"); k != "" {
		cfg.HostKeys = append(cfg.HostKeys, k)
	}
	cfg.HostKeys = append(cfg.HostKeys, providers.Strings(site, "host_keys")...)
	cfg.KnownHostsFile = resolve(env, providers.String(site, "known_hosts_file"))
	cfg.AuthKeyFile = resolve(env, providers.String(site, "auth_key_file"))
	if rs := providers.GetAttr(site, "sftp_request_size"); rs.IsKnown() && !rs.IsNull() && rs.Type() == cty.Number {
		n, _ := rs.AsBigFloat().Int64()
		cfg.MaxPacket = int(n)
	}
	if ua := providers.GetAttr(site, "use_agent"); ua.IsKnown() && !ua.IsNull() && ua.Type() == cty.Bool {
		cfg.UseAgent = ua.True()
	}
	var err error
	if s := providers.String(site, "connect_timeout"); s != "" {
		if cfg.ConnectTimeout, err = check.ParseDuration(s); err != nil {
			return cfg, err
		}
	}
	if s := providers.String(site, "idle_timeout"); s != "" {
		if cfg.IdleTimeout, err = check.ParseDuration(s); err != nil {
			return cfg, err
		}
	}
	if len(cfg.HostKeys) == 0 && cfg.KnownHostsFile == "" {
		return cfg, fmt.Errorf("%s: no pinned host key: set host_key, host_keys or known_hosts_file (im1 never trusts a host key on first use)", providers.String(site, "address"))
	}
	return cfg, nil
}

func resolve(env *providers.Env, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(env.Dirs.Config, p)
}

// client returns the run's connection to a site, dialling it once.
func (p *Provider) client(ctx context.Context, site cty.Value, env *providers.Env) (*sftpsite.Client, error) {
	addr := providers.String(site, "address")
	cfg, err := siteConfig(site, env)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s|%s@%s:%d|%s", addr, cfg.User, cfg.Host, cfg.Port, cfg.RemoteDir)
	p.mu.Lock()
	c := p.clients[key]
	p.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err = sftpsite.Dial(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s (%s:%d): %w", addr, cfg.Host, cfg.Port, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.clients[key]; old != nil {
		c.Close()
		return old, nil
	}
	p.clients[key] = c
	return c, nil
}

// list returns the site's listing, cached for the run unless fresh is set.
func (p *Provider) list(ctx context.Context, site cty.Value, env *providers.Env, fresh bool) ([]sftpsite.Entry, error) {
	addr := providers.String(site, "address")
	p.mu.Lock()
	l := p.listings[addr]
	p.mu.Unlock()
	if l != nil && !fresh {
		return l.entries, nil
	}
	c, err := p.client(ctx, site, env)
	if err != nil {
		return nil, err
	}
	entries, err := c.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", addr, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	p.mu.Lock()
	p.listings[addr] = &listing{at: env.Now(), entries: entries}
	p.mu.Unlock()
	return entries, nil
}

// dirName is the path element for an address (see extract.DirName).
func dirName(addr string) string { return extract.DirName(addr) }
