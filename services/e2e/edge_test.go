//go:build e2e

package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
)

// memoryLimit is the memory limit, in bytes, of a service's container as
// deployed (the chart's values), e.g. "256Mi".
func memoryLimit(t *testing.T, svc string) float64 {
	t.Helper()
	q := strings.TrimSpace(kubectlRun(t, "-n", namespace, "get", "deployment", fullname()+"-"+svc, "-o",
		`jsonpath={.spec.template.spec.containers[?(@.name=="`+svc+`")].resources.limits.memory}`))
	units := []struct {
		suffix string
		bytes  float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(q, u.suffix); ok {
			if v, err := strconv.ParseFloat(n, 64); err == nil && v > 0 {
				return v * u.bytes
			}
		}
	}
	t.Fatalf("deployment %s-%s: memory limit %q, want a positive quantity", fullname(), svc, q)
	return 0
}

// clientCreds are the transport credentials of a client of the release:
// TLS trusting its CA (no client certificate), or plaintext.
func clientCreds(t *testing.T) credentials.TransportCredentials {
	t.Helper()
	if caFile == "" {
		return insecure.NewCredentials()
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	return credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, ServerName: "localhost"})
}

func dialEdge(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(clientCreds(t)),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func b64JSON(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// jwtParts is a JWT's signed part: header.claims.
func jwtParts(header, claims map[string]any) string { return b64JSON(header) + "." + b64JSON(claims) }

// forgedTokens is every kind of bad token a client can present; each must
// be answered Unauthenticated and nothing else.
func forgedTokens(t *testing.T, valid string) map[string]string {
	t.Helper()
	now := time.Now().Unix()
	claims := map[string]any{"iss": issuerURL(t), "aud": "gatehouse", "sub": "0190aaaa-0000-7000-8000-000000000000", "iat": now, "exp": now + 600, "roles": []string{"admin"}}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signed := func(alg, kid string, sign func([]byte) []byte) string {
		s := jwtParts(map[string]any{"alg": alg, "typ": "at+jwt", "kid": kid}, claims)
		return s + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(s)))
	}
	mac := hmac.New(sha256.New, []byte("guessed secret guessed secret!!!"))
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + b64JSON(claims) + "." + parts[2] // a real signature over other claims
	return map[string]string{
		"garbage":                 "not a token at all",
		"three dots":              "a.b.c",
		"empty parts":             "..",
		"alg none":                jwtParts(map[string]any{"alg": "none", "typ": "at+jwt"}, claims) + ".",
		"HS256 guessed secret":    signed("HS256", "k1", func(b []byte) []byte { mac.Write(b); return mac.Sum(nil) }),
		"EdDSA unknown key":       signed("EdDSA", "not-a-kid", func(b []byte) []byte { return ed25519.Sign(priv, b) }),
		"EdDSA forged, known kid": signed("EdDSA", kidOf(t, valid), func(b []byte) []byte { return ed25519.Sign(priv, b) }),
		"claims swapped to admin": tampered,
		"signature cut":           parts[0] + "." + parts[1] + ".",
		"oversized (16 KiB)":      valid + strings.Repeat("A", 16<<10),
	}
}

// TestBadInputAtTheEdge throws malformed traffic at both services through
// their port-forwards: garbage bytes on the port, an oversized message,
// thousands of concurrent streams, huge metadata and forged tokens of
// every kind. Promise: each gets a clear refusal, both services keep
// serving and stay healthy, no container restarts, and resident memory
// stays under the chart's limit.
func TestBadInputAtTheEdge(t *testing.T) {
	email, pw := unique("edge"), "edge of the cluster"
	id := signup(t, email, pw)
	valid, _ := login(t, email, pw)
	start := time.Now()

	t.Run("garbage bytes on the port", func(t *testing.T) {
		// kubectl port-forward gives up on a pod connection that the server
		// resets, so every attempt gets a forward of its own; what is tested
		// is the service behind it.
		for _, svc := range []string{"user", "auth"} {
			port := map[string]int{"user": 50051, "auth": 50052}[svc]
			for i := range 10 {
				addr := forwardFor(t, namespace, "svc/"+fullname()+"-"+svc, port)
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				junk := make([]byte, 4<<10*(i%8+1))
				_, _ = rand.Read(junk)
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = c.Write(junk)
				// The server answers a bad preface by closing: reading must
				// end (EOF or reset), not hang until the deadline.
				_, err = io.Copy(io.Discard, c)
				_ = c.Close()
				if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("%s: connection still open 5s after %d garbage bytes", svc, len(junk))
				}
			}
		}
	})
	reconnect(t)

	users := userv1.NewUserServiceClient(dialEdge(t, userAddr))
	authed := func(token string) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}

	t.Run("oversized message", func(t *testing.T) {
		_, err := users.CreateUser(authed(""), &userv1.CreateUserRequest{Email: unique("big"), Password: "x", DisplayName: strings.Repeat("x", 4<<20)})
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("4 MiB CreateUser: %v, want ResourceExhausted", err)
		}
	})

	t.Run("huge metadata", func(t *testing.T) {
		ctx := metadata.AppendToOutgoingContext(authed(valid), "x-junk", strings.Repeat("j", 1<<20))
		_, err := users.GetUser(ctx, &userv1.GetUserRequest{Id: id})
		if code := status.Code(err); code == codes.OK {
			t.Fatal("GetUser with 1 MiB of metadata succeeded")
		}
	})

	t.Run("forged tokens", func(t *testing.T) {
		for name, tok := range forgedTokens(t, valid) {
			_, err := users.GetUser(authed(tok), &userv1.GetUserRequest{Id: id})
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("%s: %v, want Unauthenticated", name, err)
			}
		}
	})

	t.Run("thousands of concurrent streams", func(t *testing.T) {
		// 8 connections x 250 Watch streams = 2000, over the servers'
		// GRPC_MAX_CONCURRENT_STREAMS (256 per connection) in places:
		// streams beyond it wait their turn, nothing breaks.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		var mu sync.Mutex
		opened := 0
		for i := range 8 {
			addr := []string{userAddr, authAddr}[i%2]
			conn := dialEdge(t, addr)
			h := healthpb.NewHealthClient(conn)
			for range 250 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, err := h.Watch(ctx, &healthpb.HealthCheckRequest{})
					if err != nil {
						return
					}
					if _, err := s.Recv(); err == nil {
						mu.Lock()
						opened++
						mu.Unlock()
					}
				}()
			}
		}
		wg.Wait()
		t.Logf("%d of 2000 Watch streams answered within 15s", opened)
		if opened < 1000 {
			t.Errorf("only %d streams answered", opened)
		}
	})

	// Still serving: a real call on a new connection, and health SERVING.
	for _, addr := range []string{userAddr, authAddr} {
		conn := dialEdge(t, addr)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%s after the battery: %v %v", addr, resp, err)
		}
	}
	got, code := call(t, userAddr, "user.v1.UserService/GetUser", valid, map[string]string{"id": id})
	must(t, got, code, "OK")
	noRestarts(t, "user", "auth")

	// Memory, two ways. The container's cgroup high-water mark is what the
	// limit is enforced against and no scrape interval can miss; it leaves
	// out the binary's pages when another cgroup read them first (they are
	// charged there). Resident memory from Prometheus counts those too but
	// is sampled every scrape interval. Both must stay under the limit.
	prom := forwardFor(t, monitoring, prometheusService, 9090)
	window := fmt.Sprintf("%ds", int(time.Since(start).Seconds())+30)
	for _, svc := range []string{"user", "auth"} {
		limit := memoryLimit(t, svc)
		mib := func(b float64) float64 { return b / (1 << 20) }
		charged := peakMemory(t, svc)
		q := fmt.Sprintf(`max by (pod) (max_over_time(process_resident_memory_bytes{namespace=%q, job="gatehouse-%s"}[%s]))`, namespace, svc, window)
		var rss map[string]float64
		// Prometheus may not have scraped a pod yet when the battery ran
		// right after a deploy: wait for a sample of every pod.
		eventually(t, 2*time.Minute, "process_resident_memory_bytes of every "+svc+" pod in Prometheus", func() error {
			v, err := query(prom, q)
			if err != nil {
				return err
			}
			rss = map[string]float64{}
			for _, s := range v {
				rss[s.Metric["pod"]] = s.float()
			}
			for pod := range charged {
				if rss[pod] <= 0 {
					return fmt.Errorf("no resident memory sample of pod %s (have %v)", pod, rss)
				}
			}
			return nil
		})
		for pod, peak := range charged {
			t.Logf("%s: peak charged memory %.1f MiB, peak RSS %.1f MiB (limit %.0f MiB)", pod, mib(peak), mib(rss[pod]), mib(limit))
			if peak <= 0 || peak >= limit || rss[pod] >= limit {
				t.Errorf("%s: peak charged memory %.1f MiB, peak RSS %.1f MiB, want both above 0 and under the %.0f MiB limit", pod, mib(peak), mib(rss[pod]), mib(limit))
			}
		}
	}
}

// peakMemory returns, for every pod of a component, the most memory its
// container has held since it started: cAdvisor's
// container_memory_max_usage_bytes, the high-water mark the kernel keeps
// for the container's cgroup (what the memory limit is enforced against),
// read from each pod's kubelet through the API server's node proxy. A
// sampled metric such as process_resident_memory_bytes scraped every 10 s
// can miss a spike of a second; this cannot. The pods' containers started
// before the battery, so their high-water marks cover it.
func peakMemory(t *testing.T, component string) map[string]float64 {
	t.Helper()
	peaks := map[string]float64{}
	byNode := map[string][]string{}
	for _, p := range podsOf(t, component) {
		byNode[p.Node] = append(byNode[p.Node], p.Name)
	}
	for node, podNames := range byNode {
		raw := kubectlRun(t, "get", "--raw", "/api/v1/nodes/"+node+"/proxy/metrics/cadvisor")
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(raw))
		if err != nil {
			t.Fatalf("node %s: cAdvisor metrics: %v", node, err)
		}
		mf := families["container_memory_max_usage_bytes"]
		if mf == nil {
			t.Fatalf("node %s: the kubelet reports no container_memory_max_usage_bytes (cgroup v2 before Linux 5.19 has no memory.peak)", node)
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == namespace && labels["container"] == component && slices.Contains(podNames, labels["pod"]) {
				peaks[labels["pod"]] = max(peaks[labels["pod"]], m.GetGauge().GetValue())
			}
		}
		for _, name := range podNames {
			if _, ok := peaks[name]; !ok {
				t.Fatalf("node %s: no container_memory_max_usage_bytes for container %s of pod %s", node, component, name)
			}
		}
	}
	if len(peaks) == 0 {
		t.Fatalf("no pods of %s", component)
	}
	return peaks
}
