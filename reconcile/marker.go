package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The landing marker ties a landing directory to the state that manages
// it: the lineage and the serial after the last apply. A state older than
// its landing (restored from a backup, or copied from elsewhere) would
// re-land or forget what happened since, so apply refuses it unless told.

// LandingMarker is the marker's name at the top of the landing root.
const LandingMarker = ".im1-state.json"

const markerName = LandingMarker

type marker struct {
	Version int       `json:"version"`
	Lineage string    `json:"lineage"`
	Serial  int64     `json:"serial"`
	Written time.Time `json:"written"`
}

// ErrOlderState is returned when the state is older than its landing.
var ErrOlderState = errors.New("state is older than the landing it manages")

func (e *Engine) markerPath() string { return filepath.Join(e.cfg.Settings.Landing, markerName) }

// CheckLanding refuses a state that is older than the landing directory it
// manages, or that belongs to another configuration's landing, unless
// force. A missing marker (a new landing) is fine.
func (e *Engine) CheckLanding(force bool) error {
	b, err := os.ReadFile(e.markerPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if force {
		return nil // -force accepts this state whatever the marker says, or if it is unreadable
	}
	var m marker
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s is unreadable (%v): apply -force accepts the state and rewrites it", e.markerPath(), err)
	}
	switch {
	case e.meta.Lineage != "" && m.Lineage != "" && m.Lineage != e.meta.Lineage:
		return fmt.Errorf("the landing directory %s is managed by another state (lineage %s; this state is %s): point im1 at that state, or at another landing directory (apply -force accepts it)",
			e.cfg.Settings.Landing, m.Lineage, e.meta.Lineage)
	case m.Lineage == e.meta.Lineage && m.Serial > e.meta.Serial:
		return fmt.Errorf("%w: the state is at serial %d, but the landing was last written at serial %d (%s). Was the state restored from a backup? Use the newest state; apply -force accepts this one and re-checks everything",
			ErrOlderState, e.meta.Serial, m.Serial, m.Written.UTC().Format(time.RFC3339))
	}
	return nil
}

// WriteLandingMarker records the state's lineage and serial in the landing
// directory after an apply.
func (e *Engine) WriteLandingMarker() error {
	if e.store == nil {
		return nil
	}
	meta, err := e.store.Meta(noCtx())
	if err != nil {
		return err
	}
	if _, err := os.Stat(e.cfg.Settings.Landing); err != nil {
		return nil // nothing landed yet
	}
	b, _ := json.MarshalIndent(marker{Version: 1, Lineage: meta.Lineage, Serial: meta.Serial, Written: e.opts.Now().UTC()}, "", "  ")
	tmp := e.markerPath() + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err = f.Write(append(b, '\n')); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, e.markerPath()); err != nil {
		return err
	}
	if d, err := os.Open(e.cfg.Settings.Landing); err == nil {
		d.Sync() // the rename itself is durable too
		d.Close()
	}
	return nil
}
