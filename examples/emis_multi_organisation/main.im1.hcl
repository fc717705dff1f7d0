# A complete multi-organisation EMIS extract: one secure SFTP site delivers a
# batch a day for every practice in the sharing agreement, encrypted to a key
# im1 makes and hands to EMIS. Two datasets, each under its own IG approval
# and its own recipient key, share the site and the schedule.
#
#   im1 plan                      # what apply would do
#   im1 apply -auto-approve       # make keys, hand them off, fetch and land
#   im1 coverage -html cov.html   # what landed per practice and day

im1 {
  state_path  = ".im1/state.db"
  landing_dir = "landing"
  archive_dir = "archive"
  handoff_dir = "handoff"
  zone        = "Europe/London"
}

variable "sftp_host" {
  type        = string
  default     = "127.0.0.1"
  description = "Host of the EMIS secure SFTP site."
}

variable "sftp_port" {
  type    = number
  default = 2222
}

variable "practices" {
  type        = map(string)
  description = "ODS code => practice name of every practice in the sharing agreement."
  default = {
    A81001 = "Densham Surgery"
    A81002 = "Queens Park Medical Centre"
    A81004 = "Bedale Road Surgery"
    A81005 = "Springwood Surgery"
  }
}

organisation "practice" {
  for_each        = var.practices
  ods             = each.key
  name            = each.value
  supplier        = "emis"
  permission_from = "2026-11-01"
}

# Each dataset is protected by its own key pair, as EMIS recommends.
key "core_2026" {
  algorithm      = "rsa4096"
  valid_for      = "730d"
  rotate_before  = "30d"
  passphrase_env = "IM1_KEY_PASSPHRASE"
}

key "prescribing_2026" {
  algorithm      = "rsa4096"
  valid_for      = "730d"
  rotate_before  = "30d"
  passphrase_env = "IM1_KEY_PASSPHRASE"
}

emis_site "central" {
  host              = var.sftp_host
  port              = var.sftp_port
  user              = "im1"
  host_key          = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
  auth_key_file     = "secrets/sftp_ed25519"
  architecture      = "multi_organisation"
  sharing_agreement = "45E7CD20-EE37-41AB-90D6-DC9D4B03D102"
  organisations     = [for p in organisation.practice : p.ods]
  recipient_keys    = [key.core_2026.fingerprint]
}

dataset "core" {
  tables         = ["Admin_Patient", "Admin_Location", "CareRecord_Consultation", "CareRecord_Observation", "CareRecord_Problem"]
  ig_approval    = "IG-2026-014"
  recipient_keys = [key.core_2026.fingerprint]
}

dataset "prescribing" {
  tables           = ["Prescribing_DrugRecord", "Prescribing_IssueRecord"]
  ig_approval      = "IG-2026-015"
  approval_expires = "2027-10-31"
  recipient_keys   = [key.prescribing_2026.fingerprint]
}

schedule "daily" {
  frequency = "daily"
  start     = "2026-11-01"
  lateness  = "36h"
  retention = "365d"
}

extract "core" {
  source   = emis_site.central
  dataset  = dataset.core
  schedule = schedule.daily
}

extract "prescribing" {
  source   = emis_site.central
  dataset  = dataset.prescribing
  schedule = schedule.daily
}
