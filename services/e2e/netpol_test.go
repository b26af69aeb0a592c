//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// imageFromEnv reads KEY=image from the file make kind-load writes.
func imageFromEnv(t *testing.T, key string) string {
	t.Helper()
	v, ok := fromImagesEnv(t, key)
	if !ok || v == "" {
		t.Fatalf("%s has no %s: run make kind-load", envOr("E2E_IMAGES_ENV", ""), key)
	}
	return v
}

// optionalFromEnv reads KEY=value from the same file, "" when absent.
func optionalFromEnv(t *testing.T, key string) string {
	t.Helper()
	v, _ := fromImagesEnv(t, key)
	return v
}

func fromImagesEnv(t *testing.T, key string) (string, bool) {
	t.Helper()
	f, err := os.Open(envOr("E2E_IMAGES_ENV", ""))
	if err != nil {
		t.Fatalf("no %s: set E2E_IMAGES_ENV to the file make kind-load writes (%v)", key, err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// enforceNetworkPolicy runs kube-network-policies on the node until the
// test ends (hack/kind/netpol/), then removes it and waits until its pod
// is gone: on SIGTERM it deletes its nftables rules.
func enforceNetworkPolicy(t *testing.T) {
	t.Helper()
	manifest, err := os.ReadFile(filepath.Join("..", "..", "hack", "kind", "netpol", "kube-network-policies.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	image := regexp.MustCompile(`image: \S*kube-network-policies:\S*`)
	manifest = image.ReplaceAll(manifest, []byte("image: "+imageFromEnv(t, "KNP_IMAGE")))
	apply := exec.Command(kubectl, "apply", "-f", "-")
	apply.Stdin = strings.NewReader(string(manifest))
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("applying kube-network-policies: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		del := exec.Command(kubectl, "delete", "--wait", "--timeout=120s", "-f", "-")
		del.Stdin = strings.NewReader(string(manifest))
		if out, err := del.CombinedOutput(); err != nil {
			t.Errorf("removing kube-network-policies: %v\n%s", err, out)
		}
		_ = exec.Command(kubectl, "-n", "kube-system", "wait", "--for=delete", "pod", "-l", "app.kubernetes.io/name=kube-network-policies", "--timeout=120s").Run()
	})
	kubectlRun(t, "-n", "kube-system", "rollout", "status", "daemonset/kube-network-policies", "--timeout=180s")
	// Its first sync of pods, policies and rules.
	time.Sleep(5 * time.Second)
}

// probePod runs the User image's `/user healthcheck` with args in a
// one-off pod carrying labels, in the release's namespace, and reports
// whether it exited 0, with its output.
func probePod(t *testing.T, name string, labels map[string]string, args ...string) (bool, string) {
	t.Helper()
	image := strings.TrimSpace(kubectlRun(t, "-n", namespace, "get", "deployment", fullname()+"-user", "-o",
		`jsonpath={.spec.template.spec.containers[?(@.name=="user")].image}`))
	runPod(t, name, labels, map[string]any{
		"name": "probe", "image": image, "command": []string{"/user", "healthcheck"}, "args": args,
	}, releaseCAVolume())
	var phase string
	eventually(t, 90*time.Second, "pod "+name+" finished", func() error {
		out, err := exec.Command(kubectl, "-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}").Output()
		if err != nil {
			return err
		}
		if phase = string(out); phase != "Succeeded" && phase != "Failed" {
			return fmt.Errorf("phase %q", phase)
		}
		return nil
	})
	logs, _ := exec.Command(kubectl, "-n", namespace, "logs", name).CombinedOutput()
	return phase == "Succeeded", strings.TrimSpace(string(logs))
}

// TestNetworkPolicyEnforced: a pod without the labels the chart's
// NetworkPolicy allows cannot open a connection to the User service's gRPC
// port, while a pod with them can, and the plaintext health port stays open
// to all (the kubelet's probes). The kind node's CNI enforces no policy, so
// the test runs an agent that does (kube-network-policies) for its own
// duration; after removing it, the outsider gets through again, which shows
// it was the policy that stopped it (and that no rule is left behind).
func TestNetworkPolicyEnforced(t *testing.T) {
	needTLS(t)
	if strings.TrimSpace(kubectlRun(t, "-n", namespace, "get", "networkpolicy", "-o", "name")) == "" {
		t.Skip("the release has no NetworkPolicies (networkPolicy.enabled=false)")
	}
	t.Run("enforced", func(t *testing.T) {
		enforceNetworkPolicy(t)
		probeNetworkPolicy(t)
	})
	// The agent is gone: nothing stops the outsider now.
	if ok, out := probePod(t, fmt.Sprintf("e2e-netpol-after-%d", time.Now().UnixNano()%100000), map[string]string{"app.kubernetes.io/name": "e2e-outsider"},
		"-timeout", "5s", "-cacert", "/etc/gatehouse/ca/ca.crt", fmt.Sprintf("%s-user.%s.svc:50051", fullname(), namespace)); !ok {
		t.Errorf("after removing the agent the outsider still cannot connect (rules left behind?): %s", out)
	}
}

func probeNetworkPolicy(t *testing.T) {
	t.Helper()
	grpcAddr := fmt.Sprintf("%s-user.%s.svc:50051", fullname(), namespace)
	tlsArgs := []string{"-timeout", "5s", "-cacert", "/etc/gatehouse/ca/ca.crt", grpcAddr}
	var userPodIP string
	for _, p := range pods(t, "app.kubernetes.io/instance="+release+",app.kubernetes.io/component=user") {
		if p.Ready && !p.Terminating {
			userPodIP = strings.TrimSpace(kubectlRun(t, "-n", namespace, "get", "pod", p.Name, "-o", "jsonpath={.status.podIP}"))
			break
		}
	}
	outsider := map[string]string{"app.kubernetes.io/name": "e2e-outsider"}
	allowed := map[string]string{"app.kubernetes.io/name": "gatehouse-e2e-loadgen"} // networkPolicy.user.allowFrom of values-e2e.yaml
	for _, tc := range []struct {
		name   string
		labels map[string]string
		args   []string
		want   bool
	}{
		{"outsider to the User gRPC port", outsider, tlsArgs, false},
		{"outsider to a User pod's health port", outsider, []string{"-timeout", "5s", userPodIP + ":8090"}, true},
		{"allowed pod to the User gRPC port", allowed, tlsArgs, true},
	} {
		ok, out := probePod(t, "e2e-netpol-"+strings.ReplaceAll(strings.ToLower(strings.Fields(tc.name)[0]), " ", "-")+fmt.Sprint(time.Now().UnixNano()%100000), tc.labels, tc.args...)
		if ok != tc.want {
			t.Errorf("%s: reached=%v, want %v: %s", tc.name, ok, tc.want, out)
		} else {
			t.Logf("%s: reached=%v: %s", tc.name, ok, out)
		}
	}
}
