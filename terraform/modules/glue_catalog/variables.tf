variable "database_prefix" {
  description = "Prefix of the database names; must equal catalog.database_prefix in the jobs' conf."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[a-z0-9_]{0,30}$", var.database_prefix))
    error_message = "database_prefix may hold lower-case letters, digits and underscores (at most 30)."
  }
}

variable "layers" {
  description = "Lakehouse layers, one database each (the <layer> of the jobs' <layer>.<name> tables)."
  type        = list(string)
  default     = ["bronze", "silver", "gold", "quarantine", "audit", "restricted"]

  validation {
    condition     = length(var.layers) > 0 && alltrue([for l in var.layers : can(regex("^[a-z][a-z0-9_]*$", l))])
    error_message = "layers must be non-empty lower-case identifiers."
  }
}

variable "tags" {
  description = "Tags on every database."
  type        = map(string)
  default     = {}
}
