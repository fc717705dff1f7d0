package extract

import (
	"context"
	"errors"
	"path"
	"sort"

	"github.com/hashicorp/hcl/v2"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/landing"
	"github.com/im1dev/im1/state"
)

// ErrQuarantined is returned by Worker.Fetch when the batch failed
// verification and was recorded as quarantined (the worker has already
// reported why): later batches must not land after it in this run.
var ErrQuarantined = errors.New("batch quarantined")

// Worker is the supplier-specific half of apply: landing and repairing
// one batch. The shared half (ordering, requests, purge and expiry) is
// Picture.Apply.
type Worker interface {
	Fetch(ctx context.Context, pp *Period, b *Batch) error
	Repair(ctx context.Context, b *Batch) error
}

// RequestNote is what a re-extract request says to the supplier.
type RequestNote struct {
	Supplier string         // handoff folder: emis, systmone
	Payload  map[string]any // supplier-specific fields
	Text     string         // one sentence for the human-readable twin
}

// Apply carries out the planned changes in time order: batches of a period
// oldest first, and the first failure stops later periods, so a delta never
// lands before its predecessor.
func (p *Picture) Apply(ctx context.Context, req *Request, changes []providers.InstanceChange, w Worker, note RequestNote) hcl.Diagnostics {
	var diags hcl.Diagnostics
	todo := map[string]providers.InstanceAction{}
	for _, c := range changes {
		todo[c.Key] = c.Action
	}
	src := providers.String(req.Source, "address")
	keys := make([]string, 0, len(todo))
	for k := range todo {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if ctx.Err() != nil {
			return diags
		}
		pp := p.Periods[k]
		switch todo[k] {
		case providers.Fetch, providers.Repair:
			if pp == nil {
				continue // nothing delivered for it (the plan was made against another listing)
			}
			sort.SliceStable(pp.Batches, func(i, j int) bool { return pp.Batches[i].Time.Before(pp.Batches[j].Time) })
			for _, b := range pp.Batches {
				var err error
				switch {
				case len(b.Repair) > 0:
					err = w.Repair(ctx, b)
				case b.Problem != "" || b.Blocked != "" || b.Superseded != "":
					continue
				default:
					err = w.Fetch(ctx, pp, b)
				}
				if errors.Is(err, ErrQuarantined) {
					return diags // reported by the worker; nothing later may land after it
				}
				if err != nil {
					return append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "extract " + k + ": " + firstLine(err.Error()), Detail: err.Error()})
				}
			}
		case providers.Purge, providers.Expire:
			if err := p.Remove(ctx, req, k, func(d *state.Delivery) string { return ArchiveDir(req.Addr, d.Source, d.BatchID) }); err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "removing " + k, Detail: err.Error()})
			}
		case providers.Request:
			payload := map[string]any{}
			for key, v := range note.Payload {
				payload[key] = v
			}
			payload["reason"] = "no delivery arrived for " + k
			if err := WriteRequest(ctx, req.Env, note.Supplier, src, req.Addr, k, payload, note.Text); err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "writing the re-extract request for " + k, Detail: err.Error()})
			}
		}
	}
	return diags
}

// ArchiveDir is where a batch's supplier files are kept:
// <archive>/<extract>/<source>/<batch>.
func ArchiveDir(extractAddr, source, batch string) string {
	return path.Join(DirName(extractAddr), DirName(source), batch)
}

// LandingDir is where a batch lands: <landing>/<extract>/<source>/<day>/<batch>.
func LandingDir(extractAddr, source, day, batch string) string {
	return path.Join(DirName(extractAddr), DirName(source), day, batch)
}

// OpenDirs opens the archive and landing roots, creating them.
func OpenDirs(env *providers.Env) (archive, land *landing.Dir, err error) {
	if archive, err = landing.OpenDir(env.Dirs.Archive, env.FileMode, env.DirMode); err != nil {
		return nil, nil, err
	}
	if land, err = landing.OpenDir(env.Dirs.Landing, env.FileMode, env.DirMode); err != nil {
		archive.Close()
		return nil, nil, err
	}
	return archive, land, nil
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
