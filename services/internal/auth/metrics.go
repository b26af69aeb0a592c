package auth

import "github.com/prometheus/client_golang/prometheus"

// metrics are the domain counters the README's Architecture section
// lists; the chart's alerts and dashboards query them by these names.
type metrics struct {
	logins    *prometheus.CounterVec
	refreshes *prometheus.CounterVec
	reuse     prometheus.Counter
	issued    *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_logins_total",
			Help: "Login attempts by result: success, bad_credentials, rate_limited, invalid, canceled (the caller left or its deadline passed), overloaded (no password-hashing capacity left; retry), unavailable, error.",
		}, []string{"result"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_refreshes_total",
			Help: "RefreshToken calls by result: success, reused, concurrent, revoked, expired, unknown, invalid, session_ended (credentials changed or logged out everywhere since login), user_gone (user deleted), client_removed (its client left CLIENT_IDS), unavailable (User service unreachable; the refresh token is kept), canceled (the caller left), error.",
		}, []string{"result"}),
		reuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_refresh_token_reuse_total",
			Help: "Rotated refresh tokens presented again; each revoked its whole family (RFC 9700).",
		}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_tokens_issued_total",
			Help: "Tokens issued by type: access, refresh.",
		}, []string{"type"}),
	}
	// Pre-create the label values so dashboards and alerts see zeros.
	for _, r := range []string{"success", "bad_credentials", "rate_limited", "invalid", "canceled", "overloaded", "unavailable", "error"} {
		m.logins.WithLabelValues(r)
	}
	for _, r := range []string{"success", "reused", "concurrent", "revoked", "expired", "unknown", "invalid", "session_ended", "user_gone", "client_removed", "unavailable", "canceled", "error"} {
		m.refreshes.WithLabelValues(r)
	}
	for _, t := range []string{"access", "refresh"} {
		m.issued.WithLabelValues(t)
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.logins, m.refreshes, m.reuse, m.issued}
}
