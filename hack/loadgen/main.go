package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const (
	scenarioSteady = "steady"
	scenarioStorm  = "refresh-storm"
	scenarioProbe  = "probe"
	scenarioRotate = "refresh-rate"
)

const usage = `Usage:
  loadgen [-scenario steady] [-rate 50] [-duration 60s] [-login-every 10]
  loadgen -scenario refresh-storm [-clients 20] [-steps 20]
  loadgen -scenario refresh-rate [-clients 20] [-duration 60s]
  loadgen -scenario probe -email E -password P   (one Login, no warm-up)
  loadgen ... -cacert ca.crt [-cert tls.crt -key tls.key] [-servername NAME]   (TLS)
Flags:
`

// errUsage marks errors in the command line, so main can tell "you called
// me wrongly" (exit 2) from "the services could not be reached" (exit 1).
var errUsage = errors.New("usage")

// config is the parsed command line plus the few settings tests shorten.
type config struct {
	userAddr, authAddr string
	scenario           string

	rate        float64
	duration    time.Duration
	loginEvery  int
	email       string
	password    string
	timeout     time.Duration
	maxInFlight int

	clients, steps int

	// tls is the transport: plaintext while its caFile is empty.
	tls tlsFlags

	// warmup bounds how long the services get to become reachable: in a
	// fresh cluster the load pod may start before them.
	warmup time.Duration
	// progressEvery paces the stderr progress lines.
	progressEvery time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	// After the first signal the run drains and reports; restoring the
	// default behaviour lets a second one end the process at once.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// run returns an error only when the load could not be run at all; calls
// that fail during the run are data and end up in the report.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	return execute(ctx, cfg, stdout, stderr)
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := config{warmup: 60 * time.Second, progressEvery: 10 * time.Second}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.userAddr, "user-addr", "dns:///localhost:50051", "gRPC target of the User service")
	fs.StringVar(&cfg.authAddr, "auth-addr", "dns:///localhost:50052", "gRPC target of the Auth service")
	fs.StringVar(&cfg.scenario, "scenario", scenarioSteady, "steady, refresh-storm, refresh-rate or probe")
	fs.Float64Var(&cfg.rate, "rate", 50, "steady: calls per second, all methods together")
	fs.DurationVar(&cfg.duration, "duration", 60*time.Second, "steady, refresh-rate: how long to send")
	fs.IntVar(&cfg.loginEvery, "login-every", 10, "steady: every Nth call is a Login, the others GetUser")
	fs.StringVar(&cfg.email, "email", "", "load user's email, created if missing (default a fresh loadgen-<random>@example.com)")
	fs.StringVar(&cfg.password, "password", "steady tide orchard", "load user's password")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Second, "deadline of each call")
	fs.IntVar(&cfg.maxInFlight, "max-in-flight", 200, "steady: calls in flight beyond this fail as client-overload")
	fs.IntVar(&cfg.clients, "clients", 20, "refresh-storm: concurrent callers per step; refresh-rate: callers, each refreshing its own session")
	fs.IntVar(&cfg.steps, "steps", 20, "refresh-storm: token families raced")
	fs.StringVar(&cfg.tls.caFile, "cacert", "", "speak TLS (1.2+) to both services, trusting only the CAs in the PEM bundle `FILE` (default plaintext)")
	fs.StringVar(&cfg.tls.certFile, "cert", "", "with -cacert: present the client certificate in PEM `FILE`, with -key (TLS_CLIENT_AUTH=require needs one)")
	fs.StringVar(&cfg.tls.keyFile, "key", "", "with -cacert: the private key of -cert, PEM `FILE`")
	fs.StringVar(&cfg.tls.serverName, "servername", "", "with -cacert: verify both servers' certificates for `NAME` (default the host of each address)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if cfg.email == "" {
		cfg.email = uniqueEmail()
	}
	if err := cfg.validate(); err != nil {
		return config{}, fmt.Errorf("%w: %w", errUsage, err)
	}
	return cfg, nil
}

func (c config) validate() error {
	var errs []error
	if c.scenario != scenarioSteady && c.scenario != scenarioStorm && c.scenario != scenarioProbe && c.scenario != scenarioRotate {
		errs = append(errs, fmt.Errorf("-scenario must be %s, %s, %s or %s, got %q", scenarioSteady, scenarioStorm, scenarioProbe, scenarioRotate, c.scenario))
	}
	positive := []struct {
		name string
		ok   bool
	}{
		{"-rate", c.rate > 0},
		{"-duration", c.duration > 0},
		{"-login-every", c.loginEvery > 0},
		{"-timeout", c.timeout > 0},
		{"-max-in-flight", c.maxInFlight > 0},
		{"-clients", c.clients > 0},
		{"-steps", c.steps > 0},
	}
	for _, p := range positive {
		if !p.ok {
			errs = append(errs, fmt.Errorf("%s must be positive", p.name))
		}
	}
	if c.rate > 0 && c.duration > 0 && c.schedule().planned() < 1 {
		errs = append(errs, fmt.Errorf("-rate %g for -duration %s plans no call", c.rate, c.duration))
	}
	if c.userAddr == "" || c.authAddr == "" {
		errs = append(errs, errors.New("-user-addr and -auth-addr must not be empty"))
	}
	errs = append(errs, c.tls.validate())
	return errors.Join(errs...)
}

// uniqueEmail keeps concurrent or repeated runs from sharing a user, so
// one run's logins never count against another's rate limit or tokens.
func uniqueEmail() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return "loadgen-" + hex.EncodeToString(b) + "@example.com"
}

func execute(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	c, err := dial(cfg)
	if err != nil {
		return err
	}
	defer c.close()
	if cfg.scenario == scenarioProbe {
		return json.NewEncoder(stdout).Encode(runProbe(ctx, cfg, c))
	}
	sess, err := warmUp(ctx, cfg, c, stderr)
	if err != nil {
		return err
	}
	var report any
	switch cfg.scenario {
	case scenarioStorm:
		report = runStorm(ctx, cfg, c, stderr)
	case scenarioRotate:
		report = runRotate(ctx, cfg, c, stderr)
	default:
		report = runSteady(ctx, cfg, c, sess, stderr)
	}
	return json.NewEncoder(stdout).Encode(report)
}
