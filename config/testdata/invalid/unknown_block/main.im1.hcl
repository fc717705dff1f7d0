organisaton "A81001" {
  ods = "A81001"
}

frobnicate "x" {}
