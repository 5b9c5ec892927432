// Command providercheck is `make provider-check`: for ops with real provider keys, it launches
// the cheapest offer of each template at each configured provider, waits until the pod is
// usable as the worker decides it (gpu/ready: SSH key exchange, the IDE's status endpoint),
// logs in over SSH with a key it generates, opens the IDE, terminates, and prints the timings
// and the cost, with the digest the template's image tag names at its registry now (Docker
// Hub's manifest HEAD; a Lambda VM has no image). With no keys it runs the same steps against the GPU simulator (a real SSH server
// and a stand-in IDE on loopback), so the tool itself is exercised here.
//
//	RUNPOD_API_KEY=… PUBLIC_URL=https://… LAMBDA_API_KEY=… LAMBDA_SSH_KEY_NAME=… make provider-check
//
// PUBLIC_URL is the deployed site whose api serves the bootstrap RunPod pods download.
//
// It spends real money at real providers: each pod runs for the minutes the check takes, on the
// cheapest GPU offered (it prints what it cost). Every instance it launches is terminated,
// also when a step fails or it is interrupted.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"gpubroker/gpu"
	"gpubroker/gpu/lambda"
	"gpubroker/gpu/ready"
	"gpubroker/gpu/runpod"
	"gpubroker/gpu/sim"
	"gpubroker/images"
	"gpubroker/site"
)

func main() {
	timeout := flag.Duration("timeout", 20*time.Minute, "how long a pod may take to become usable")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	providers, note := configured()
	fmt.Println("provider-check:", note)
	catalog, err := site.Catalog()
	if err != nil {
		fmt.Fprintln(os.Stderr, "provider-check:", err)
		os.Exit(2)
	}
	failed := false
	for _, p := range providers {
		for _, tpl := range catalog.Templates {
			line, err := check(ctx, p, tpl.Image, tpl.IDE, *timeout)
			fmt.Printf("%s %s: %s\n", p.Name(), tpl.ID, line)
			if err != nil {
				failed = true
				fmt.Printf("%s %s: FAILED: %v\n", p.Name(), tpl.ID, err)
			}
		}
	}
	if failed {
		os.Exit(1)
	}
}

// configured returns the providers whose keys are set, or the simulator when none are.
func configured() ([]gpu.Provider, string) {
	var ps []gpu.Provider
	if k := os.Getenv("RUNPOD_API_KEY"); k != "" {
		// The pods download the bootstrap from the site's api, as in production.
		public := os.Getenv("PUBLIC_URL")
		if public == "" {
			fmt.Fprintln(os.Stderr, "provider-check: RUNPOD_API_KEY needs PUBLIC_URL, the deployed origin whose api serves "+images.URLPrefix+images.StartScriptName)
			os.Exit(2)
		}
		ps = append(ps, runpod.New(runpod.Config{APIKey: k, BaseURL: os.Getenv("RUNPOD_API_BASE"), BootstrapURL: images.StartScriptURL(public)}))
	}
	if k := os.Getenv("LAMBDA_API_KEY"); k != "" {
		ps = append(ps, lambda.New(lambda.Config{APIKey: k, SSHKeyName: os.Getenv("LAMBDA_SSH_KEY_NAME")}))
	}
	if len(ps) > 0 {
		return ps, "real providers (RUNPOD_API_KEY / LAMBDA_API_KEY set): this costs money"
	}
	srv := httptest.NewUnstartedServer(nil)
	s := sim.New(sim.Options{Name: "sim", BootDelay: 2 * time.Second, Images: sim.PublicImages, IDEBaseURL: "http://" + srv.Listener.Addr().String()})
	srv.Config.Handler = s.Handler()
	srv.Start()
	return []gpu.Provider{s}, "no RUNPOD_API_KEY or LAMBDA_API_KEY: running the same steps against the GPU simulator"
}

// check runs one pod through launch, usable, SSH login, IDE and termination, and returns the
// line of timings.
func check(ctx context.Context, p gpu.Provider, image, ide string, timeout time.Duration) (out string, err error) {
	var steps []string
	mark := func(start time.Time, what string) {
		steps = append(steps, fmt.Sprintf("%s %s", what, time.Since(start).Round(100*time.Millisecond)))
	}
	line := func() string { return strings.Join(steps, ", ") }

	offers, err := p.ListOffers(ctx, gpu.OfferQuery{})
	if err != nil {
		return line(), fmt.Errorf("listing offers: %w", err)
	}
	var offer *gpu.Offer
	for i, o := range offers {
		if o.Available && (offer == nil || o.CentsPerHour < offer.CentsPerHour) {
			offer = &offers[i]
		}
	}
	if offer == nil {
		return line(), errors.New("no offer available")
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return line(), err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return line(), err
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		return line(), err
	}
	secret := rand.Text()
	start := time.Now()
	inst, err := p.Launch(ctx, gpu.LaunchRequest{Offer: *offer, Name: "gpubroker-provider-check-" + strconv.FormatInt(start.Unix(), 10), Image: image, IDE: ide,
		SSHPublicKeys: []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " provider-check"}, IDESecret: secret})
	if err != nil {
		return line(), fmt.Errorf("launching %s at %d¢/h: %w", gpu.OfferKey(*offer), offer.CentsPerHour, err)
	}
	steps = append(steps, fmt.Sprintf("offer %s (%s, %d¢/h), image %s", gpu.OfferKey(*offer), offer.GPU, offer.CentsPerHour, image), digestLine(ctx, p, image))
	defer func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		err := p.Terminate(tctx, inst.ID) // a new err: the check's own stays as it is
		cost := float64(offer.CentsPerHour) * time.Since(start).Hours()
		steps = append(steps, fmt.Sprintf("terminated (%v), cost about %.1f¢", err == nil, cost))
		if err != nil {
			fmt.Printf("%s: TERMINATE FAILED for %s: %v: end it by hand\n", p.Name(), inst.ID, err)
		}
		out = line()
	}()

	deadline := time.Now().Add(timeout)
	checker := &ready.Checker{Timeout: 10 * time.Second}
	runningSeen := false
	for {
		if err := ctx.Err(); err != nil {
			return line(), err
		}
		if time.Now().After(deadline) {
			return line(), fmt.Errorf("not usable after %s", timeout)
		}
		cur, err := p.GetInstance(ctx, inst.ID)
		if err == nil && cur.State == gpu.StateRunning {
			if !runningSeen {
				runningSeen = true
				mark(start, "provider running")
			}
			url := cur.JupyterURL
			if ide == gpu.IDECodeServer {
				url = cur.CodeServerURL
			}
			t := ready.Target{IDE: ide, URL: url, Secret: secret}
			if cur.SSHHost != "" {
				t.SSHAddr = net.JoinHostPort(cur.SSHHost, strconv.Itoa(max(cur.SSHPort, 22)))
			}
			if cur.SSHHost != "" && checker.Check(ctx, t) == nil {
				mark(start, "usable")
				if err := login(ctx, t.SSHAddr, cur.SSHUser, signer); err != nil {
					return line(), fmt.Errorf("ssh login: %w", err)
				}
				mark(start, "ssh login")
				if err := openIDE(ctx, url, ide, secret); err != nil {
					return line(), fmt.Errorf("opening the IDE: %w", err)
				}
				mark(start, "IDE opened")
				return line(), nil
			}
		} else if err == nil && !cur.State.Live() {
			return line(), fmt.Errorf("instance %s: %s", cur.State, cur.Error)
		}
		time.Sleep(2 * time.Second)
	}
}

// login authenticates with the generated key (a login, not just the key exchange readiness
// checks).
func login(ctx context.Context, addr, user string, signer ssh.Signer) error {
	if user == "" {
		user = "root"
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		return err
	}
	return ssh.NewClient(c, chans, reqs).Close()
}

// openIDE loads the IDE's page as its owner would: Jupyter with its token, code-server's login.
func openIDE(ctx context.Context, url, ide, secret string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, gpu.IDELink(url, ide, secret), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	// code-server answers its login page (401 until the password is posted); anything but a
	// gateway error means the IDE itself answered.
	if resp.StatusCode >= 500 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}
