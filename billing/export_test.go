package billing

import "time"

// SetClock makes c read the time from now, so tests can place calls on either side of a
// second turning.
func SetClock(c *Client, now func() time.Time) { c.now = now }
