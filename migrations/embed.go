// Package migrations holds the SQL migrations of GPU Broker, embedded into the binary and
// applied by goose (River's own tables are migrated by rivermigrate, see package postgres).
package migrations

import "embed"

// FS holds the NNN_name.sql files.
//
//go:embed *.sql
var FS embed.FS
