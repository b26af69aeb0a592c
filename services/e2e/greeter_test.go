//go:build e2e

package e2e

import (
	"os/exec"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
)

// TestExampleServiceTrustsGatehouseTokens deploys examples/greeter as a
// stranger's service would run next to the release: given only the issuer
// URL (and the release's CA to fetch it over https), it finds the keys
// through discovery, across the NetworkPolicy the chart lets it through
// (networkPolicy.auth.jwksAllowFrom), and accepts a token from Login; a
// tampered one and none are refused. It is called with grpcurl, through
// its reflection.
func TestExampleServiceTrustsGatehouseTokens(t *testing.T) {
	env := []map[string]string{{"name": "GATEHOUSE_ISSUER", "value": issuerURL(t)}}
	var ca map[string]any
	if caFile != "" {
		env = append(env, map[string]string{"name": "SSL_CERT_FILE", "value": "/etc/gatehouse/ca/ca.crt"})
		ca = releaseCAVolume()
	}
	runPod(t, "e2e-greeter", map[string]string{"app.kubernetes.io/name": "gatehouse-e2e-greeter"}, map[string]any{
		"name": "greeter", "image": imageFromEnv(t, "GREETER_IMAGE"), "env": env,
		"ports":     []map[string]any{{"name": "grpc", "containerPort": 50053}},
		"resources": map[string]any{"requests": map[string]string{"cpu": "10m", "memory": "16Mi"}, "limits": map[string]string{"memory": "64Mi"}},
	}, ca)
	kubectlRun(t, "-n", namespace, "wait", "--for=condition=Ready", "pod/e2e-greeter", "--timeout=120s")
	addr := forwardFor(t, namespace, "pod/e2e-greeter", 50053)
	plaintext := []string{"-plaintext"}

	// SERVING once it holds the issuer's keys: discovery and the JWKS came
	// through TLS and the NetworkPolicy.
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, code := callOver(t, plaintext, addr, "grpc.health.v1.Health/Check", "", map[string]string{})
		if code == "OK" && resp["status"] == "SERVING" {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := exec.Command(kubectl, "-n", namespace, "logs", "e2e-greeter").CombinedOutput()
			t.Fatalf("greeter not SERVING within 60s (%v %s): it cannot reach the issuer's keys\n%s", resp, code, logs)
		}
		time.Sleep(time.Second)
	}

	email, pw := unique("greeter"), "correct horse battery"
	id := signup(t, email, pw)
	access, _ := login(t, email, pw)
	hello, code := callOver(t, plaintext, addr, "greeter.v1.GreeterService/Hello", access, map[string]string{})
	if must(t, hello, code, "OK"); str(hello, "subject") != id || str(hello, "clientId") != "gatehouse" {
		t.Fatalf("Hello with a Login token = %v; want subject %s, client gatehouse", hello, id)
	}
	for name, token := range map[string]string{"tampered": authntest.TamperSignature(access), "no token": ""} {
		if _, code := callOver(t, plaintext, addr, "greeter.v1.GreeterService/Hello", token, map[string]string{}); code != "Unauthenticated" {
			t.Errorf("Hello, %s: %s, want Unauthenticated", name, code)
		}
	}
}
