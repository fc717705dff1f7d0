package main

import (
	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/emis"
	"github.com/im1dev/im1/providers/pgpkey"
	"github.com/im1dev/im1/providers/record"
)

// registry wires every block type to its provider.
func registry() providers.Registry {
	return providers.Registry{
		"organisation":                &record.Resource{Block: record.Organisation, Fill: record.FillOrganisation},
		"dataset":                     &record.Resource{Block: record.Dataset},
		"schedule":                    &record.Resource{Block: record.Schedule},
		"extract":                     &record.Resource{Block: record.Extract},
		"systmone_reporting_unit":     &record.Resource{Block: record.ReportingUnit},
		"systmone_organisation_group": &record.Resource{Block: record.OrganisationGroup},
		"systmone_strategic_report":   &record.Resource{Block: record.StrategicReport},
		"emis_site":                   &record.Resource{Block: emis.SiteSchema},
		"key":                         &pgpkey.Resource{},
	}
}
