package gpubroker

import "time"

// The rental rule: a pod is bought by the whole hour and used by the minute. A running pod that
// ends before its time, stopped by its owner or dead at its provider, is refunded every minute
// it did not use, at its hourly rate, rounded down to the cent; the plan fee is kept. One rule
// for both: the same pod stopped with Stop or found dead at the same moment gets the same back.
//
//	minutes used   = ⌈seconds run / 60⌉, at least 1 (a begun minute is used)
//	minutes bought = hours bought × 60
//	refund         = ⌊(minutes bought − minutes used) × hourly cents / 60⌋, 0 when none is unused
//
// Seconds run are counted from the pod's start to the Stop click or, for a pod that died, to the
// first health check that found it dead. A pod that ran at all has used at least a minute, even
// one stopped (or found dead) at once. Example: 3 hours of an A100 in us-east at $1.79/h on Pro
// ($49 fee + 3 × $1.79 = $54.37), stopped 10 minutes in: 10 minutes used, 170 unused,
// 170 × 179 / 60 = 507.16… → $5.07 back, $49.30 kept.

// MinutesUsed is how many minutes of a pod that started at started and stopped (or was found
// dead) at stopped have begun: ⌈seconds / 60⌉, at least 1.
func MinutesUsed(started, stopped time.Time) int { return RentalClock{}.MinutesUsed(started, stopped) }

// MinutesBought is what hours bought come to in minutes.
func MinutesBought(hours int) int { return hours * 60 }

// RentalClock is how long the rental rule's hour lasts, and so its minute (a sixtieth). In
// production an hour is an hour (the zero value). A test run compresses it (RENTAL_HOUR, test
// keys only) so that whole rentals, reminders and hold releases happen within minutes: the
// chaos run checks that pods end when their paid time does.
type RentalClock struct {
	// Hour is how long a rented hour lasts; zero: time.Hour.
	Hour time.Duration
	// ReleaseMargin is how long before a hold's deadline an undeployed hold is released;
	// zero: HoldReleaseMargin.
	ReleaseMargin time.Duration
}

// HourLength is how long one rented hour lasts.
func (c RentalClock) HourLength() time.Duration {
	if c.Hour <= 0 {
		return time.Hour
	}
	return c.Hour
}

// Hours is how long n rented hours last.
func (c RentalClock) Hours(n int) time.Duration { return time.Duration(n) * c.HourLength() }

// MinutesUsed is MinutesUsed with this clock's minute (a sixtieth of its hour).
func (c RentalClock) MinutesUsed(started, stopped time.Time) int {
	// ⌈d × 60 / hour⌉ in whole nanoseconds: hour/60 is inexact for a compressed hour (20 s).
	d, hour := min(stopped.Sub(started), 24*365*time.Hour), c.HourLength() // capped: × 60 fits
	if d <= 0 {
		return 1
	}
	return max(1, int((d*60+hour-1)/hour))
}

// ReleaseMarginLength is how long before its deadline an undeployed hold is released.
func (c RentalClock) ReleaseMarginLength() time.Duration {
	if c.ReleaseMargin <= 0 {
		return HoldReleaseMargin
	}
	return c.ReleaseMargin
}

// HoldReleaseAt is when an undeployed hold whose deadline is deadline is released: the
// margin before it.
func (c RentalClock) HoldReleaseAt(deadline time.Time) time.Time {
	return deadline.Add(-c.ReleaseMarginLength())
}

// UnusedMinutesCents is the refund of (bought − used) minutes at hourlyCents an hour, rounded
// down to the cent: ⌊(bought − used) × hourlyCents / 60⌋, zero when none is unused.
func UnusedMinutesCents(boughtMinutes, usedMinutes int, hourlyCents int64) int64 {
	if usedMinutes >= boughtMinutes || hourlyCents <= 0 {
		return 0
	}
	return int64(boughtMinutes-usedMinutes) * hourlyCents / 60
}

// PlanFeeCents is the plan fee an order paid: its amount less its hours at the hourly rate (0
// for none, as for a Pro order within a month of the fee's capture).
func PlanFeeCents(amountCents int64, hours int, hourlyCents int64) int64 {
	return max(0, amountCents-int64(hours)*hourlyCents)
}
