schedule "daily" {
  for_each  = toset(["a"])
  frequency = "daily"
}

schedule "weekly" {
  frequency = each.key
}

organisation "list" {
  for_each = ["A81001"]
  ods      = each.key
}

organisation "each_in_for_each" {
  for_each = { (each.key) = 1 }
  ods      = each.nope
}

organisation "numbers" {
  for_each = toset([1, 2])
  ods      = each.key
}
