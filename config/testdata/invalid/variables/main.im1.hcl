variable "port" {
  type    = number
  default = "not a number"
}

variable "required" {}

variable "count" {
  type = number
  validation {
    condition     = var.count > 10
    error_message = "The count must exceed ten."
  }
  validation {
    condition     = var.count == var.port
    error_message = "Cross-variable rules are not allowed."
  }
}

variable "typo" {
  type = strin
  descriptio = "x"
}
