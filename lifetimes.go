package gpubroker

import "time"

// Token purposes: what an emailed one-time link does. The email that carries one has the
// same kind (MailActivation, MailLogin).
const (
	TokenActivation = "activation"
	TokenLogin      = "login"
)

// Lifetimes of links, sessions and checkouts: the one home of each, read both by the code that
// enforces it and by the text that tells the customer.
const (
	// ActivationTokenTTL is how long an activation link works.
	ActivationTokenTTL = 24 * time.Hour
	// LoginTokenTTL is how long a sign-in link works.
	LoginTokenTTL = 30 * time.Minute
	// SessionTTL is how long a browser stays signed in.
	SessionTTL = 30 * 24 * time.Hour
	// CheckoutLifetime is how long a Checkout Session can be paid. Stripe refuses less than 30
	// minutes measured on its own clock, so asking for exactly 30 fails now and then.
	CheckoutLifetime = 31 * time.Minute
)

// PlanFeePeriod is what a plan fee buys: the plan for 30 days from its capture, during which
// the same account is not charged the fee again.
const PlanFeePeriod = 30 * 24 * time.Hour

// Card holds: how long Stripe keeps an authorization, and when an undeployed one is released.
const (
	// CardHoldLifetime is how long a card authorization lasts when Stripe gives no deadline
	// (online card payments: 7 days; the charge's capture_before says so per payment).
	CardHoldLifetime = 7 * 24 * time.Hour
	// HoldReleaseMargin is how long before the hold's deadline an undeployed hold is released,
	// so the customer is told before the card network drops it and nothing is left to chance.
	HoldReleaseMargin = 24 * time.Hour
)

// HoldDeadline is when a hold authorized at authorizedAt lapses: Stripe's capture_before, or
// CardHoldLifetime after the authorization when Stripe gave none (zero).
func HoldDeadline(authorizedAt, captureBefore time.Time) time.Time {
	if captureBefore.IsZero() {
		return authorizedAt.Add(CardHoldLifetime)
	}
	return captureBefore
}

// HoldReleaseAt is when an undeployed hold with this deadline is released: the last moment
// to deploy.
func HoldReleaseAt(deadline time.Time) time.Time { return deadline.Add(-HoldReleaseMargin) }

// TokenTTL is how long a one-time link of the purpose works.
func TokenTTL(purpose string) time.Duration {
	if purpose == TokenLogin {
		return LoginTokenTTL
	}
	return ActivationTokenTTL
}
