variable "host" {
  default = "default.example"
}

variable "port" {
  type    = number
  default = 22
}

variable "user" {
  type = string
}

variable "orgs" {
  type    = list(string)
  default = []
  validation {
    condition     = length(var.orgs) < 5
    error_message = "At most four practices."
  }
}

variable "password" {
  type      = string
  sensitive = true
}

emis_site "central" {
  host          = "${var.user}@${var.host}"
  port          = var.port
  password      = var.password
  organisations = var.orgs
}
