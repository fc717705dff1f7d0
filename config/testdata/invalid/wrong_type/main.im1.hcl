emis_site "central" {
  host          = "127.0.0.1"
  port          = "twenty-two"
  organisations = "A81001"
}

dataset "core" {
  table "Admin_Patient" {
    fields = [["nested"]]
  }
}
