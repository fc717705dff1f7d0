package srfile

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// ReportConfig is the strategic report sheet: what im1 asks the reporting
// unit to set up in the SystmOne client (the handoff "report_config"
// payload), and what the simulator follows.
type ReportConfig struct {
	Report           string        `json:"report"`
	ReportingUnit    string        `json:"reporting_unit"` // ODS code
	Organisations    []string      `json:"organisations"`  // ODS codes of the organisation group
	Tables           []ReportTable `json:"tables"`
	Delimiter        string        `json:"delimiter"`      // ",", "|", "\t" or ";"
	TextQualifier    string        `json:"text_qualifier"` // `"` or "" for none
	Frequency        string        `json:"frequency"`      // daily, weekly or monthly
	Start            string        `json:"start"`          // yyyy-mm-dd
	RootDirectory    string        `json:"root_directory"`
	TechnicalContact string        `json:"technical_contact,omitempty"`
}

// ReportTable is one table of the report and its fields, in file order.
// No fields means every field of the table.
type ReportTable struct {
	Name   string   `json:"name"`
	Fields []string `json:"fields,omitempty"`
}

// DelimiterByte is the delimiter as a byte, ',' when unset.
func (c ReportConfig) DelimiterByte() (byte, error) {
	switch c.Delimiter {
	case "":
		return ',', nil
	case ",", "|", "\t", ";":
		return c.Delimiter[0], nil
	}
	return 0, fmt.Errorf("delimiter %q is not one of , | tab ;", c.Delimiter)
}

// QuoteByte is the text qualifier as a byte, 0 for none.
func (c ReportConfig) QuoteByte() (byte, error) {
	switch c.TextQualifier {
	case "":
		return 0, nil
	case `"`:
		return '"', nil
	}
	return 0, fmt.Errorf("text qualifier %q is not \" or none", c.TextQualifier)
}

func delimiterName(d string) string {
	switch d {
	case ",", "":
		return "comma ( , )"
	case "|":
		return "pipe ( | )"
	case "\t":
		return "tab"
	case ";":
		return "semicolon ( ; )"
	}
	return fmt.Sprintf("%q", d)
}

func orNone(s string) string {
	if s == "" {
		return "(not set)"
	}
	return s
}

// Markdown renders the sheet for the person at the reporting unit. The
// steps name what is set rather than exact menu paths: TPP does not
// publish the client's screens, and they change between releases.
func (c ReportConfig) Markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# SystmOne strategic report: %s\n\n", orNone(c.Report))
	p("Please set up this strategic report in the SystmOne client at reporting unit **%s**, then reply to the technical contact (%s). ", orNone(c.ReportingUnit), orNone(c.TechnicalContact))
	p("The extracts are checked automatically: the report is done when a delivery's SRManifest.csv and file headers match this sheet.\n\n")
	p("## 1. Report\n\n")
	p("1. Log on to SystmOne at reporting unit %s with a smartcard that holds the strategic reporting role.\n", orNone(c.ReportingUnit))
	p("2. Open Strategic Reporting and create a new report named `%s`.\n\n", orNone(c.Report))
	p("## 2. Organisation group\n\n")
	p("Extract data for exactly these units (ODS codes), and no others:\n\n")
	for _, o := range c.Organisations {
		p("- %s\n", o)
	}
	if len(c.Organisations) == 0 {
		p("- (none listed)\n")
	}
	p("\n## 3. Tables and fields\n\n")
	p("Tick these tables. For each, tick exactly these fields and put them in this order (the file header will follow it). ")
	p("Leave RemovedData as the client adds it. SROrganisation is always included.\n\n")
	for _, t := range c.Tables {
		p("### %s\n\n", t.Name)
		fields := t.Fields
		if len(fields) == 0 {
			p("All fields:\n\n")
			if tab, ok := Lookup(t.Name); ok {
				fields = without(tab.Latest().Columns, RemovedData)
			}
		}
		for i, f := range fields {
			p("%d. %s\n", i+1, f)
		}
		p("\n")
	}
	p("## 4. File format\n\n")
	p("- Field delimiter: %s\n", delimiterName(c.Delimiter))
	if c.TextQualifier == "" {
		p("- Text qualifier: none\n")
	} else {
		p("- Text qualifier: double quote ( %s ), around every field\n", c.TextQualifier)
	}
	p("- Header row: yes\n")
	p("- Character set: ANSI (Windows-1252), the client's default\n\n")
	p("## 5. Schedule\n\n")
	p("- Frequency: %s\n", orNone(c.Frequency))
	p("- First extract on: %s (a full extract; deltas after it)\n\n", orNone(c.Start))
	p("## 6. Output\n\n")
	p("- Root directory: `%s`\n", orNone(c.RootDirectory))
	p("- Each extract is a folder named yyyyMMdd_HHmm holding SRExtract.zip, SRManifest.csv, SRMapping.csv and SRMappingGroup.csv.\n\n")
	p("## 7. Contact\n\n")
	p("Technical contact: %s\n", orNone(c.TechnicalContact))
	return b.String()
}

// Validate checks the sheet is one the client can be set up with: known
// tables, fields that exist in some known version, no duplicates.
func (c ReportConfig) Validate() error {
	if _, err := c.DelimiterByte(); err != nil {
		return err
	}
	if _, err := c.QuoteByte(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, t := range c.Tables {
		tab, ok := Lookup(t.Name)
		if !ok {
			return fmt.Errorf("unknown SystmOne table %q", t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("table %s listed twice", t.Name)
		}
		seen[t.Name] = true
		for i, f := range t.Fields {
			if !tab.HasColumn(f) {
				return fmt.Errorf("%s has no field %q", t.Name, f)
			}
			if slices.Contains(t.Fields[:i], f) {
				return fmt.Errorf("%s: field %s listed twice", t.Name, f)
			}
		}
	}
	return nil
}

// ParseOrganisations reads an SROrganisation table that has been decoded to
// UTF-8 (the landed copy) and returns its ID (ODS code) to Name map.
// Columns are found by header name. Rows flagged RemovedData=1 are left
// out; an ODS code listed twice keeps its last name.
func ParseOrganisations(r io.Reader, delim, quote byte) (map[string]string, error) {
	const file = "SROrganisation"
	recs, err := newRecords(io.LimitReader(r, 1<<30), delim, quote)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	header, err := recs.next()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: %w", file, errNoHeader)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: header: %w", file, err)
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	idx, err := headerIndex(header)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	id, okID := idx["id"]
	name, okName := idx["name"]
	if !okID || !okName {
		return nil, fmt.Errorf("%s: header has no ID and Name columns", file)
	}
	removed, hasRemoved := idx[strings.ToLower(RemovedData)]
	out := map[string]string{}
	for {
		rec, err := recs.next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if id >= len(rec) || name >= len(rec) {
			return nil, fmt.Errorf("%s line %d: %d fields, header has %d", file, recs.line, len(rec), len(header))
		}
		if hasRemoved && removed < len(rec) && strings.TrimSpace(rec[removed]) == "1" {
			continue
		}
		ods := strings.TrimSpace(rec[id])
		if ods == "" {
			continue
		}
		if len(out) >= 1<<20 {
			return nil, fmt.Errorf("%s: too many organisations", file)
		}
		out[ods] = strings.TrimSpace(rec[name])
	}
}
