// Package site embeds the catalog data that Hugo renders (site/data/*.json), so the API prices
// orders from exactly the files the site shows. Marketers edit those files; nothing else.
package site

import (
	"embed"
	"encoding/json"
	"fmt"

	"gpubroker"
)

//go:embed data/plans.json data/templates.json data/gpus.json data/regions.json
var data embed.FS

// Catalog parses the embedded catalog files.
func Catalog() (*gpubroker.Catalog, error) {
	var c gpubroker.Catalog
	for _, f := range []struct {
		name string
		dst  any
	}{{"data/plans.json", &c.Plans}, {"data/templates.json", &c.Templates}, {"data/gpus.json", &c.GPUs}, {"data/regions.json", &c.Regions}} {
		b, err := data.ReadFile(f.name)
		if err != nil {
			return nil, fmt.Errorf("error reading %s: %w", f.name, err)
		}
		if err := json.Unmarshal(b, f.dst); err != nil {
			return nil, fmt.Errorf("error parsing site/%s: %w", f.name, err)
		}
	}
	return &c, nil
}
