// Package config loads service configuration from environment variables.
//
// It wraps github.com/caarlos0/env so every service gets the same behaviour:
// typed fields with defaults in struct tags, every parse error reported at
// start-up as one line naming the variable and its bad value (the original
// design silently ignored them), an optional Validate step, and a
// secret-masking view of the effective configuration for the start-up log.
package config
