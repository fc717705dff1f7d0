package record

import (
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/check"
	"github.com/im1dev/im1/schema"
)

// Organisation is a GP practice by ODS code.
var Organisation = &schema.Block{
	Doc:     "A GP practice, identified by its ODS code, and the permission it granted for extraction.",
	ForEach: true,
	Attributes: []*schema.Attribute{
		{Name: "ods", Type: cty.String, Doc: "ODS code of the practice. Defaults to the block label.", Check: check.String(check.ODS)},
		{Name: "name", Type: cty.String, Required: true, Doc: "Practice name, for reports."},
		{Name: "supplier", Type: cty.String, Required: true, Doc: `GP system supplier: "emis" or "systmone".`, Check: check.String(check.OneOf("emis", "systmone"))},
		{Name: "permission_from", Type: cty.String, Doc: "Date (yyyy-mm-dd) the practice granted permission to extract.", Check: check.String(check.Date)},
		{Name: "permission_until", Type: cty.String, Doc: "Date (yyyy-mm-dd) the permission ends, if it does.", Check: check.String(check.Date)},
		{Name: "emis_guid", Type: cty.String, Doc: "EMIS OrganisationGuid, when known; otherwise learned from Admin_Organisation.", Check: check.String(check.GUID)},
	},
}

// FillOrganisation defaults ods to the instance key or block label.
func FillOrganisation(addr string, v cty.Value) cty.Value {
	if !providers.GetAttr(v, "ods").IsNull() {
		return v
	}
	label := addr
	if i := strings.Index(label, "["); i >= 0 { // organisation.x["A81001"]: the key
		label = strings.Trim(label[i+1:], `"]`)
	} else if i := strings.LastIndex(label, "."); i >= 0 {
		label = label[i+1:]
	}
	return providers.SetAttr(v, "ods", cty.StringVal(label))
}

// Table is the nested `table "Name" { fields = [...] }` block of a dataset.
var Table = &schema.NestedBlock{
	Name:   "table",
	Labels: []string{"name"},
	Doc:    "A table (EMIS file type or SystmOne SR table) with the fields extracted.",
	Block: &schema.Block{
		Doc: "A table and its fields.",
		Attributes: []*schema.Attribute{
			{Name: "fields", Type: cty.List(cty.String), Doc: "Fields (columns) extracted; empty means all fields of the table."},
		},
	},
}

// Dataset is a named set of tables under one IG approval.
var Dataset = &schema.Block{
	Doc: "A named set of tables and fields with the information-governance approval that covers them.",
	Attributes: []*schema.Attribute{
		{Name: "tables", Type: cty.List(cty.String), Doc: "Tables extracted with all their fields (EMIS file types such as CareRecord_Observation, or SR tables)."},
		{Name: "ig_approval", Type: cty.String, Required: true, Doc: "Reference of the IG approval covering this dataset."},
		{Name: "approval_expires", Type: cty.String, Doc: "Date (yyyy-mm-dd) the approval ends; extraction stops after it.", Check: check.String(check.Date)},
		{Name: "recipient_keys", Type: cty.List(cty.String), Doc: "EMIS only: fingerprints of this dataset's own recipient keys (else the site's)."},
	},
	Blocks: []*schema.NestedBlock{Table},
}

// Schedule is when deliveries are expected.
var Schedule = &schema.Block{
	Doc: "When deliveries are expected: the first is a full extract, later ones deltas.",
	Attributes: []*schema.Attribute{
		{Name: "frequency", Type: cty.String, Required: true, Doc: `"daily", "weekly" or "monthly".`, Check: check.String(check.OneOf("daily", "weekly", "monthly"))},
		{Name: "start", Type: cty.String, Required: true, Doc: "Date (yyyy-mm-dd) of the first expected delivery (the full extract).", Check: check.String(check.Date)},
		{Name: "lateness", Type: cty.String, Default: cty.StringVal("24h"), Doc: "How late a delivery may be before apply requests a re-extract.", Check: check.String(check.Duration)},
		{Name: "retention", Type: cty.String, Doc: "How long landed deliveries are kept (e.g. 365d); unset keeps them.", Check: check.String(check.Duration)},
	},
}

// Extract binds a source, a dataset and a schedule.
var Extract = &schema.Block{
	Doc:     "Binds a source (an EMIS site or a SystmOne strategic report), a dataset and a schedule; expands into one instance per expected delivery.",
	ForEach: true,
	Attributes: []*schema.Attribute{
		{Name: "source", Type: cty.DynamicPseudoType, Required: true, Doc: "The emis_site or systmone_strategic_report delivering the data."},
		{Name: "dataset", Type: cty.DynamicPseudoType, Required: true, Doc: "The dataset extracted."},
		{Name: "schedule", Type: cty.DynamicPseudoType, Required: true, Doc: "The schedule deliveries follow."},
	},
}

// ReportingUnit is the SystmOne unit hosting strategic reporting.
var ReportingUnit = &schema.Block{
	Doc: "The SystmOne unit that hosts strategic reporting and configures the reports.",
	Attributes: []*schema.Attribute{
		{Name: "ods", Type: cty.String, Required: true, Doc: "ODS code of the reporting unit.", Check: check.String(check.ODS)},
		{Name: "name", Type: cty.String, Doc: "Unit name."},
		{Name: "technical_contact", Type: cty.String, Required: true, Doc: "Who at the unit configures strategic reporting (name and email)."},
	},
}

// OrganisationGroup is the set of units whose data is extracted.
var OrganisationGroup = &schema.Block{
	Doc: "The SystmOne units whose data a strategic report extracts.",
	Attributes: []*schema.Attribute{
		{Name: "reporting_unit", Type: cty.DynamicPseudoType, Required: true, Doc: "The systmone_reporting_unit that owns the group."},
		{Name: "organisations", Type: cty.List(cty.String), Required: true, Doc: "ODS codes of the units in the group.", Check: check.Each(check.ODS)},
	},
}

// StrategicReport is a SystmOne strategic report.
var StrategicReport = &schema.Block{
	Doc: "A SystmOne strategic report: what the reporting unit configures in the SystmOne client and where its files land.",
	Attributes: []*schema.Attribute{
		{Name: "reporting_unit", Type: cty.DynamicPseudoType, Required: true, Doc: "The systmone_reporting_unit that runs the report."},
		{Name: "organisation_group", Type: cty.DynamicPseudoType, Required: true, Doc: "The systmone_organisation_group whose data is extracted."},
		{Name: "dataset", Type: cty.DynamicPseudoType, Required: true, Doc: "The dataset: SR tables and their fields."},
		{Name: "schedule", Type: cty.DynamicPseudoType, Required: true, Doc: "The schedule; the report's extract frequency comes from it."},
		{Name: "delimiter", Type: cty.String, Default: cty.StringVal(","), Doc: "Field delimiter of the files.", Check: check.String(check.OneOf(",", "|", "\t", ";"))},
		{Name: "text_qualifier", Type: cty.String, Default: cty.StringVal(`"`), Doc: `Text qualifier: "\"" or "" for none.`, Check: check.String(check.OneOf(`"`, ""))},
		{Name: "root_directory", Type: cty.String, Required: true, Doc: "Gateway root directory (local path or mounted share) the SystmOne client writes extracts into."},
		{Name: "technical_contact", Type: cty.String, Doc: "Contact for this report; defaults to the reporting unit's."},
	},
}
