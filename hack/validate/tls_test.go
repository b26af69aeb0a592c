package validate

import (
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	certmanagerv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// tlsMount returns the Secret a service's pod mounts at /etc/gatehouse/tls,
// or "" if none.
func tlsMount(t *testing.T, d *appsv1.Deployment) string {
	t.Helper()
	c, _ := serviceContainer(&d.Spec.Template.Spec)
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/etc/gatehouse/tls" && m.Name == "tls" {
			mounted = true
		}
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "tls" && v.Secret != nil && mounted {
			return v.Secret.SecretName
		}
	}
	return ""
}

func parseCert(t *testing.T, what string, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", what)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return c
}

// TestChartTLSGenerated: without cert-manager the chart generates a CA and
// a certificate per service, mounts each into its service, and configures
// the services so that the Auth service's certificate carries the name the
// User service checks, the JWKS is fetched over https, and probes and
// scrapes use the plaintext side ports.
func TestChartTLSGenerated(t *testing.T) {
	out, err := RenderChart(chartDir(t), RenderOptions{ReleaseName: "demo", Namespace: "apps"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(Find(out.Manifests, "Certificate", "")); n != 0 {
		t.Errorf("rendered %d cert-manager Certificates on a cluster without cert-manager", n)
	}
	env := configEnv(t, out.Manifests)
	deps := serviceDeployments(t, out.Manifests)
	ca := x509.NewCertPool()
	caObjs := Find(out.Manifests, "Secret", "demo-gatehouse-ca")
	if len(caObjs) != 1 {
		t.Fatal("no CA Secret demo-gatehouse-ca")
	}
	ca.AppendCertsFromPEM(caObjs[0].Obj.(*corev1.Secret).Data["tls.crt"])
	for _, svc := range []string{"user", "auth"} {
		secret := tlsMount(t, deps[svc])
		if secret != "demo-gatehouse-"+svc+"-tls" {
			t.Fatalf("%s mounts TLS Secret %q", svc, secret)
		}
		s := Find(out.Manifests, "Secret", secret)[0].Obj.(*corev1.Secret)
		leaf := parseCert(t, secret, s.Data["tls.crt"])
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca, DNSName: "demo-gatehouse-" + svc + ".apps.svc", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s certificate as a server: %v", svc, err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s certificate as a client: %v", svc, err)
		}
		if !slices.Contains(leaf.DNSNames, "localhost") || !slices.Contains(leaf.DNSNames, "demo-gatehouse-"+svc+"-headless.apps.svc.cluster.local") {
			t.Errorf("%s certificate names %v: want localhost (port-forward) and the headless Service", svc, leaf.DNSNames)
		}
		if string(s.Data["ca.crt"]) != string(caObjs[0].Obj.(*corev1.Secret).Data["tls.crt"]) {
			t.Errorf("%s ca.crt is not the chart's CA", svc)
		}
		for k, want := range map[string]string{
			"TLS_CERT_FILE": "/etc/gatehouse/tls/tls.crt", "TLS_KEY_FILE": "/etc/gatehouse/tls/tls.key",
			"TLS_CA_FILE": "/etc/gatehouse/tls/ca.crt", "TLS_CLIENT_AUTH": "none", "HEALTH_ADDR": ":8090", "METRICS_ADDR": ":9090",
		} {
			if env[svc][k] != want {
				t.Errorf("%s %s = %q, want %q", svc, k, env[svc][k], want)
			}
		}
		if svc == "auth" {
			peer := env["user"]["SERVICE_PEER_NAMES"]
			if peer == "" || !slices.Contains(leaf.DNSNames, peer) {
				t.Errorf("the User service expects the Auth service to be %q; the Auth certificate names %v", peer, leaf.DNSNames)
			}
		} else if slices.Contains(leaf.DNSNames, env["user"]["SERVICE_PEER_NAMES"]) {
			t.Errorf("the User service's own certificate carries the Auth identity %q", env["user"]["SERVICE_PEER_NAMES"])
		}
	}
	if !strings.HasPrefix(env["user"]["JWKS_URL"], "https://demo-gatehouse-auth.apps.svc.") {
		t.Errorf("JWKS_URL = %q, want https to the Auth Service", env["user"]["JWKS_URL"])
	}
	if n := len(Find(out.Manifests, "NetworkPolicy", "")); n < 2 {
		t.Errorf("%d NetworkPolicies by default, want one per service", n)
	}
	test := Find(out.Hooks, "Pod", "")
	if len(test) != 1 || !strings.Contains(strings.Join(test[0].Obj.(*corev1.Pod).Spec.Containers[0].Args, " "), "-cacert=/etc/gatehouse/tls/ca.crt") {
		t.Error("the helm test pod does not check the services over TLS")
	}
}

// TestChartTLSCertManager: with cert-manager, Certificates (strictly
// decoded with cert-manager's own types) replace the generated Secrets and
// fill exactly the Secrets the pods mount; issuerRef brings your own issuer.
func TestChartTLSCertManager(t *testing.T) {
	for _, tc := range []struct {
		name       string
		values     map[string]any
		wantIssuer string
		issuers    int
	}{
		{"own CA", nil, "demo-gatehouse-ca", 2},
		{"your issuer", map[string]any{"tls": map[string]any{"certManager": map[string]any{"issuerRef": map[string]any{"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}}}}, "corp-ca", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := RenderChart(chartDir(t), RenderOptions{ReleaseName: "demo", Namespace: "apps", CertManager: true, Values: tc.values})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(Find(out.Manifests, "Issuer", "")); n != tc.issuers {
				t.Errorf("%d Issuers, want %d", n, tc.issuers)
			}
			for _, o := range Find(out.Manifests, "Secret", "") {
				if strings.HasSuffix(o.Meta().GetName(), "-tls") || strings.HasSuffix(o.Meta().GetName(), "-ca") {
					t.Errorf("generated %s although cert-manager issues the certificates", o)
				}
			}
			deps := serviceDeployments(t, out.Manifests)
			for _, svc := range []string{"user", "auth"} {
				objs := Find(out.Manifests, "Certificate", "demo-gatehouse-"+svc)
				if len(objs) != 1 {
					t.Fatalf("no Certificate demo-gatehouse-%s", svc)
				}
				c := objs[0].Obj.(*certmanagerv1.Certificate)
				if c.Spec.SecretName != tlsMount(t, deps[svc]) {
					t.Errorf("%s: Certificate fills %q, the pod mounts %q", svc, c.Spec.SecretName, tlsMount(t, deps[svc]))
				}
				if c.Spec.IssuerRef.Name != tc.wantIssuer {
					t.Errorf("%s: issued by %q, want %q", svc, c.Spec.IssuerRef.Name, tc.wantIssuer)
				}
				if !slices.Contains(c.Spec.Usages, certmanagerv1.UsageClientAuth) || !slices.Contains(c.Spec.Usages, certmanagerv1.UsageServerAuth) {
					t.Errorf("%s: usages %v, want server auth and client auth", svc, c.Spec.Usages)
				}
				if svc == "auth" && !slices.Contains(c.Spec.DNSNames, configEnv(t, out.Manifests)["user"]["SERVICE_PEER_NAMES"]) {
					t.Errorf("the Auth Certificate does not name the identity the User service checks")
				}
			}
		})
	}
}

// TestChartTLSOff: tls.enabled=false is plaintext everywhere, with the
// probes and scrapes still on the side ports.
func TestChartTLSOff(t *testing.T) {
	out, err := RenderChart(chartDir(t), RenderOptions{ReleaseName: "demo", Namespace: "apps", Values: map[string]any{"tls": map[string]any{"enabled": false}}})
	if err != nil {
		t.Fatal(err)
	}
	env := configEnv(t, out.Manifests)
	for _, svc := range []string{"user", "auth"} {
		if env[svc]["TLS_CERT_FILE"] != "" || tlsMount(t, serviceDeployments(t, out.Manifests)[svc]) != "" {
			t.Errorf("%s has TLS with tls.enabled=false", svc)
		}
	}
	if !strings.HasPrefix(env["user"]["JWKS_URL"], "http://") {
		t.Errorf("JWKS_URL = %q with TLS off", env["user"]["JWKS_URL"])
	}
}
