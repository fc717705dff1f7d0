im1 {
  zone      = "Mars/Olympus_Mons"
  file_mode = "0999"
  dir_mode  = "rwx"
}
