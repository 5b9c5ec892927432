package gpu

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
)

// Broker puts several providers behind one door: it merges their offers by price, launches
// the cheapest one that has capacity, and routes later calls to the provider an instance
// lives at. It is safe for concurrent use; its providers must be too.
type Broker struct {
	// Logger receives the provider failures the broker works around rather than returns.
	// Nil means slog.Default(). Set it before the broker is used.
	Logger *slog.Logger

	providers []Provider // fixed at construction, so reads need no lock
	byName    map[string]Provider
}

// NewBroker returns a broker over providers, which are asked in the order given when prices
// tie. Provider names must be unique: the name stored on a pod is how later jobs find the
// provider again, so a duplicate is a wiring bug and NewBroker panics.
func NewBroker(providers ...Provider) *Broker {
	b := &Broker{byName: make(map[string]Provider, len(providers))}
	for _, p := range providers {
		if _, dup := b.byName[p.Name()]; dup {
			panic(fmt.Sprintf("gpu: two providers named %q", p.Name()))
		}
		b.byName[p.Name()] = p
		b.providers = append(b.providers, p)
	}
	return b
}

// Provider returns the provider with the given name, for GetInstance and Terminate on the
// provider stored with a pod. A missing provider is reported as false rather than
// ErrNotFound so it is never mistaken for a missing instance (and a billed instance for a
// terminated one).
func (b *Broker) Provider(name string) (Provider, bool) {
	p, ok := b.byName[name]
	return p, ok
}

// Providers returns the providers, in the order given to NewBroker.
func (b *Broker) Providers() []Provider { return slices.Clone(b.providers) }

func (b *Broker) logger() *slog.Logger {
	if b.Logger != nil {
		return b.Logger
	}
	return slog.Default()
}

// Offers returns every provider's offers matching q, available ones first, then cheapest
// first. A provider that fails is logged and left out; the call fails only when every
// provider does, because a partial price list is still worth showing and launching from.
func (b *Broker) Offers(ctx context.Context, q OfferQuery) ([]Offer, error) {
	if len(b.providers) == 0 {
		return nil, errors.New("gpu: broker has no providers")
	}
	type result struct {
		offers []Offer
		err    error
	}
	results := make([]result, len(b.providers))
	var wg sync.WaitGroup
	for i, p := range b.providers {
		wg.Go(func() {
			offers, err := p.ListOffers(ctx, q)
			results[i] = result{offers, err}
		})
	}
	wg.Wait()

	var all []Offer
	var errs []error
	for i, r := range results {
		name := b.providers[i].Name()
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, r.err))
			b.logger().WarnContext(ctx, "gpu provider failed to list offers", "provider", name, "error", r.err)
			continue
		}
		for _, o := range r.offers {
			// Launches are routed by o.Provider, so it must name the provider that listed it.
			o.Provider = name
			if q.Match(o) {
				all = append(all, o)
			}
		}
	}
	if len(errs) == len(b.providers) {
		return nil, fmt.Errorf("gpu: every provider failed to list offers: %w", errors.Join(errs...))
	}
	sortOffers(all)
	return all, nil
}

// sortOffers orders available offers first, then by price; provider and id break ties so the
// order is the same on every call.
func sortOffers(offers []Offer) {
	slices.SortStableFunc(offers, func(a, b Offer) int {
		if a.Available != b.Available {
			if a.Available {
				return -1
			}
			return 1
		}
		return cmp.Or(
			cmp.Compare(a.CentsPerHour, b.CentsPerHour),
			cmp.Compare(a.Provider, b.Provider),
			cmp.Compare(a.ID, b.ID),
		)
	})
}

// Launch launches req on the cheapest available offer matching q, skipping offers whose
// OfferKey is in exclude (those that failed on an earlier run of the same job).
//
// It returns the instance, the offer it runs on and every failed attempt. Offers are tried in
// price order:
//   - no capacity, offer gone or a deterministic refusal (ErrRefused, logged at error level):
//     record the attempt and try the next offer;
//   - bad credentials or no funds: record it and skip the rest of that provider's offers;
//   - a provider configuration fault (ErrProviderConfig): record it, log an error for ops and
//     skip the rest of that provider's offers; nothing launched, so the next provider is tried;
//   - anything else (rate limit, 5xx, timeout, an unknown error): stop and return it at once.
//     Whether the launch happened is then unknown, so trying another offer could leave two
//     instances running; the job retries later and looks for the instance by name first.
//
// When every offer has been tried, the error is a *LaunchError, which matches ErrNoCapacity.
// Callers add the OfferKey of each attempt with Failover(a.Err) to exclude for the next run.
//
// beforeSend, when not nil, is called before each request leaves for a provider; an error stops
// the launch there (a caller records where the pod was sent, so a lost answer is looked for only
// there).
func (b *Broker) Launch(ctx context.Context, q OfferQuery, req LaunchRequest, exclude map[string]bool, beforeSend func(provider string) error) (*Instance, *Offer, []Attempt, error) {
	if err := req.Validate(); err != nil {
		return nil, nil, nil, err
	}
	offers, err := b.Offers(ctx, q)
	if err != nil {
		return nil, nil, nil, err
	}
	var attempts []Attempt
	skipped := map[string]bool{}
	for _, o := range offers {
		if !o.Available || exclude[OfferKey(o)] || skipped[o.Provider] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, attempts, err
		}
		r := req
		r.Offer = o
		if beforeSend != nil {
			if err := beforeSend(o.Provider); err != nil {
				return nil, nil, attempts, err
			}
		}
		inst, err := b.byName[o.Provider].Launch(ctx, r)
		if err == nil && inst == nil {
			err = fmt.Errorf("gpu: %s returned no instance and no error", o.Provider)
		}
		if err == nil {
			return inst, &o, attempts, nil
		}
		attempts = append(attempts, Attempt{Offer: o, Err: err})
		switch {
		case errors.Is(err, ErrProviderConfig):
			skipped[o.Provider] = true
			b.logger().ErrorContext(ctx, "gpu provider is misconfigured; skipping it for this launch", "provider", o.Provider, "offer", OfferKey(o), "error", err)
		case errors.Is(err, ErrRefused):
			b.logger().ErrorContext(ctx, "gpu provider refused the launch request; trying the next offer", "offer", OfferKey(o), "error", err)
		case Failover(err):
			b.logger().InfoContext(ctx, "gpu offer failed, trying the next one", "offer", OfferKey(o), "error", err)
		case SkipProvider(err):
			skipped[o.Provider] = true
			b.logger().ErrorContext(ctx, "gpu provider account needs attention; skipping it", "provider", o.Provider, "error", err)
		default:
			return nil, nil, attempts, fmt.Errorf("gpu: launch %s: %w", OfferKey(o), err)
		}
	}
	return nil, nil, attempts, &LaunchError{Attempts: attempts}
}

// FindInstance asks every provider for a live instance launched under name. It returns
// ErrNotFound only when every provider answered that it has none: if one failed to answer, its
// error is returned instead, because "not found" would send a provision job to launch again.
func (b *Broker) FindInstance(ctx context.Context, name string) (*Instance, error) {
	return b.FindInstanceAt(ctx, name, nil)
}

// FindInstanceAt is FindInstance asking only the providers named (nil or "*" among them: every
// one): those a launch was ever sent to, so a provider that was never asked, and is down, does
// not stop a launch elsewhere. Names of providers not configured are ignored.
func (b *Broker) FindInstanceAt(ctx context.Context, name string, providers []string) (*Instance, error) {
	type result struct {
		inst *Instance
		err  error
	}
	asked := b.providers
	if providers != nil && !slices.Contains(providers, "*") {
		asked = nil
		for _, p := range b.providers {
			if slices.Contains(providers, p.Name()) {
				asked = append(asked, p)
			}
		}
	}
	results := make([]result, len(asked))
	var wg sync.WaitGroup
	for i, p := range asked {
		wg.Go(func() {
			inst, err := FindInstance(ctx, p, name)
			results[i] = result{inst, err}
		})
	}
	wg.Wait()

	var found *Instance
	var errs []error
	for i, r := range results {
		pname := asked[i].Name()
		switch {
		case r.err == nil && r.inst != nil:
			if found != nil {
				// Two live instances for one pod: one of them is billing for nothing.
				b.logger().ErrorContext(ctx, "gpu instance name found at two providers",
					"name", r.inst.Name, "first", found.Provider+"/"+found.ID, "second", pname+"/"+r.inst.ID)
				continue
			}
			found = r.inst
		case r.err == nil, errors.Is(r.err, ErrNotFound):
		default:
			errs = append(errs, fmt.Errorf("%s: %w", pname, r.err))
		}
	}
	if found != nil {
		return found, nil
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("gpu: find instance %q: %w", name, errors.Join(errs...))
	}
	return nil, fmt.Errorf("gpu: instance %q: %w", name, ErrNotFound)
}
