variable "codes" {
  default = { a = "A81001", b = "not-ods" }
}

organisation "A81001" {
  ods = "A8100"
}

organisation "many" {
  for_each = var.codes
  ods      = each.value
}
