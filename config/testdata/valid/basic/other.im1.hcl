# A second file: declaration order is by file name, then position.
dataset "core" {
  ig_approval = "IG-2026-014"

  table "Admin_Patient" {
    fields = split(",", "PatientGuid,Sex")
  }
  table "CareRecord_Observation" {}
}

schedule "daily" {
  frequency = "daily"
  start     = "2026-11-01"
}

extract "core" {
  source   = emis_site.central
  dataset  = dataset.core
  schedule = schedule.daily
}
