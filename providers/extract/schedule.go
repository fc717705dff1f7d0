package extract

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
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

	// cal, set by ParseSchedule, remembers period starts that schedules
	// of the same frequency, start and zone share: a national plan walks
	// the same year of days for 7,000 extracts.
	cal *calendar
}

// calendar is the period starts of one schedule from its first period
// on, learnt as Next is asked, shared by every Schedule like it.
// Readers take the published slice without a lock; it only grows at the
// end, under mu, so a reader's shorter slice stays valid.
type calendar struct {
	mu     sync.Mutex
	starts atomic.Pointer[[]int64] // unix ns, ascending
}

type calendarKey struct {
	freq  string
	zone  *time.Location
	start int64
}

var calendars sync.Map // calendarKey -> *calendar

// maxCalendar bounds a calendar's length (over 50 years of days).
const maxCalendar = 20000

// next returns the period start after p if it has been learnt.
func (c *calendar) next(p int64) (int64, bool) {
	ss := *c.starts.Load()
	if i, ok := slices.BinarySearch(ss, p); ok && i+1 < len(ss) {
		return ss[i+1], true
	}
	return 0, false
}

// learn records that n follows p, when p is the last start known.
func (c *calendar) learn(p, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ss := *c.starts.Load()
	if len(ss) < maxCalendar && ss[len(ss)-1] == p && n > p {
		ss = append(ss, n)
		c.starts.Store(&ss)
	}
}

// ParseSchedule reads a schedule block's value.
func ParseSchedule(v cty.Value, zone *time.Location) (Schedule, error) {
	s := Schedule{Frequency: providers.String(v, "frequency"), Zone: zone}
	start, err := time.ParseInLocation(time.DateOnly, providers.String(v, "start"), zone)
	if err != nil {
		return s, fmt.Errorf("schedule start: %w", err)
	}
	s.Start = start
	key := calendarKey{freq: s.Frequency, zone: zone, start: start.UnixNano()}
	c, ok := calendars.Load(key)
	if !ok {
		nc := &calendar{}
		first := []int64{s.PeriodOf(start).UnixNano()}
		nc.starts.Store(&first)
		c, _ = calendars.LoadOrStore(key, nc)
	}
	s.cal = c.(*calendar)
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
	if s.cal == nil {
		return s.step(p)
	}
	if n, ok := s.cal.next(p.UnixNano()); ok {
		return time.Unix(0, n).In(s.Zone)
	}
	n := s.step(p)
	s.cal.learn(p.UnixNano(), n.UnixNano())
	return n
}

// step works out Next from the calendar's rules.
func (s Schedule) step(p time.Time) time.Time {
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
