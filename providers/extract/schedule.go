package extract

import (
	"fmt"
	"math"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/check"
)

// Schedule says which deliveries are expected: one per period from Start,
// keyed by the period's first day in the configured zone (UK days unless
// the configuration names another zone, so clock changes never shift a day).
type Schedule struct {
	Frequency string // daily, weekly, monthly
	Start     time.Time
	Lateness  time.Duration
	Retention time.Duration // 0 keeps everything
	Zone      *time.Location
}

// ParseSchedule reads a schedule block's value.
func ParseSchedule(v cty.Value, zone *time.Location) (Schedule, error) {
	s := Schedule{Frequency: providers.String(v, "frequency"), Zone: zone}
	start, err := time.ParseInLocation(time.DateOnly, providers.String(v, "start"), zone)
	if err != nil {
		return s, fmt.Errorf("schedule start: %w", err)
	}
	s.Start = start
	if l := providers.String(v, "lateness"); l != "" {
		if s.Lateness, err = check.ParseDuration(l); err != nil {
			return s, err
		}
	}
	if r := providers.String(v, "retention"); r != "" {
		if s.Retention, err = check.ParseDuration(r); err != nil {
			return s, err
		}
	}
	return s, nil
}

// Day returns the calendar day of t in the schedule's zone.
func (s Schedule) Day(t time.Time) time.Time {
	t = t.In(s.Zone)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, s.Zone)
}

// PeriodOf returns the first day of the period holding t.
func (s Schedule) PeriodOf(t time.Time) time.Time {
	d := s.Day(t)
	switch s.Frequency {
	case "weekly":
		days := int(math.Floor((d.Sub(s.Start).Hours() + 12) / 24)) // +12h absorbs DST-length days
		weeks := int(math.Floor(float64(days) / 7))                 // floor: days before Start go to earlier weeks
		return s.Start.AddDate(0, 0, weeks*7)
	case "monthly":
		return time.Date(d.Year(), d.Month(), 1, 0, 0, 0, 0, s.Zone)
	default:
		return d
	}
}

// Next returns the first day of the period after p.
func (s Schedule) Next(p time.Time) time.Time {
	switch s.Frequency {
	case "weekly":
		return p.AddDate(0, 0, 7)
	case "monthly":
		return p.AddDate(0, 1, 0)
	default:
		return p.AddDate(0, 0, 1)
	}
}

// Periods lists the period keys from the schedule start up to and
// including the period holding now.
func (s Schedule) Periods(now time.Time) []time.Time {
	var out []time.Time
	end := s.PeriodOf(now)
	for p := s.PeriodOf(s.Start); !p.After(end); p = s.Next(p) {
		out = append(out, p)
	}
	return out
}

// Deadline is when a period's delivery counts as missing.
func (s Schedule) Deadline(p time.Time) time.Time { return p.Add(s.Lateness) }

// Key formats a period key.
func Key(p time.Time) string { return p.Format(time.DateOnly) }
