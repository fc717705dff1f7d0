organisation "A81001" {
  ods  = "A81001"
  nmae = "Densham Surgery"
}

dataset "core" {
  ig_aproval = "IG-1"
  tabel "Admin_Patient" {}
  table = "x"
  table "CareRecord_Observation" {
    fields = []
    feilds = []
  }
}
