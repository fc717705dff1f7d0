organisation "A81001" {
  ods = "A81001"
}

variable "x" {}
variable "x" {}

im1 {}
im1 {}
