organisation "1abc" {
  ods = "A81001"
}

organisation {
  ods = "A81001"
}

key "a" "b" {}

dataset "core" {
  table {}
}

stray = 1
