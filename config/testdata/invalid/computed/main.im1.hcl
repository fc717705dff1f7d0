key "emis_2026" {
  fingerprint = "ABCD"
}
