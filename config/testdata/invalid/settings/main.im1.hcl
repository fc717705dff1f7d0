im1 {
  zone       = "Mars/Olympus_Mons"
  file_mode  = "0999"
  dir_mode   = "rwx"
  landing    = "x"
  state_path = organisation.x.ods
}
