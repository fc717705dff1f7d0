package extract

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
)

func TestSchedulePeriodsAcrossClockChanges(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	day := func(s string) time.Time {
		v, _ := time.ParseInLocation(time.DateOnly, s, london)
		return v
	}
	cases := map[string]struct {
		freq, start string
		at          time.Time
		want        string
	}{
		// 23:30 UTC on 24 Oct 2026 is 00:30 BST on the 25th: a UK day.
		"BST evening belongs to the next UK day": {"daily", "2026-10-01", utc("2026-10-24T23:30:00Z"), "2026-10-25"},
		// The clocks go back at 01:00 UTC on 25 Oct; 23:30 UTC that day is GMT.
		"GMT after the autumn change": {"daily", "2026-10-01", utc("2026-10-25T23:30:00Z"), "2026-10-25"},
		// Spring forward on 28 Mar 2027 at 01:00 UTC: 00:30 UTC is still GMT.
		"night of the spring change":   {"daily", "2027-03-01", utc("2027-03-28T00:30:00Z"), "2027-03-28"},
		"after the spring change":      {"daily", "2027-03-01", utc("2027-03-28T23:30:00Z"), "2027-03-29"},
		"weekly keyed by first day":    {"weekly", "2026-10-19", utc("2026-10-28T10:00:00Z"), "2026-10-26"},
		"weekly across the change":     {"weekly", "2026-10-19", utc("2026-11-02T00:30:00Z"), "2026-11-02"},
		"last hour of a week":          {"weekly", "2026-10-19", utc("2026-11-01T23:30:00Z"), "2026-10-26"},
		"weekly, the day before start": {"weekly", "2026-10-19", utc("2026-10-18T10:00:00Z"), "2026-10-12"},
		"weekly, two weeks before":     {"weekly", "2026-10-19", utc("2026-10-05T10:00:00Z"), "2026-10-05"},
		"monthly keyed by the first":   {"monthly", "2026-10-01", utc("2026-11-29T10:00:00Z"), "2026-11-01"},
		"monthly at a BST midnight":    {"monthly", "2026-08-01", utc("2026-09-30T23:30:00Z"), "2026-10-01"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := Schedule{Frequency: tc.freq, Start: day(tc.start), Zone: london}
			if got := Key(s.PeriodOf(tc.at)); got != tc.want {
				t.Errorf("PeriodOf(%s) = %s, want %s", tc.at, got, tc.want)
			}
		})
	}
	// A week of daily periods across the autumn change has 7 keys, one per UK day.
	s := Schedule{Frequency: "daily", Start: day("2026-10-22"), Zone: london}
	ps := s.Periods(utc("2026-10-28T12:00:00Z"))
	if len(ps) != 7 || Key(ps[0]) != "2026-10-22" || Key(ps[6]) != "2026-10-28" {
		t.Errorf("periods %v", ps)
	}
	for i := 1; i < len(ps); i++ {
		if ps[i].Sub(ps[i-1]) != 24*time.Hour && ps[i].Sub(ps[i-1]) != 25*time.Hour {
			t.Errorf("period %d is %s long", i, ps[i].Sub(ps[i-1]))
		}
	}
}

func TestScheduleDeadlineAndWithdrawal(t *testing.T) {
	london, _ := time.LoadLocation("Europe/London")
	start, _ := time.ParseInLocation(time.DateOnly, "2026-11-20", london)
	s := Schedule{Frequency: "daily", Start: start, Lateness: 36 * time.Hour, Zone: london}
	p := s.PeriodOf(start.Add(30 * time.Hour))
	if got := s.Deadline(p).Format(time.RFC3339); got != "2026-11-22T12:00:00Z" {
		t.Errorf("deadline %s", got)
	}
}

// TestCalendarMatchesRules: a parsed schedule's Next, answered from the
// calendar it shares with schedules like it (learnt by concurrent walkers,
// then read), gives the same instants and keys as the rules alone, across
// clock changes and month ends.
func TestCalendarMatchesRules(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	for _, zone := range []*time.Location{london, time.UTC} {
		for _, freq := range []string{"daily", "weekly", "monthly"} {
			for _, start := range []string{"2025-01-31", "2026-03-29", "2026-10-25"} {
				v := cty.ObjectVal(map[string]cty.Value{"frequency": cty.StringVal(freq), "start": cty.StringVal(start),
					"lateness": cty.NullVal(cty.String), "retention": cty.NullVal(cty.String)})
				rules, err := ParseSchedule(v, zone)
				if err != nil {
					t.Fatal(err)
				}
				rules.cal = nil
				var want []time.Time
				for p := rules.PeriodOf(rules.Start); len(want) < 900; p = rules.Next(p) {
					want = append(want, p)
				}
				walk := func() error {
					s, err := ParseSchedule(v, zone)
					if err != nil {
						return err
					}
					if s.cal == nil {
						return fmt.Errorf("no calendar")
					}
					p := s.PeriodOf(s.Start)
					for i, w := range want {
						if !p.Equal(w) || Key(p) != Key(w) || p.Location() != w.Location() {
							return fmt.Errorf("%s %s from %s in %s: period %d is %s (%s), the rules say %s", freq, zone, start, zone, i, p, Key(p), w)
						}
						p = s.Next(p)
					}
					return nil
				}
				errs := make([]error, 3)
				var wg sync.WaitGroup
				for i := range errs {
					wg.Go(func() { errs[i] = walk() })
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
				if err := walk(); err != nil { // from the calendar alone
					t.Fatal(err)
				}
			}
		}
	}
}
