# SystmOne strategic reporting: a reporting unit runs a report for a group
# of units; the SystmOne client writes each extract (SRExtract.zip with its
# SRManifest) into a gateway root, and im1 ingests it. There is no API to
# configure the report: apply hands the unit a configuration sheet (JSON and
# a readable .md twin) under handoff/, and the report stays "awaiting
# supplier" until a delivery matches it.

im1 {
  zone = "Europe/London"
}

systmone_reporting_unit "hub" {
  ods               = "Y01234"
  name              = "Harbour Data Hub"
  technical_contact = "Sam Patel <sam.patel@nhs.example>"
}

organisation "unit" {
  for_each = {
    B82005 = "Harbour Surgery"
    B82018 = "Quayside Practice"
    B82020 = "Lighthouse Medical Group"
  }
  ods      = each.key
  name     = each.value
  supplier = "systmone"
}

systmone_organisation_group "north" {
  reporting_unit = systmone_reporting_unit.hub
  organisations  = [for u in organisation.unit : u.ods]
}

dataset "sr_core" {
  ig_approval = "IG-2026-021"

  table "SRPatient" {
    fields = ["RowIdentifier", "IDOrganisationVisibleTo", "NHSNumber", "DateBirth", "Gender", "RemovedData"]
  }
  table "SRCode" {
    fields = ["RowIdentifier", "IDOrganisationVisibleTo", "IDPatient", "DateEvent", "CTV3Code", "SNOMEDCode", "NumericValue", "RemovedData"]
  }
  table "SRRepeatTemplate" {
  }
}

schedule "weekly" {
  frequency = "weekly"
  start     = "2026-11-02"
  lateness  = "48h"
}

systmone_strategic_report "north_core" {
  reporting_unit     = systmone_reporting_unit.hub
  organisation_group = systmone_organisation_group.north
  dataset            = dataset.sr_core
  schedule           = schedule.weekly
  delimiter          = "|"
  text_qualifier     = ""
  root_directory     = "gateway/north"
}

extract "sr_core" {
  source   = systmone_strategic_report.north_core
  dataset  = dataset.sr_core
  schedule = schedule.weekly
}
