// Package redact masks secrets in connection strings before they reach a
// log line or an error message: the one redactor every service and every
// platform package uses, so no second, weaker copy can leak a password.
package redact
