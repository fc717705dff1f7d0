schedule "a" {
  frequency = schedule.b.frequency
}

schedule "b" {
  frequency = schedule.a.frequency
}

emis_site "x" {
  host = emis_site.y.host
}

emis_site "y" {
  host = emis_site.z.host
}

emis_site "z" {
  host = emis_site.x.host
}

emis_site "self" {
  host = emis_site.self.host
}
