# A first im1 configuration: one EMIS site delivering a multi-organisation
# extract for three practices, one key, a daily schedule, and one SystmOne
# strategic report. `im1 plan` shows what apply would do.

im1 {
  state_path  = ".im1/state.db"
  landing_dir = "landing"
  archive_dir = "archive"
  handoff_dir = "handoff"
  zone        = "Europe/London"
}

variable "sftp_port" {
  type        = number
  default     = 2222
  description = "Port of the EMIS secure SFTP site (the simulator's by default)."
}

variable "practices" {
  type = map(string)
  default = {
    A81001 = "Densham Surgery"
    A81002 = "Queens Park Medical Centre"
    A81004 = "Bedale Road Surgery"
  }
}

organisation "emis" {
  for_each        = var.practices
  ods             = each.key
  name            = each.value
  supplier        = "emis"
  permission_from = "2026-11-01"
}

key "emis_2026" {
  algorithm      = "rsa4096"
  valid_for      = "730d"
  rotate_before  = "30d"
  passphrase_env = "IM1_KEY_PASSPHRASE"
}

emis_site "central" {
  host              = "127.0.0.1"
  port              = var.sftp_port
  user              = "im1"
  host_key          = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
  auth_key_file     = "secrets/sftp_ed25519"
  architecture      = "multi_organisation"
  sharing_agreement = "45E7CD20-EE37-41AB-90D6-DC9D4B03D102"
  organisations     = [for o in organisation.emis : o.ods]
  recipient_keys    = [key.emis_2026.fingerprint]
}

dataset "core" {
  tables      = ["Admin_Patient", "CareRecord_Observation", "Prescribing_DrugRecord"]
  ig_approval = "IG-2026-014"
}

schedule "daily" {
  frequency = "daily"
  start     = "2026-11-01"
  lateness  = "36h"
}

extract "core" {
  source   = emis_site.central
  dataset  = dataset.core
  schedule = schedule.daily
}

# SystmOne strategic reporting for two units.
systmone_reporting_unit "hub" {
  ods               = "Y01234"
  name              = "Harbour Data Hub"
  technical_contact = "Sam Patel <sam.patel@nhs.example>"
}

systmone_organisation_group "north" {
  reporting_unit = systmone_reporting_unit.hub
  organisations  = ["B82005", "B82018"]
}

dataset "sr_core" {
  ig_approval = "IG-2026-021"

  table "SRPatient" {
    fields = ["RowIdentifier", "IDOrganisationVisibleTo", "NHSNumber", "DateBirth", "Gender", "RemovedData"]
  }
  table "SRCode" {
    fields = ["RowIdentifier", "IDOrganisationVisibleTo", "IDPatient", "DateEvent", "CTV3Code", "SNOMEDCode", "NumericValue", "RemovedData"]
  }
}

schedule "sr_daily" {
  frequency = "daily"
  start     = "2026-11-01"
}

systmone_strategic_report "north_core" {
  reporting_unit     = systmone_reporting_unit.hub
  organisation_group = systmone_organisation_group.north
  dataset            = dataset.sr_core
  schedule           = schedule.sr_daily
  delimiter          = ","
  text_qualifier     = "\""
  root_directory     = "gateway/north"
}

extract "sr_core" {
  source   = systmone_strategic_report.north_core
  dataset  = dataset.sr_core
  schedule = schedule.sr_daily
}
