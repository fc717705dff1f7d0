variable "password" {
  type      = string
  sensitive = true
  validation {
    condition     = length(var.password) > 20
    error_message = "The password ${var.password} is too short."
  }
}

variable "pin" {
  type      = number
  sensitive = true
}

variable "dsn" {
  type      = string
  sensitive = true
}

variable "list" {
  type      = list(string)
  sensitive = true
}

im1 {
  postgres_dsn = tonumber(var.dsn)
}

emis_site "central" {
  host     = tonumber(var.password)
  port     = var.password
  password = 5
}
