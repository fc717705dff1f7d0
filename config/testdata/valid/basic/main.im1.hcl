im1 {
  state_path = "state/im1.db"
  zone       = "UTC"
  file_mode  = "0600"
}

organisation "A81001" {
  ods  = "A81001"
  name = "Densham Surgery"
}

key "emis_2026" {
  passphrase_env = "IM1_KEY_PASSPHRASE"
}

emis_site "central" {
  host           = "127.0.0.1"
  port           = 2222
  host_key       = trimspace(file("host_key.pub"))
  organisations  = [organisation.A81001.ods]
  recipient_keys = [key.emis_2026.algorithm, upper(format("%s-%d", "k", 1))]
}
