package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
	_ "time/tzdata" // the default zone must resolve even without a system zoneinfo

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/schema"
)

// Settings come from the optional im1 block.
type Settings struct {
	// StatePath is the SQLite state file, absolute.
	StatePath string
	// PostgresDSN, when set, keeps state in PostgreSQL instead (sensitive).
	PostgresDSN string
	// Landing, Archive and Handoff are absolute directories.
	Landing, Archive, Handoff string
	// Zone decides which day a delivery belongs to.
	Zone              *time.Location
	FileMode, DirMode os.FileMode
	// DeclRange is the im1 block's header; zero when there is none.
	DeclRange hcl.Range
}

// SettingsSchema is the schema of the im1 block.
var SettingsSchema = &schema.Block{
	Doc: "Where im1 keeps its state, landed files, archive and handoffs, and the zone that decides delivery days.",
	Attributes: []*schema.Attribute{
		{Name: "state_path", Type: cty.String, Default: cty.StringVal(".im1/state.db"), Check: nonEmpty,
			Doc: "SQLite state file, relative to the configuration directory."},
		{Name: "postgres_dsn", Type: cty.String, Sensitive: true,
			Doc: "PostgreSQL connection string; when set, state is kept there instead of the SQLite file."},
		{Name: "landing_dir", Type: cty.String, Default: cty.StringVal("landing"), Check: nonEmpty,
			Doc: "Root of landed (decrypted, validated) files."},
		{Name: "archive_dir", Type: cty.String, Default: cty.StringVal("archive"), Check: nonEmpty,
			Doc: "Root of archived ciphertext, used to re-land without downloading again."},
		{Name: "handoff_dir", Type: cty.String, Default: cty.StringVal("handoff"), Check: nonEmpty,
			Doc: "Directory of handoffs to suppliers (public keys, report sheets, re-extract requests)."},
		{Name: "zone", Type: cty.String, Default: cty.StringVal("Europe/London"), Check: checkZone,
			Doc: "IANA time zone that decides which day a delivery belongs to."},
		{Name: "file_mode", Type: cty.String, Default: cty.StringVal("0640"), Check: checkMode,
			Doc: "Octal permissions of landed files."},
		{Name: "dir_mode", Type: cty.String, Default: cty.StringVal("0750"), Check: checkMode,
			Doc: "Octal permissions of landing directories."},
	},
}

// DefaultStatePath is the state file of the configuration in dir when its
// im1 block does not name one: what Settings.StatePath then holds.
func DefaultStatePath(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.Join(abs, SettingsSchema.Attribute("state_path").Default.AsString()), nil
}

func nonEmpty(v cty.Value) error {
	if v.AsString() == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func loadZone(name string) (*time.Location, error) {
	// "" and "Local" would make the day boundary depend on the machine.
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("%q is not an IANA time zone name such as \"Europe/London\"", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	return loc, nil
}

func checkZone(v cty.Value) error {
	_, err := loadZone(v.AsString())
	return err
}

func parseMode(s string) (os.FileMode, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("%q is not an octal permission such as \"0640\"", s)
	}
	return os.FileMode(m), nil
}

func checkMode(v cty.Value) error {
	_, err := parseMode(v.AsString())
	return err
}

// decodeSettings decodes the im1 block, which may use variables and
// functions but not resources; on errors the defaults stand.
func (l *loader) decodeSettings() {
	body := &hclsyntax.Body{}
	s := &Settings{}
	if l.settings != nil {
		s.DeclRange = l.settings.DefRange()
		diags := checkBody(l.settings.Body, SettingsSchema, nil)
		for _, t := range traversals(l.settings.Body, "") {
			_, d := l.checkTraversal(t, refScope{where: "the im1 block"})
			diags = append(diags, d...)
		}
		l.diags = append(l.diags, diags...)
		if !diags.HasErrors() {
			body = l.settings.Body
		}
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": l.cfg.varObject()},
		Functions: l.cfg.funcs,
	}
	obj, diags := decodeBody(body, SettingsSchema, ctx, l.sec)
	l.diags = append(l.diags, diags...)
	str := func(name string) string {
		v := obj.GetAttr(name)
		if !v.IsKnown() || v.IsNull() || diags.HasErrors() {
			v = defaultValue(SettingsSchema.Attribute(name))
		}
		if v.IsNull() {
			return ""
		}
		return v.AsString()
	}
	path := func(name string) string {
		p := str(name)
		if !filepath.IsAbs(p) {
			p = filepath.Join(l.cfg.Dir, p)
		}
		return filepath.Clean(p)
	}
	s.StatePath = path("state_path")
	s.PostgresDSN = str("postgres_dsn")
	s.Landing, s.Archive, s.Handoff = path("landing_dir"), path("archive_dir"), path("handoff_dir")
	var err error
	if s.Zone, err = loadZone(str("zone")); err != nil {
		s.Zone, _ = loadZone("Europe/London")
	}
	if s.FileMode, err = parseMode(str("file_mode")); err != nil {
		s.FileMode = 0o640
	}
	if s.DirMode, err = parseMode(str("dir_mode")); err != nil {
		s.DirMode = 0o750
	}
	l.cfg.Settings = s
}
