# Organisation-specific EMIS sites: one secure SFTP site and sharing
# agreement per practice, declared once with for_each, and one extract per
# site. Instances are addressed extract.core["A81001"]["2026-11-21"] and land
# under landing/core-A81001/practice-A81001/, so sites never collide.

im1 {
  zone = "Europe/London"
}

variable "sites" {
  description = "Per practice: the site's port, pinned host key and sharing agreement."
  default = {
    A81001 = {
      name      = "Densham Surgery"
      port      = 2201
      host_key  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
      agreement = "45E7CD20-EE37-41AB-90D6-DC9D4B03D101"
    }
    A81002 = {
      name      = "Queens Park Medical Centre"
      port      = 2202
      host_key  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
      agreement = "45E7CD20-EE37-41AB-90D6-DC9D4B03D102"
    }
  }
}

organisation "practice" {
  for_each        = var.sites
  ods             = each.key
  name            = each.value.name
  supplier        = "emis"
  permission_from = "2026-11-01"
}

key "emis_2026" {
  algorithm      = "rsa4096"
  valid_for      = "730d"
  passphrase_env = "IM1_KEY_PASSPHRASE"
}

emis_site "practice" {
  for_each          = var.sites
  host              = "127.0.0.1"
  port              = each.value.port
  user              = "im1"
  host_key          = each.value.host_key
  auth_key_file     = "secrets/sftp_ed25519"
  architecture      = "organisation_specific"
  sharing_agreement = each.value.agreement
  organisations     = [each.key]
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
  for_each = emis_site.practice
  source   = each.value
  dataset  = dataset.core
  schedule = schedule.daily
}
