package coverage

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

const chromium = "/usr/bin/chromium"

// TestChromiumRender renders the page in real headless Chromium and reads
// the screenshot back: every calendar draws the expected cells, in day
// order, in the legend's colours.
func TestChromiumRender(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("headless Chromium test skipped: /usr/bin/chromium is absent (./scripts/test installs Debian's chromium)")
	}
	r := scenarios()["emis_daily"].build(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "coverage.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WriteHTML(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1", "--force-color-profile=srgb",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--screenshot="+shot, "--window-size=1280,1600",
		"file://"+page)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	fh, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatal(err)
	}
	cals := calendars(img)
	// The plan's row first, then the organisations worst first.
	want := []string{
		"LLMABQMN", // the plan: landed, landed, repair, awaiting, blocked, quarantined, request, not yet due
		"LMMABQMN", // A81002: disabled in the sharing agreement on the 17th
		"LLMABQMN", // A81001
		"LLMABQXX", // A81004: permission ended on the 21st
	}
	if strings.Join(cals, " ") != strings.Join(want, " ") {
		t.Errorf("calendars drawn: %q\nwant %q", cals, want)
	}
}

// cellLetters names the statuses' colours as the test reads them.
var cellLetters = map[Status]byte{Landed: 'L', Missing: 'M', Blocked: 'B', Quarantined: 'Q', Awaiting: 'A', NotDue: 'N', NotExtracted: 'X'}

// calendars finds the 12×12 squares of a status colour (legend swatches
// are 10×10 and do not count), groups them into calendars by vertical
// gaps, and reads each calendar in day order (column by column, top to
// bottom) as status letters.
func calendars(img image.Image) []string {
	type cell struct {
		x, y   int
		letter byte
	}
	rgb := map[[3]uint8]byte{}
	for s, hex := range colours {
		var c [3]uint8
		fmt.Sscanf(hex, "#%02x%02x%02x", &c[0], &c[1], &c[2])
		rgb[c] = cellLetters[s]
	}
	b := img.Bounds()
	at := func(x, y int) (byte, bool) {
		r, g, bl, _ := img.At(x, y).RGBA()
		l, ok := rgb[[3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8)}]
		return l, ok
	}
	var cells []cell
	for y := b.Min.Y; y < b.Max.Y-11; y++ {
		for x := b.Min.X; x < b.Max.X-11; x++ {
			l, ok := at(x, y)
			if !ok {
				continue
			}
			// A cell's top-left corner: the colour does not continue up or
			// left, and fills exactly 12×12.
			if pl, ok := at(x-1, y); ok && pl == l {
				continue
			}
			if pu, ok := at(x, y-1); ok && pu == l {
				continue
			}
			full := true
			for dy := 0; dy < 12 && full; dy++ {
				for dx := 0; dx < 12 && full; dx++ {
					if c, ok := at(x+dx, y+dy); !ok || c != l {
						full = false
					}
				}
			}
			if c, ok := at(x+12, y); ok && c == l {
				full = false
			}
			if c, ok := at(x, y+12); ok && c == l {
				full = false
			}
			if full {
				cells = append(cells, cell{x, y, l})
			}
		}
	}
	sort.Slice(cells, func(i, j int) bool {
		if cells[i].y != cells[j].y {
			return cells[i].y < cells[j].y
		}
		return cells[i].x < cells[j].x
	})
	var groups [][]cell
	lastY := -100
	for _, c := range cells {
		if c.y-lastY > 14 {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], c)
		lastY = c.y
	}
	var out []string
	for _, g := range groups {
		sort.Slice(g, func(i, j int) bool {
			if g[i].x != g[j].x {
				return g[i].x < g[j].x
			}
			return g[i].y < g[j].y
		})
		var s []byte
		for _, c := range g {
			s = append(s, c.letter)
		}
		out = append(out, string(s))
	}
	return out
}
