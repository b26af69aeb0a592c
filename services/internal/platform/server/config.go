package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/tlsfiles"
)

// Config holds the transport and lifecycle settings shared by all
// services. Address defaults differ per service, so GRPCAddr and HTTPAddr
// have no envDefault: services preset them before config.Load.
type Config struct {
	GRPCAddr string `env:"GRPC_ADDR"`
	HTTPAddr string `env:"HTTP_ADDR"`
	// HealthAddr, when set, serves grpc.health.v1 alone in plaintext, for
	// the kubelet's native gRPC probes, which cannot speak TLS. Status
	// is all it tells; every other method stays on GRPC_ADDR.
	HealthAddr string `env:"HEALTH_ADDR"`
	// MetricsAddr, when set, serves /metrics alone in plaintext (nothing
	// on it is secret), so Prometheus scrapes without this process's CA;
	// /metrics then leaves HTTP_ADDR.
	MetricsAddr string `env:"METRICS_ADDR"`
	// TLS, when configured, makes GRPC_ADDR and HTTP_ADDR serve TLS only.
	TLS        tlsfiles.Config
	Reflection bool `env:"GRPC_REFLECTION" envDefault:"true"`
	// Pprof serves net/http/pprof under /debug/pprof/ on the HTTP port.
	// Off by default: profiles reveal internals and cost CPU when taken.
	Pprof bool `env:"PPROF_ENABLED" envDefault:"false"`

	// DrainDelay is how long the server keeps serving after reporting
	// NOT_SERVING, so endpoints leave the Service before connections close.
	DrainDelay time.Duration `env:"DRAIN_DELAY" envDefault:"5s"`
	// ShutdownTimeout bounds GracefulStop; in-flight calls still running
	// then are cancelled.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s"`
	// ReadinessInterval is how often dependency checks run.
	ReadinessInterval time.Duration `env:"READINESS_INTERVAL" envDefault:"5s"`

	MaxRecvMsgBytes      int           `env:"GRPC_MAX_RECV_MSG_BYTES" envDefault:"1048576"`
	MaxConcurrentStreams uint32        `env:"GRPC_MAX_CONCURRENT_STREAMS" envDefault:"256"`
	MaxHeaderListBytes   uint32        `env:"GRPC_MAX_HEADER_LIST_BYTES" envDefault:"65536"`
	MaxConnectionAge     time.Duration `env:"GRPC_MAX_CONNECTION_AGE" envDefault:"5m"`
	MaxConnectionGrace   time.Duration `env:"GRPC_MAX_CONNECTION_AGE_GRACE" envDefault:"30s"`
	MaxConnectionIdle    time.Duration `env:"GRPC_MAX_CONNECTION_IDLE" envDefault:"15m"`
	// KeepaliveMinTime is the shortest client ping interval tolerated;
	// clients pinging more often are disconnected (GOAWAY too_many_pings).
	KeepaliveMinTime time.Duration `env:"GRPC_KEEPALIVE_MIN_TIME" envDefault:"10s"`

	// The HTTP port (metrics, JWKS) serves small, quick answers, so a
	// client holding a connection idle or sending a body a byte at a time
	// is cut off, and the connections open at once are capped: without
	// that, 239 idle connections under a 256-descriptor limit made the
	// gRPC port fail to accept. The write timeout is extended per request
	// for pprof's profile and trace, which run for their "seconds".
	HTTPReadTimeout  time.Duration `env:"HTTP_READ_TIMEOUT" envDefault:"10s"`
	HTTPWriteTimeout time.Duration `env:"HTTP_WRITE_TIMEOUT" envDefault:"30s"`
	HTTPIdleTimeout  time.Duration `env:"HTTP_IDLE_TIMEOUT" envDefault:"60s"`
	HTTPMaxConns     int           `env:"HTTP_MAX_CONNECTIONS" envDefault:"64"`

	// TrustedProxies are the CIDRs of proxies in front of the service
	// (ingress, gateway, mesh sidecar) whose x-forwarded-for metadata
	// names the real client, for the per-address limits. Empty: the TCP
	// peer is the client.
	TrustedProxies []string `env:"TRUSTED_PROXIES" envSeparator:","`
}

// Validate rejects settings that would make the server unsafe or unable
// to start.
func (c Config) Validate() error {
	var errs []error
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("GRPC_ADDR must not be empty"))
	}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("HTTP_ADDR must not be empty"))
	}
	positive := map[string]time.Duration{
		"SHUTDOWN_TIMEOUT":         c.ShutdownTimeout,
		"READINESS_INTERVAL":       c.ReadinessInterval,
		"GRPC_MAX_CONNECTION_AGE":  c.MaxConnectionAge,
		"GRPC_MAX_CONNECTION_IDLE": c.MaxConnectionIdle,
		"GRPC_KEEPALIVE_MIN_TIME":  c.KeepaliveMinTime,
		"HTTP_READ_TIMEOUT":        c.HTTPReadTimeout,
		"HTTP_WRITE_TIMEOUT":       c.HTTPWriteTimeout,
		"HTTP_IDLE_TIMEOUT":        c.HTTPIdleTimeout,
	}
	for name, d := range positive {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	if c.DrainDelay < 0 {
		errs = append(errs, fmt.Errorf("DRAIN_DELAY must not be negative, got %s", c.DrainDelay))
	}
	if c.MaxRecvMsgBytes < 1024 || c.MaxRecvMsgBytes > 64<<20 {
		errs = append(errs, fmt.Errorf("GRPC_MAX_RECV_MSG_BYTES must be between 1024 and 67108864, got %d", c.MaxRecvMsgBytes))
	}
	if c.HTTPMaxConns < 1 {
		errs = append(errs, fmt.Errorf("HTTP_MAX_CONNECTIONS must be positive, got %d", c.HTTPMaxConns))
	}
	if c.MaxConcurrentStreams == 0 {
		errs = append(errs, errors.New("GRPC_MAX_CONCURRENT_STREAMS must be positive"))
	}
	if c.MaxHeaderListBytes < 8192 {
		errs = append(errs, fmt.Errorf("GRPC_MAX_HEADER_LIST_BYTES must be at least 8192 (tokens travel in headers), got %d", c.MaxHeaderListBytes))
	}
	errs = append(errs, c.TLS.Validate())
	return errors.Join(errs...)
}
