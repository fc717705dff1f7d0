package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"golang.org/x/crypto/ssh"

	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/providers/systmone/tppsim"
)

func (c *cli) simCommand() *ffcli.Command {
	fs := c.newFlags("sim emis")
	dir := fs.String("dir", "", "simulator work directory: the served site is DIR/site (default: a new temporary directory)")
	handoffDir := fs.String("handoff", "handoff", "im1's handoff directory, where the public key is read and re-extract requests are answered")
	site := fs.String("site", "central", "the emis_site name (its folder under handoff/emis)")
	agreement := fs.String("agreement", "45E7CD20-EE37-41AB-90D6-DC9D4B03D102", "sharing agreement GUID")
	orgList := fs.String("orgs", "A81001,A81002", "ODS codes of the practices in the agreement")
	days := fs.String("deliver", "", "deliver one batch for each of these days (yyyy-mm-dd, comma-separated) once the key is handed off")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (loopback only)")
	poll := fs.Duration("poll", 2*time.Second, "how often to look for handoffs")
	emis := &ffcli.Command{
		Name: "emis", ShortUsage: "im1 sim emis [flags]", FlagSet: fs,
		ShortHelp: "Run the EMIS simulator: an SFTP site delivering encrypted batches to the key im1 handed off.",
		LongHelp: "The simulator listens on loopback only, prints how to connect (and writes it to DIR/connect.json),\n" +
			"waits for im1 apply to hand off a public key, delivers the requested days' batches encrypted\n" +
			"to it (touching DIR/delivered/<day> when a day's batch is complete), and answers re-extract\n" +
			"requests. Stop it with Ctrl-C.",
		Exec: func(ctx context.Context, args []string) error {
			if !strings.HasPrefix(*listen, "127.") && !strings.HasPrefix(*listen, "localhost:") && !strings.HasPrefix(*listen, "[::1]:") {
				return &exitError{1, errors.New("the simulator listens on loopback addresses only")}
			}
			work := *dir
			if work == "" {
				var err error
				if work, err = os.MkdirTemp("", "im1-emissim-"); err != nil {
					return err
				}
			}
			work, err := filepath.Abs(work)
			if err != nil {
				return err
			}
			siteDir := filepath.Join(work, "site")
			if err := os.MkdirAll(siteDir, 0o750); err != nil {
				return err
			}
			keyFile := filepath.Join(work, "client_ed25519")
			pub, err := emissim.GenerateClientKey(keyFile)
			if err != nil {
				return err
			}
			srv, err := emissim.StartServer(ctx, emissim.ServerConfig{Dir: siteDir, AuthorizedKeys: []ssh.PublicKey{pub}})
			if err != nil {
				return err
			}
			defer srv.Close()
			info := emissim.ConnectInfo{Version: emissim.ConnectInfoVersion, Host: "127.0.0.1", Port: srv.Port(), User: srv.User(),
				HostKey: emissim.AuthorizedKeyLine(srv.HostKey()), RemoteDir: ".", ClientKeyFile: keyFile}
			if err := srv.WriteConnectInfo(filepath.Join(work, "connect.json"), info); err != nil {
				return err
			}
			b, _ := json.MarshalIndent(info, "", "  ")
			fmt.Fprintf(c.stdout, "EMIS simulator listening on %s\n%s\n", srv.Addr(), b)
			var orgs []emissim.Org
			for _, ods := range strings.Split(*orgList, ",") {
				if ods = strings.TrimSpace(ods); ods != "" {
					orgs = append(orgs, emissim.Org{GUID: guidFor(ods), ODS: ods, Name: "Practice " + ods})
				}
			}
			sup := &emissim.Supplier{Dir: siteDir, HandoffDir: *handoffDir, SiteDir: *site, StateFile: filepath.Join(work, "supplier.json"),
				Agreement: strings.ToUpper(*agreement), Orgs: orgs, Patients: 20, Seed: 1}
			pending := splitList(*days)
			t := time.NewTicker(*poll)
			defer t.Stop()
			for {
				if _, _, err := sup.RecipientKey(); err == nil {
					for len(pending) > 0 {
						day, err := time.Parse(time.DateOnly, pending[0])
						if err != nil {
							return &exitError{1, fmt.Errorf("-deliver: %w", err)}
						}
						names, err := sup.Deliver(time.Date(day.Year(), day.Month(), day.Day(), 2, 15, 0, 0, time.UTC), emissim.Faults{})
						if err != nil {
							return err
						}
						// A marker per completed day, for whoever waits on the simulator.
						if err := os.MkdirAll(filepath.Join(work, "delivered"), 0o750); err == nil {
							_ = os.WriteFile(filepath.Join(work, "delivered", pending[0]), nil, 0o640)
						}
						fmt.Fprintf(c.stdout, "delivered %d files for %s\n", len(names), pending[0])
						pending = pending[1:]
					}
					answered, err := sup.AnswerRequests(time.Now())
					if err != nil {
						return err
					}
					for _, d := range answered {
						fmt.Fprintf(c.stdout, "answered re-extract request for %s\n", d)
					}
				}
				select {
				case <-ctx.Done():
					fmt.Fprintln(c.stdout, "simulator stopped")
					return nil
				case <-t.C:
				}
			}
		},
	}
	return &ffcli.Command{
		Name: "sim", ShortUsage: "im1 sim <emis|systmone> [flags]", FlagSet: c.newFlags("sim"),
		ShortHelp:   "Run a supplier simulator standalone.",
		Subcommands: []*ffcli.Command{emis, c.simSystmOneCommand()},
		Exec: func(context.Context, []string) error {
			return &exitError{1, errors.New("sim needs a simulator: emis or systmone")}
		},
	}
}

// guidFor makes a stable OrganisationGuid for a simulated practice.
func guidFor(ods string) string {
	s := sha256.Sum256([]byte("im1-sim-org:" + ods))
	h := fmt.Sprintf("%X", s[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func (c *cli) simSystmOneCommand() *ffcli.Command {
	fs := c.newFlags("sim systmone")
	root := fs.String("root", "gateway", "the gateway root directory the SystmOne client writes extracts into")
	handoffDir := fs.String("handoff", "handoff", "im1's handoff directory, where the report sheet is read")
	report := fs.String("report", "", "the systmone_strategic_report name (its folder under handoff/systmone)")
	days := fs.String("deliver", "", "write one extract for each of these days (yyyy-mm-dd, comma-separated) once the sheet is handed off")
	poll := fs.Duration("poll", 2*time.Second, "how often to look for the report sheet")
	return &ffcli.Command{
		Name: "systmone", ShortUsage: "im1 sim systmone -report NAME [flags]", FlagSet: fs,
		ShortHelp: "Run the SystmOne simulator: a client writing strategic-report extracts into a gateway root.",
		LongHelp: "The simulator waits for im1 apply to hand off the report sheet, then writes the requested\n" +
			"days' extracts (full first, then deltas) as the SystmOne client would: under a temporary\n" +
			"name, renamed when complete, Windows-1252. Stop it with Ctrl-C.",
		Exec: func(ctx context.Context, args []string) error {
			if *report == "" {
				return &exitError{1, errors.New("-report is required")}
			}
			sim := &tppsim.Sim{Root: *root, HandoffDir: *handoffDir, Report: *report, Seed: 1}
			pending := splitList(*days)
			fmt.Fprintf(c.stdout, "SystmOne simulator writing into %s for report %s\n", *root, *report)
			t := time.NewTicker(*poll)
			defer t.Stop()
			for {
				if _, err := tppsim.ReadHandoff(*handoffDir, *report); err == nil {
					for len(pending) > 0 {
						day, err := time.Parse(time.DateOnly, pending[0])
						if err != nil {
							return &exitError{1, fmt.Errorf("-deliver: %w", err)}
						}
						folder, err := sim.Step(day, tppsim.Faults{})
						if err != nil {
							return err
						}
						fmt.Fprintf(c.stdout, "wrote extract %s for %s\n", filepath.Base(folder), pending[0])
						pending = pending[1:]
					}
				}
				select {
				case <-ctx.Done():
					fmt.Fprintln(c.stdout, "simulator stopped")
					return nil
				case <-t.C:
				}
			}
		},
	}
}
