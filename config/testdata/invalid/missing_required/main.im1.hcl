organisation "A81001" {
  name = "Densham Surgery"
}

dataset "empty" {
}

schedule "daily" {
  frequency = null
}
