// Package helm holds the test of Berry's Helm chart (berry/): helm lint, helm template
// for a one-node and a three-member control plane, and kubeconform against the
// Kubernetes OpenAPI schemas. .ci/tools-kube installs the tools and fetches the
// schemas from the Go module proxy.
package helm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const chart = "berry"

// tool finds a binary on PATH or where .ci/tools-kube puts it, or skips the test.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("%s not installed: run `bash .ci/tools-kube` (it builds helm and kubeconform from the Go module proxy into $(go env GOPATH)/bin)", name)
	return ""
}

func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// renders are the value sets the chart is rendered and checked with.
var renders = []struct {
	name string
	set  []string
}{
	{"one node", nil},
	{"three members", []string{"controlPlane.replicas=3"}},
	{"three members, everything on", []string{
		"controlPlane.replicas=3", "serviceMonitor.enabled=true", "networkPolicy.enabled=true",
		"tls.secretName=berry-tls", "controlPlane.bootstrap=[settings]",
		"edge.autoscaling.enabled=false", "edge.service.type=LoadBalancer",
		"networkPolicy.adminFrom[0].namespaceSelector.matchLabels.team=ops",
	}},
	{"five members", []string{"controlPlane.replicas=5"}},
}

func setArgs(set []string) []string {
	var args []string
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return args
}

func TestChartLints(t *testing.T) {
	helm := tool(t, "helm")
	for _, r := range renders {
		t.Run(r.name, func(t *testing.T) {
			if _, err := run(t, helm, append([]string{"lint", "--strict", chart}, setArgs(r.set)...)...); err != nil {
				t.Fatal(err)
			}
		})
	}
	// Values the chart refuses, with a message naming the value.
	bad := []struct{ set, want string }{
		{"controlPlane.replicas=2", "controlPlane/replicas"},
		{"controlPlane.replicas=4", "controlPlane/replicas"},
		{"edge.service.type=Ingress", "edge/service/type"},
		{"auth.raftSecret=short", "auth/raftSecret"},
		{"controlPlane.replica=3", "replica"},
	}
	for _, b := range bad {
		_, err := run(t, helm, "lint", chart, "--set", b.set)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("helm lint --set %s: %v, want a refusal naming %s", b.set, err, b.want)
		}
	}
}

// object is one rendered Kubernetes object.
type object map[string]any

func (o object) kind() string { s, _ := o["kind"].(string); return s }
func (o object) name() string { s, _ := o.get("metadata", "name").(string); return s }

// get walks maps by key and lists by index ("0").
func (o object) get(path ...string) any {
	var cur any = map[string]any(o)
	for _, p := range path {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

func template(t *testing.T, helm string, set []string) (string, []object) {
	t.Helper()
	out, err := run(t, helm, append([]string{"template", "r", chart, "--namespace", "berry"}, setArgs(set)...)...)
	if err != nil {
		t.Fatal(err)
	}
	var objs []object
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		// Into a plain map: yaml gives nested maps the type of the outermost one.
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the rendered chart is not YAML: %v", err)
		}
		if m != nil {
			objs = append(objs, object(m))
		}
	}
	return out, objs
}

func find(t *testing.T, objs []object, kind, name string) object {
	t.Helper()
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o
		}
	}
	var have []string
	for _, o := range objs {
		have = append(have, o.kind()+" "+o.name())
	}
	t.Fatalf("no %s %s rendered; have %v", kind, name, have)
	return nil
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// TestChartRenders checks what the rendered objects say against what the binaries
// expect: the cluster flags and their addresses, the probes, the tokens' files.
func TestChartRenders(t *testing.T) {
	helm := tool(t, "helm")
	const peers = "r-berry-controlplane-peers.berry.svc.cluster.local"
	for _, replicas := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("%d replicas", replicas), func(t *testing.T) {
			_, objs := template(t, helm, []string{fmt.Sprintf("controlPlane.replicas=%d", replicas)})
			sts := find(t, objs, "StatefulSet", "r-berry-controlplane")
			if got := sts.get("spec", "replicas"); got != replicas {
				t.Errorf("StatefulSet replicas %v, want %d", got, replicas)
			}
			if got := sts.get("spec", "podManagementPolicy"); got != "Parallel" {
				t.Errorf("podManagementPolicy %v: members must start together to elect a leader", got)
			}
			if got := sts.get("spec", "volumeClaimTemplates", "0", "spec", "resources", "requests", "storage"); got != "1Gi" {
				t.Errorf("PVC size %v", got)
			}
			cp := object(sts.get("spec", "template", "spec", "containers", "0").(map[string]any))
			args := strs(cp.get("args"))
			var wantPeers []string
			for i := range replicas {
				wantPeers = append(wantPeers, fmt.Sprintf("r-berry-controlplane-%d=r-berry-controlplane-%d.%s:7001", i, i, peers))
			}
			clusterArgs := []string{
				"--node-id=$(POD_NAME)",
				"--raft-listen=:7001",
				"--raft-advertise=$(POD_NAME)." + peers + ":7001",
				"--grpc-advertise=$(POD_NAME)." + peers + ":9090",
				"--peers=" + strings.Join(wantPeers, ","),
				"--raft-secret-file=/etc/berry/tokens/raft-secret",
			}
			for _, a := range clusterArgs {
				if has := slices.Contains(args, a); has != (replicas > 1) {
					t.Errorf("control-plane args %v: has %s = %v with %d replicas", args, a, has, replicas)
				}
			}
			if !slices.Contains(args, "--data=/data/berry.db") || cp.get("command", "0") != "berry-controlplane" {
				t.Errorf("control plane runs %v %v", cp.get("command"), args)
			}
			if cp.get("readinessProbe", "grpc", "port") != 9090 || cp.get("livenessProbe", "tcpSocket", "port") != "grpc" {
				t.Errorf("control-plane probes: readiness %v, liveness %v", cp.get("readinessProbe"), cp.get("livenessProbe"))
			}
			peerSvc := find(t, objs, "Service", "r-berry-controlplane-peers")
			if peerSvc.get("spec", "clusterIP") != "None" || peerSvc.get("spec", "publishNotReadyAddresses") != true {
				t.Errorf("peers service must be headless and publish pods before they are ready: %v", peerSvc.get("spec"))
			}
			secret := find(t, objs, "Secret", "r-berry-tokens")
			for _, k := range []string{"admin-token", "read-token", "edge-token", "metrics-token", "raft-secret"} {
				if secret.get("data", k) == nil {
					t.Errorf("the Secret has no %s", k)
				}
			}
			if find(t, objs, "PodDisruptionBudget", "r-berry-controlplane").get("spec", "maxUnavailable") != 1 {
				t.Error("the control plane's PDB does not keep all but one member up")
			}

			dep := find(t, objs, "Deployment", "r-berry-edge")
			edge := object(dep.get("spec", "template", "spec", "containers", "0").(map[string]any))
			eargs := strs(edge.get("args"))
			if !slices.Contains(eargs, "--control-plane=r-berry-controlplane.berry.svc.cluster.local:9090") {
				t.Errorf("edge args %v: no --control-plane on the control plane's name", eargs)
			}
			if edge.get("readinessProbe", "httpGet", "path") != "/readyz" || edge.get("livenessProbe", "httpGet", "path") != "/healthz" {
				t.Errorf("edge probes: readiness %v, liveness %v", edge.get("readinessProbe"), edge.get("livenessProbe"))
			}
			if dep.get("spec", "template", "spec", "terminationGracePeriodSeconds") != 130 {
				t.Error("the edge's grace period does not fit its drain")
			}
			if dep.get("spec", "replicas") != nil {
				t.Error("the Deployment sets replicas while the HPA owns them")
			}
			hpa := find(t, objs, "HorizontalPodAutoscaler", "r-berry-edge")
			if hpa.get("spec", "scaleTargetRef", "name") != "r-berry-edge" {
				t.Errorf("HPA targets %v", hpa.get("spec", "scaleTargetRef"))
			}
			for _, o := range objs {
				if k := o.kind(); k == "ServiceMonitor" || k == "NetworkPolicy" {
					t.Errorf("%s %s rendered while off", k, o.name())
				}
			}
		})
	}
	t.Run("options", func(t *testing.T) {
		_, objs := template(t, helm, renders[2].set)
		find(t, objs, "ServiceMonitor", "r-berry-controlplane")
		find(t, objs, "ServiceMonitor", "r-berry-edge")
		np := find(t, objs, "NetworkPolicy", "r-berry-controlplane")
		if got := np.get("spec", "ingress", "2", "from", "0", "namespaceSelector", "matchLabels", "team"); got != "ops" {
			t.Errorf("admin sources not in the control plane's NetworkPolicy: %v", np.get("spec", "ingress"))
		}
		find(t, objs, "NetworkPolicy", "r-berry-edge")
		find(t, objs, "ConfigMap", "r-berry-controlplane-bootstrap")
		cp := object(find(t, objs, "StatefulSet", "r-berry-controlplane").get("spec", "template", "spec", "containers", "0").(map[string]any))
		if !slices.Contains(strs(cp.get("args")), "--tls-cert=/etc/berry/tls/tls.crt") || cp.get("readinessProbe", "tcpSocket", "port") != "grpc" {
			t.Errorf("with TLS: args %v, readiness %v", cp.get("args"), cp.get("readinessProbe"))
		}
		if find(t, objs, "Deployment", "r-berry-edge").get("spec", "replicas") != 2 {
			t.Error("without the HPA the Deployment has no replicas")
		}
	})
}

// versions reads the schema modules' versions from .ci/tools-kube, their one
// definition.
func versions(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../../.ci/tools-kube")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`^([A-Z_]+)=(\S+@v\S+)$`)
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			out[m[1]] = m[2]
		}
	}
	return out
}

// moduleDir is where the module cache holds mod (fetched by .ci/tools-kube), or a
// skip.
func moduleDir(t *testing.T, mod string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	cmd.Dir = t.TempDir() // outside this module: go.mod stays as it is
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var m struct{ Dir, Error string }
	if err != nil || json.Unmarshal(out, &m) != nil || m.Dir == "" {
		t.Skipf("%s is not in the module cache and cannot be fetched (%v %s): run `bash .ci/tools-kube`", mod, err, m.Error)
	}
	return m.Dir
}

// TestChartMatchesKubernetesSchemas validates every rendered object with kubeconform
// -strict against JSON schemas made, as kubeconform's own schemas are made, from the
// Kubernetes OpenAPI spec (and the ServiceMonitor CRD's schema): unknown fields, wrong
// types and missing required fields are errors. A broken manifest is refused, so the
// check is known to bite.
func TestChartMatchesKubernetesSchemas(t *testing.T) {
	helm := tool(t, "helm")
	kubeconform := tool(t, "kubeconform")
	v := versions(t)
	if v["KUBERNETES_OPENAPI"] == "" || v["PROMETHEUS_OPERATOR_CRDS"] == "" {
		t.Fatalf(".ci/tools-kube names no schema modules: %v", v)
	}
	k8sDir := moduleDir(t, v["KUBERNETES_OPENAPI"])
	promDir := moduleDir(t, v["PROMETHEUS_OPERATOR_CRDS"])
	schemas := t.TempDir()
	if err := writeKubernetesSchemas(filepath.Join(k8sDir, "api", "openapi-spec", "swagger.json"), schemas); err != nil {
		t.Fatal(err)
	}
	if err := writeCRDSchemas(filepath.Join(promDir, "example", "prometheus-operator-crd", "monitoring.coreos.com_servicemonitors.yaml"), schemas); err != nil {
		t.Fatal(err)
	}
	validate := func(manifests string) (valid, invalid int, out string, err error) {
		dir := t.TempDir()
		path := filepath.Join(dir, "chart.yaml")
		if err := os.WriteFile(path, []byte(manifests), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err = run(t, kubeconform, "-strict", "-summary", "-output", "json",
			"-schema-location", filepath.Join(schemas, "{{ .ResourceKind }}_{{ .Group }}_{{ .ResourceAPIVersion }}.json"),
			path)
		var r struct {
			Summary struct{ Valid, Invalid, Errors, Skipped int }
		}
		if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
			t.Fatalf("kubeconform's output is not JSON: %v\n%s %v", jerr, out, err)
		}
		if r.Summary.Skipped != 0 || r.Summary.Errors != 0 {
			t.Fatalf("kubeconform skipped %d objects and could not check %d:\n%s", r.Summary.Skipped, r.Summary.Errors, out)
		}
		return r.Summary.Valid, r.Summary.Invalid, out, err
	}
	for _, r := range renders {
		t.Run(r.name, func(t *testing.T) {
			manifests, objs := template(t, helm, r.set)
			valid, invalid, out, err := validate(manifests)
			if err != nil || invalid != 0 || valid != len(objs) {
				t.Fatalf("%d of %d objects valid, %d invalid: %v\n%s", valid, len(objs), invalid, err, out)
			}
		})
	}
	t.Run("a broken manifest is refused", func(t *testing.T) {
		manifests, _ := template(t, helm, nil)
		for _, breakIt := range []struct{ name, from, to string }{
			{"unknown field", "  podManagementPolicy: Parallel", "  podManagementPolicy: Parallel\n  replica: 3"},
			{"wrong type", "  podManagementPolicy: Parallel", "  podManagementPolicy: Parallel\n  minReadySeconds: soon"},
			{"missing required field", "        - name: controlplane\n          image:", "        - image:"},
		} {
			broken := strings.Replace(manifests, breakIt.from, breakIt.to, 1)
			if broken == manifests {
				t.Fatalf("%s: the rendered StatefulSet has no %q", breakIt.name, breakIt.from)
			}
			if _, invalid, out, _ := validate(broken); invalid != 1 {
				t.Errorf("%s: %d objects invalid, want 1:\n%s", breakIt.name, invalid, out)
			}
		}
	})
}

// TestChartFlagsExist gives Berry's binaries, built from this tree, the command lines
// the chart renders, with --help at the end: the binary parses every flag before it
// and fails on one it does not know, so a renamed or mistyped flag fails here rather
// than in a pod.
func TestChartFlagsExist(t *testing.T) {
	helm := tool(t, "helm")
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator),
		"github.com/berry-gateway/berry/controlplane/cmd/berry-controlplane",
		"github.com/berry-gateway/berry/edge/cmd/berry-edge")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, r := range renders {
		t.Run(r.name, func(t *testing.T) {
			_, objs := template(t, helm, r.set)
			checked := 0
			for _, o := range objs {
				if k := o.kind(); k != "StatefulSet" && k != "Deployment" {
					continue
				}
				containers, _ := o.get("spec", "template", "spec", "containers").([]any)
				for i := range containers {
					c := object(containers[i].(map[string]any))
					cmd := strs(c.get("command"))
					if len(cmd) != 1 {
						t.Fatalf("%s %s: command %v, want one of Berry's binaries", o.kind(), o.name(), cmd)
					}
					// Kubernetes expands $(POD_NAME) from the container's environment.
					args := strings.ReplaceAll(strings.Join(strs(c.get("args")), "\x00"), "$(POD_NAME)", "pod-0")
					out, err := exec.Command(filepath.Join(bin, cmd[0]), append(strings.Split(args, "\x00"), "--help")...).CombinedOutput()
					if err != nil {
						t.Errorf("%s %s: %v\n%s", o.kind(), o.name(), err, out)
					} else if !strings.Contains(strings.ToLower(string(out)), "usage") {
						t.Errorf("%s %s: --help printed no usage:\n%s", o.kind(), o.name(), out)
					}
					checked++
				}
			}
			if checked != 2 {
				t.Fatalf("checked %d containers, want the control plane's and the edge's", checked)
			}
		})
	}
}
