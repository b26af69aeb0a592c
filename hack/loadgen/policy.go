package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/gatehouse-dev/gatehouse/services/api/auth/v1"
	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
)

// serviceConfig is the client policy Gatehouse documents for its callers;
// the load generator uses it unchanged so the e2e figures are what a
// client following the README gets.
//
//   - round_robin: with a headless Service, DNS returns every ready pod and
//     calls spread over all of them. The default pick_first pins a client
//     to one pod, so a rollout hits it all at once and new pods get no
//     traffic until the old connection breaks. The servers' max connection
//     age makes clients re-resolve, so pods added later are picked up too.
//   - retry on UNAVAILABLE only: that is what a call gets when its pod went
//     away under it (GOAWAY, connection reset, no ready backend) — the
//     transient failure a rollout causes. Other codes are answers, and
//     retrying them would only repeat the answer or hide a real fault.
//     DEADLINE_EXCEEDED is not retried either: the caller's deadline is
//     spent.
//   - only GetUser, Login and ValidateToken: they are safe to repeat.
//     GetUser and ValidateToken are reads. Login at worst issues one unused
//     refresh-token family more. RefreshToken is deliberately absent: it
//     rotates the token, so a retry of a call that did reach the server
//     presents a spent token, which reuse detection treats as theft and
//     answers by revoking the whole family, logging the user out.
//   - 4 attempts, backoff 0.1s doubling (capped at 1s): the three waits are
//     drawn from up to 0.1s, 0.2s and 0.4s, so retries are over within
//     0.7s, long enough for the balancer to move to another ready pod
//     during a rollout, short enough to fit a deadline of a few seconds,
//     and at most 4x the load if a backend really is down.
const serviceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [
      {"service": "user.v1.UserService", "method": "GetUser"},
      {"service": "auth.v1.AuthService", "method": "Login"},
      {"service": "auth.v1.AuthService", "method": "ValidateToken"}
    ],
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.1s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// keepaliveParams notices a peer that vanished without closing the
// connection (a node lost, a partition) within Time+Timeout instead of the
// kernel's minutes. Time must stay at or above the servers' keepalive
// enforcement MinTime (GRPC_KEEPALIVE_MIN_TIME, 10s by default): a client
// pinging more often is sent GOAWAY too_many_pings and loses its
// connection. Idle pings are allowed because the servers permit them and
// an idle connection is the one whose death nobody else would notice.
func keepaliveParams() keepalive.ClientParameters {
	return keepalive.ClientParameters{
		Time:                30 * time.Second,
		Timeout:             10 * time.Second,
		PermitWithoutStream: true,
	}
}

type clients struct {
	users    userv1.UserServiceClient
	auth     authv1.AuthServiceClient
	userConn *grpc.ClientConn
	authConn *grpc.ClientConn
}

func dial(cfg config) (*clients, error) {
	creds, err := cfg.tls.credentials()
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithKeepaliveParams(keepaliveParams()),
	}
	userConn, err := grpc.NewClient(cfg.userAddr, opts...)
	if err != nil {
		return nil, fmt.Errorf("-user-addr %q: %w", cfg.userAddr, err)
	}
	authConn, err := grpc.NewClient(cfg.authAddr, opts...)
	if err != nil {
		_ = userConn.Close()
		return nil, fmt.Errorf("-auth-addr %q: %w", cfg.authAddr, err)
	}
	return &clients{
		users: userv1.NewUserServiceClient(userConn), auth: authv1.NewAuthServiceClient(authConn),
		userConn: userConn, authConn: authConn,
	}, nil
}

func (c *clients) close() {
	_ = c.userConn.Close()
	_ = c.authConn.Close()
}

func withBearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// session is the load user as the warm-up left it.
type session struct {
	userID      string
	accessToken string
}

// warmUp proves both services answer the calls the run will make before
// the clock starts, so a run's failures are about the run and not about a
// cluster that was never ready. It retries every second because the load
// pod may start before the services.
func warmUp(ctx context.Context, cfg config, c *clients, stderr io.Writer) (session, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.warmup)
	defer cancel()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for attempt := 1; ; attempt++ {
		s, err := warmUpOnce(ctx, cfg, c)
		if err == nil {
			return s, nil
		}
		fmt.Fprintf(stderr, "loadgen: warm-up attempt %d: %v\n", attempt, err)
		select {
		case <-ctx.Done():
			return session{}, fmt.Errorf("warm-up did not succeed within %s (user %s, auth %s): %w", cfg.warmup, cfg.userAddr, cfg.authAddr, err)
		case <-retry.C:
		}
	}
}

func warmUpOnce(ctx context.Context, cfg config, c *clients) (session, error) {
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, cfg.timeout) }

	cctx, cancel := call()
	_, err := c.users.CreateUser(cctx, &userv1.CreateUserRequest{Email: cfg.email, Password: cfg.password, DisplayName: "loadgen"})
	cancel()
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return session{}, fmt.Errorf("calling CreateUser: %w", err)
	}

	cctx, cancel = call()
	login, err := c.auth.Login(cctx, &authv1.LoginRequest{Email: cfg.email, Password: cfg.password})
	cancel()
	if err != nil {
		return session{}, fmt.Errorf("calling Login: %w", err)
	}

	// Login does not return the user id; the token's subject is it.
	cctx, cancel = call()
	valid, err := c.auth.ValidateToken(cctx, &authv1.ValidateTokenRequest{AccessToken: login.GetAccessToken()})
	cancel()
	if err != nil {
		return session{}, fmt.Errorf("calling ValidateToken: %w", err)
	}
	s := session{userID: valid.GetSubject(), accessToken: login.GetAccessToken()}
	if s.userID == "" {
		return session{}, errors.New("ValidateToken returned no subject")
	}

	cctx, cancel = call()
	_, err = c.users.GetUser(withBearer(cctx, s.accessToken), &userv1.GetUserRequest{Id: s.userID})
	cancel()
	if err != nil {
		return session{}, fmt.Errorf("calling GetUser: %w", err)
	}
	return s, nil
}
