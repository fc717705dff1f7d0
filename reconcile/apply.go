package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/state"
)

// Observer hears about apply steps as they start and finish (the CLI
// prints them; tests record them).
type Observer interface {
	Started(addr string, action providers.Action)
	Finished(addr string, action providers.Action, err error, elapsed time.Duration)
	Skipped(addr string, because string)
}

// ApplyResult counts what apply did.
type ApplyResult struct {
	Done, Failed, Skipped     int
	Added, Changed, Destroyed int
}

// Who names the operator for locks and the audit log.
func Who() string {
	u := "unknown"
	if cu, err := user.Current(); err == nil {
		u = cu.Username
	}
	h, _ := os.Hostname()
	return u + "@" + h
}

// Lock takes the state lock for operation op, waiting up to LockTimeout.
func (e *Engine) Lock(ctx context.Context, op string) (string, error) {
	// Lock times are the real clock's, never the run's (IM1_NOW), and a
	// held lock does not expire: a long apply keeps it, a dead holder on
	// this machine is detected by its pid, and force-unlock is for the rest.
	info := state.LockInfo{
		ID:        newID(),
		Operation: op,
		Who:       Who(),
		PID:       os.Getpid(),
		Created:   time.Now().UTC(),
	}
	err := state.LockWithTimeout(ctx, e.store, info, e.opts.LockTimeout)
	var le *state.LockedError
	if errors.As(err, &le) && deadHolder(le.Holder) {
		// The holder was this machine's process and it is gone (killed, or
		// the machine restarted): its lock protects nothing. Take it over,
		// and say so in the audit log.
		if ferr := e.store.ForceUnlock(ctx, le.Holder.ID); ferr == nil {
			e.opts.Log.Warn("took over a stale state lock", "holder", le.Holder.Who, "pid", le.Holder.PID, "lock_id", le.Holder.ID)
			err = state.LockWithTimeout(ctx, e.store, info, e.opts.LockTimeout)
		}
	}
	if err != nil {
		return "", err
	}
	return info.ID, nil
}

// deadHolder reports whether a lock belongs to a process of this machine
// that no longer runs. A lock from another machine is never presumed dead.
func deadHolder(h state.LockInfo) bool {
	host, _ := os.Hostname()
	if h.PID <= 0 || !strings.HasSuffix(h.Who, "@"+host) || h.PID == os.Getpid() {
		return false
	}
	err := syscall.Kill(h.PID, 0)
	return errors.Is(err, syscall.ESRCH)
}

// Unlock releases the state lock taken by Lock.
func (e *Engine) Unlock(ctx context.Context, id string) error {
	return e.store.Unlock(context.WithoutCancel(ctx), id)
}

// Apply carries out a plan: it walks the changes in dependency order, at
// most Parallelism at a time, commits state after each completed step,
// skips the dependents of a failed step and keeps independent work going.
// The caller holds the lock.
func (e *Engine) Apply(ctx context.Context, plan *Plan, planHash string, obs Observer) (*ApplyResult, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	if plan.Errored() {
		return nil, diags.Append(errDiag("Cannot apply a failed plan", "Fix the errors above and plan again."))
	}
	auditID, err := e.audit(ctx, planHash, "started", nil)
	if err != nil {
		return nil, diags.Append(errDiag("Writing the audit log failed", err.Error()))
	}
	_ = auditID

	nodes := map[string]*node{}
	var order []*node
	for _, c := range plan.Changes {
		if !c.HasWork() {
			continue
		}
		n := &node{change: c, done: make(chan struct{})}
		nodes[c.Addr] = n
		order = append(order, n)
	}
	pl := &planner{e: e, values: map[string]cty.Value{}, instances: map[string][]string{}, keys: map[string]map[string]string{}, failed: map[string]bool{}}
	for _, c := range plan.Changes {
		r := resourceOf(c.Addr)
		pl.instances[r] = append(pl.instances[r], c.Addr)
		if pl.keys[r] == nil {
			pl.keys[r] = map[string]string{}
		}
		pl.keys[r][c.Addr] = instanceKeyOf(c.Addr)
		pl.values[c.Addr] = c.After
		if c.After == cty.NilVal {
			pl.values[c.Addr] = cty.DynamicVal
		}
	}
	// A dependency on a whole resource waits for one barrier per resource,
	// closed when all of its instances with work are done.
	byResource := map[string][]*node{}
	for _, n := range order {
		r := resourceOf(n.change.Addr)
		byResource[r] = append(byResource[r], n)
	}
	for r, ns := range byResource {
		if _, ok := nodes[r]; ok {
			continue // a single-instance resource: its node is the barrier
		}
		g := &node{done: make(chan struct{})}
		nodes[r] = g
		go func() {
			defer close(g.done)
			for _, n := range ns {
				<-n.done
				g.failed = g.failed || n.failed
			}
		}()
	}
	res := &ApplyResult{}
	var mu sync.Mutex // guards pl, res and diags
	sem := make(chan struct{}, e.opts.Parallelism)
	var wg sync.WaitGroup
	for _, n := range order {
		wg.Add(1)
		go func(n *node) {
			defer wg.Done()
			defer close(n.done)
			for _, d := range n.change.Deps {
				dn := nodes[d]
				if dn == nil {
					continue
				}
				<-dn.done
				if dn.failed {
					n.failed = true
					mu.Lock()
					res.Skipped++
					mu.Unlock()
					if obs != nil {
						obs.Skipped(n.change.Addr, "dependency "+d+" failed")
					}
					return
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				n.failed = true
				mu.Lock()
				res.Skipped++
				mu.Unlock()
				if obs != nil {
					obs.Skipped(n.change.Addr, "interrupted")
				}
				return
			}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				n.failed = true
				mu.Lock()
				res.Skipped++
				mu.Unlock()
				if obs != nil {
					obs.Skipped(n.change.Addr, "interrupted")
				}
				return
			}
			start := time.Now()
			if obs != nil {
				obs.Started(n.change.Addr, n.change.Action)
			}
			newVal, d := e.applyOne(ctx, n.change, pl, &mu)
			mu.Lock()
			diags = append(diags, d...)
			if d.HasErrors() {
				n.failed = true
				res.Failed++
			} else {
				res.Done++
				switch n.change.Action {
				case providers.Create:
					res.Added++
				case providers.Update, providers.Rotate:
					res.Changed++
				case providers.Destroy:
					res.Destroyed++
				case providers.Replace:
					res.Added++
					res.Destroyed++
				}
				if newVal != cty.NilVal {
					pl.values[n.change.Addr] = newVal
				}
			}
			mu.Unlock()
			if obs != nil {
				var err error
				if d.HasErrors() {
					err = fmt.Errorf("%s", firstError(d))
				}
				obs.Finished(n.change.Addr, n.change.Action, err, time.Since(start))
			}
		}(n)
	}
	wg.Wait()
	outcome := "ok"
	switch {
	case ctx.Err() != nil:
		outcome = "interrupted"
	case res.Failed > 0 || res.Skipped > 0:
		outcome = "error"
	}
	if _, err := e.audit(context.WithoutCancel(ctx), planHash, outcome, res); err != nil {
		diags = diags.Append(errDiag("Writing the audit log failed", err.Error()))
	}
	if ctx.Err() != nil && !diags.HasErrors() {
		diags = diags.Append(errDiag("Apply interrupted", "Completed steps were saved; run apply again to finish."))
	}
	return res, diags
}

type node struct {
	change *Change
	done   chan struct{}
	failed bool
}

// applyOne re-evaluates the configuration with what its dependencies now
// know, re-plans against current state, applies and commits.
func (e *Engine) applyOne(ctx context.Context, c *Change, pl *planner, mu *sync.Mutex) (cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	prov := e.opts.Registry[c.Type]
	cfgVal := cty.NilVal
	var deps []string
	if c.Action != providers.Destroy {
		r := e.cfg.Resource(resourceOf(c.Addr))
		if r == nil {
			return cty.NilVal, diags.Append(errDiag(c.Addr+": not in configuration", "The configuration changed during apply."))
		}
		mu.Lock()
		in, d := e.cfg.EvalInstance(r, instanceKeyOf(c.Addr), pl.lookup)
		deps = resourceDeps(r.Refs, pl.instances)
		mu.Unlock()
		diags = append(diags, d...)
		if d.HasErrors() {
			return cty.NilVal, diags
		}
		if in != nil && in.Addr == c.Addr {
			cfgVal = in.Value
		}
		if cfgVal == cty.NilVal {
			return cty.NilVal, diags.Append(errDiag(c.Addr+": instance no longer declared", "The configuration changed during apply."))
		}
	}
	var prior *providers.Prior
	sr, err := e.store.Resource(ctx, c.Addr)
	if err != nil {
		return cty.NilVal, diags.Append(errDiag("Reading state failed", err.Error()))
	}
	if sr != nil {
		if prior, err = decodePrior(sr, prov.Schema()); err != nil {
			return cty.NilVal, diags.Append(errDiag("Reading state failed", err.Error()))
		}
	}
	resp, err := prov.Plan(ctx, &providers.PlanRequest{Addr: c.Addr, Config: cfgVal, Prior: prior, Env: e.env})
	if err != nil {
		return cty.NilVal, diags.Append(errDiag(c.Addr+": planning failed", err.Error()))
	}
	resp.Instances = c.allowedInstances(resp.Instances)
	ar, err := prov.Apply(ctx, &providers.ApplyRequest{Addr: c.Addr, Config: cfgVal, Prior: prior, Planned: resp, Env: e.env})
	if ar != nil {
		diags = append(diags, subjectAddr(ar.Diagnostics, c.Addr)...)
	}
	if err != nil {
		diags = diags.Append(errDiag(c.Addr+": "+string(c.Action)+" failed", err.Error()))
		if ar == nil || ar.State == nil {
			return cty.NilVal, diags
		}
		ar.State.Status = state.StatusTainted
	}
	if ar == nil {
		ar = &providers.ApplyResponse{}
	}
	// A completed step is saved even when an interrupt is cancelling the
	// run: the first SIGINT stops new work, not the bookkeeping of old.
	txErr := e.store.Tx(context.WithoutCancel(ctx), func(tx state.Tx) error {
		if ar.State == nil {
			if sr == nil {
				return nil
			}
			return tx.DeleteResource(c.Addr)
		}
		v := withAddress(ar.State.Value, c.Addr)
		attrs, typ, err := encodeValue(v)
		if err != nil {
			return fmt.Errorf("%s: %w", c.Addr, err)
		}
		status := ar.State.Status
		if status == "" {
			status = state.StatusReady
		}
		return tx.PutResource(state.Resource{
			Addr: c.Addr, Type: c.Type, Name: nameOf(c.Addr), Key: instanceKeyOf(c.Addr),
			Status: status, Attrs: attrs, AttrsType: typ, Private: ar.State.Private,
			Deps: deps, UpdatedAt: e.opts.Now().UTC(),
		})
	})
	if txErr != nil {
		return cty.NilVal, diags.Append(errDiag(c.Addr+": saving state failed", txErr.Error()+
			"\nThe change was made but is not recorded; the next apply re-checks and converges."))
	}
	if ar.State == nil {
		return cty.NilVal, diags
	}
	return withAddress(ar.State.Value, c.Addr), diags
}

func (e *Engine) audit(ctx context.Context, planHash, outcome string, res *ApplyResult) (int64, error) {
	var detail []byte
	if res != nil {
		detail, _ = json.Marshal(res)
	}
	op := e.opts.Operation
	if op == "" {
		op = "apply"
	}
	var id int64
	err := e.store.Tx(ctx, func(tx state.Tx) error {
		var err error
		id, err = tx.AppendAudit(state.AuditEntry{Time: e.opts.Now().UTC(), Who: Who(), Operation: op, PlanHash: planHash, Outcome: outcome, Detail: string(detail)})
		return err
	})
	return id, err
}

// nameOf returns the block label of an address: key.x["k"] -> x.
func nameOf(addr string) string {
	r := resourceOf(addr)
	for i := 0; i < len(r); i++ {
		if r[i] == '.' {
			return r[i+1:]
		}
	}
	return r
}

func firstError(d hcl.Diagnostics) string {
	for _, x := range d {
		if x.Severity == hcl.DiagError {
			if x.Detail != "" {
				return x.Summary + ": " + x.Detail
			}
			return x.Summary
		}
	}
	return ""
}

// RecordPlanned writes every planned value into state as if apply had made
// it, without calling any provider: for generators of large test states
// (the national-scale benchmark), never for real runs. Changes whose values
// are still unknown are skipped.
func (e *Engine) RecordPlanned(ctx context.Context, p *Plan) error {
	return e.store.Tx(ctx, func(tx state.Tx) error {
		for _, c := range p.Changes {
			if c.After == cty.NilVal || !c.After.IsWhollyKnown() {
				continue
			}
			attrs, typ, err := encodeValue(c.After)
			if err != nil {
				return err
			}
			if err := tx.PutResource(state.Resource{Addr: c.Addr, Type: c.Type, Name: nameOf(c.Addr), Key: instanceKeyOf(c.Addr),
				Status: state.StatusReady, Attrs: attrs, AttrsType: typ, UpdatedAt: e.opts.Now().UTC()}); err != nil {
				return err
			}
		}
		return nil
	})
}
