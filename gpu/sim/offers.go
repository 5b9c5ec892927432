package sim

import "gpubroker/gpu"

// seed is the default price list: every GPU × region pair of site/data/gpus.json, each with at
// least two offers so failover has somewhere to go. Prices sit in the market ranges of
// shared/reference/gpu-providers.md and below our catalog price for the pair, so the broker
// never launches at a loss in development (a test checks both against gpus.json).
var seed = []struct {
	gpu, region string
	cents       []int64 // cheapest first; offer ids get suffixes a, b, c…
}{
	{"h100", "us-east", []int64{259, 279}},     // catalog 299
	{"h100", "us-west", []int64{249, 269}},     // catalog 289
	{"h100", "eu-central", []int64{289, 309}},  // catalog 319
	{"a100", "us-east", []int64{149, 165}},     // catalog 179
	{"a100", "us-west", []int64{139, 155}},     // catalog 169
	{"a100", "eu-central", []int64{159, 179}},  // catalog 189
	{"l40s", "us-east", []int64{79, 89}},       // catalog 99
	{"l40s", "eu-central", []int64{85, 99}},    // catalog 109
	{"a6000", "us-east", []int64{49, 65}},      // catalog 79
	{"a6000", "us-west", []int64{55, 69}},      // catalog 79
	{"a10", "us-east", []int64{59, 75}},        // catalog 89
	{"a10", "us-west", []int64{65, 79}},        // catalog 89
	{"rtx4090", "us-east", []int64{39, 55}},    // catalog 69
	{"rtx4090", "eu-central", []int64{34, 49}}, // catalog 59
}

// SeedOffers returns the default offers of a simulator named provider. Offer ids look like
// "h100-us-east-a"; "a" is the cheapest of its pair.
func SeedOffers(provider string) []gpu.Offer {
	var offers []gpu.Offer
	for _, s := range seed {
		for i, c := range s.cents {
			offers = append(offers, gpu.Offer{
				Provider:     provider,
				ID:           s.gpu + "-" + s.region + "-" + string(rune('a'+i)),
				GPU:          s.gpu,
				Region:       s.region,
				GPUCount:     1,
				CentsPerHour: c,
				Available:    true,
			})
		}
	}
	return offers
}
