organisation "A81001" {
  ods = "A81001
}
