// Package registry wires every block type to its provider. A registry is
// made per run: providers keep per-run things such as SSH connections.
package registry

import (
	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/emis"
	"github.com/im1dev/im1/providers/extract"
	"github.com/im1dev/im1/providers/pgpkey"
	"github.com/im1dev/im1/providers/record"
	"github.com/im1dev/im1/providers/systmone"
)

// New returns a fresh registry.
func New() providers.Registry {
	em := emis.New()
	sm := systmone.New()
	return providers.Registry{
		"organisation":                &record.Resource{Block: record.Organisation, Fill: record.FillOrganisation},
		"dataset":                     &record.Resource{Block: record.Dataset},
		"schedule":                    &record.Resource{Block: record.Schedule},
		"systmone_reporting_unit":     &record.Resource{Block: record.ReportingUnit},
		"systmone_organisation_group": &record.Resource{Block: record.OrganisationGroup},
		"systmone_strategic_report":   sm.Report(),
		"key":                         &pgpkey.Resource{},
		"emis_site":                   em.Site(),
		"extract": &extract.Resource{Sources: map[string]extract.Source{
			"emis_site":                 em,
			"systmone_strategic_report": sm,
		}},
	}
}
