organisation "A81001" {
  ods = "A81001"
}

emis_site "central" {
  host           = var.hots
  organisations  = [organisation.A81002.ods, organisation.A81001.odz]
  recipient_keys = [key.emis_2026.fingerprint, organisation]
}

emis_site "other" {
  host = organisation.A81001.odz
}
