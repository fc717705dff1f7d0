variable "practices" {
  type = map(string)
  default = {
    A81001 = "Densham Surgery"
    A81002 = "Queens Park Medical Centre"
  }
}

organisation "emis" {
  for_each = var.practices
  ods      = each.key
  name     = each.value
}

emis_site "central" {
  host          = "127.0.0.1"
  organisations = [for o in organisation.emis : o.ods]
}

extract "per_practice" {
  for_each = toset(keys(var.practices))
  source   = emis_site.central
  dataset  = organisation.emis[each.key].address
}
