package docker

// Static checks of the container files; no Docker engine is needed.
//
//   - Dockerfile.cuda parses (BuildKit's own parser), has the builder and
//     runtime stages the docs describe, pins its toolchains, copies only files
//     that exist and every Go package the CLI imports, builds through the
//     Makefile, and gates the runtime stage on docker/check-ldd.sh.
//   - docker/compose.yaml, the Prometheus config and the Grafana provisioning
//     agree with each other and with the metrics port of the code.
//   - The Grafana dashboard and the Prometheus alert rules name only metrics the
//     trainer exports (gathered from its registry), and every satrain_* series
//     has a dashboard panel (dashboard_test.go).
//   - promtool (when installed) accepts the Prometheus config, the alert rules
//     and every dashboard query.

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"gopkg.in/yaml.v3"
)

const (
	modulePath = "github.com/satrain/satrain"
	// The repository root, seen from this package's directory (go test runs
	// tests in the package directory).
	repoRoot = ".."
	// contractPort is the metrics port of the team contract; it is used only
	// when no Go source states a default metrics address yet.
	contractPort = 9108
	// The PyTorch build of the GPU measurements (bench/RESULTS.md): the image
	// must use the same.
	measuredTorch = "2.11.0"
	// Where the builder's venv puts the wheel's libtorch (Ubuntu 24.04's
	// Python 3.12); the runtime stage keeps the same path.
	wheelTorch  = "/opt/torch/lib/python3.12/site-packages/torch"
	wheelPython = "/opt/torch/bin/python"
	// The marker of the placeholder lock file (docker/torch-requirements.txt).
	lockPlaceholder = "SATRAIN-LOCK-PLACEHOLDER"
)

var (
	metricNameRE  = regexp.MustCompile(`^satrain_[a-z_]+$`)
	metricInExpr  = regexp.MustCompile(`\bsatrain_[a-z_]+`)
	listenAddrRE  = regexp.MustCompile(`^(?:127\.0\.0\.1|0\.0\.0\.0|localhost|\[::\])?:(\d{2,5})$`)
	sha256RE      = regexp.MustCompile(`^[0-9a-f]{64}$`)
	cudaImageRE   = regexp.MustCompile(`^nvidia/cuda:(\d+)\.(\d+)\.(\d+)-(.+)-(ubuntu\d+\.\d+)$`)
	grafanaVarRE  = regexp.MustCompile(`\$\{?(\w+)\}?`)
	composeVarRE  = regexp.MustCompile(`\$\{[^}]*\}`)
	histogramSufs = []string{"_bucket", "_sum", "_count"}
)

// ---------------------------------------------------------------------------
// Helpers

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return b
}

func loadYAML(t *testing.T, rel string, v any) {
	t.Helper()
	if err := yaml.Unmarshal(readFile(t, rel), v); err != nil {
		t.Fatalf("%s does not parse as YAML: %v", rel, err)
	}
}

// goStringLiterals returns the values of all string literals in the non-test
// Go files of dir (relative to the repository root). A missing directory
// gives no literals.
func goStringLiterals(t *testing.T, files ...string) []string {
	t.Helper()
	var out []string
	fset := token.NewFileSet()
	for _, rel := range files {
		f, err := parser.ParseFile(fset, filepath.Join(repoRoot, rel), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", rel, err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					out = append(out, s)
				}
			}
			return true
		})
	}
	return out
}

func goFilesIn(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(repoRoot, dir))
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() && strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out
}

// exportedMetrics returns the satrain_* series names the trainer exports,
// gathered from its real registry (registrySeries in dashboard_test.go).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for n := range registrySeries(t) {
		if metricNameRE.MatchString(n) {
			names[n] = true
		}
	}
	return names
}

// metricsIn returns the satrain_* names a PromQL expression uses, with the
// histogram/summary series suffixes stripped where the stripped name is the
// exported one.
func metricsIn(expr string, exported map[string]bool) []string {
	var out []string
	for _, m := range metricInExpr.FindAllString(expr, -1) {
		if !exported[m] {
			for _, suf := range histogramSufs {
				if base, ok := strings.CutSuffix(m, suf); ok && exported[base] {
					m = base
					break
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// codeMetricsPort returns the metrics port the code uses by default: the port
// of listen-address string literals (":9108", "127.0.0.1:9108", ...) and bare
// "9108"-style literals in the CLI and trainer sources. With no such literal
// yet it falls back to the contract port.
func codeMetricsPort(t *testing.T) int {
	t.Helper()
	var files []string
	for _, dir := range []string{"bin/satrain", "trainer"} {
		files = append(files, goFilesIn(t, dir)...)
	}
	ports := map[int]bool{}    // every listen-address literal
	loopback := map[int]bool{} // "127.0.0.1:N", the contract's default form
	for _, s := range goStringLiterals(t, files...) {
		if m := listenAddrRE.FindStringSubmatch(s); m != nil {
			p, _ := strconv.Atoi(m[1])
			ports[p] = true
			if strings.HasPrefix(s, "127.0.0.1:") {
				loopback[p] = true
			}
		}
		if s == strconv.Itoa(contractPort) {
			ports[contractPort] = true
		}
	}
	if len(ports) > 1 && len(loopback) == 1 {
		ports = loopback
	}
	switch len(ports) {
	case 0:
		t.Logf("no metrics listen address in bin/satrain or trainer sources yet: using the contract port %d", contractPort)
		return contractPort
	case 1:
		for p := range ports {
			return p
		}
	}
	var list []int
	for p := range ports {
		list = append(list, p)
	}
	sort.Ints(list)
	t.Fatalf("several listen ports in bin/satrain and trainer sources: %v; cannot tell the metrics default", list)
	return 0
}

func portOf(t *testing.T, hostport string) (string, int) {
	t.Helper()
	i := strings.LastIndex(hostport, ":")
	if i < 0 {
		t.Fatalf("%q has no port", hostport)
	}
	p, err := strconv.Atoi(hostport[i+1:])
	if err != nil {
		t.Fatalf("%q: bad port: %v", hostport, err)
	}
	return hostport[:i], p
}

// ---------------------------------------------------------------------------
// Dockerfile

type instr struct {
	cmd   string   // lower-case instruction
	args  []string // arguments (Next chain)
	flags []string
	json  bool
	line  int
	orig  string
}

type stage struct {
	base, name string
	instrs     []instr
}

type dockerfile struct {
	metaArgs map[string]string // ARGs before the first FROM
	stages   []stage
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	res, err := dfparser.Parse(strings.NewReader(string(readFile(t, "Dockerfile.cuda"))))
	if err != nil {
		t.Fatalf("Dockerfile.cuda does not parse: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile.cuda parser warning: %s", w.Short)
	}
	df := dockerfile{metaArgs: map[string]string{}}
	for _, n := range res.AST.Children {
		in := instr{cmd: strings.ToLower(n.Value), flags: n.Flags, json: n.Attributes["json"], line: n.StartLine, orig: n.Original}
		for a := n.Next; a != nil; a = a.Next {
			in.args = append(in.args, a.Value)
		}
		switch {
		case in.cmd == "from":
			st := stage{base: in.args[0]}
			if len(in.args) == 3 && strings.EqualFold(in.args[1], "as") {
				st.name = in.args[2]
			}
			df.stages = append(df.stages, st)
		case len(df.stages) == 0:
			if in.cmd != "arg" {
				t.Fatalf("Dockerfile.cuda line %d: %s before the first FROM", in.line, in.cmd)
			}
			for _, a := range in.args {
				k, v, _ := strings.Cut(a, "=")
				df.metaArgs[k] = unquote(v)
			}
		default:
			df.stages[len(df.stages)-1].instrs = append(df.stages[len(df.stages)-1].instrs, in)
		}
	}
	return df
}

// args returns the ARG defaults declared in a stage.
func (s stage) args() map[string]string {
	m := map[string]string{}
	for _, in := range s.instrs {
		if in.cmd == "arg" {
			for _, a := range in.args {
				k, v, _ := strings.Cut(a, "=")
				m[k] = unquote(v)
			}
		}
	}
	return m
}

func (s stage) all(cmd string) []instr {
	var out []instr
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func flagValue(flags []string, name string) (string, bool) {
	for _, f := range flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// expandMeta resolves "${NAME}" in a FROM line from the meta ARGs.
func expandMeta(df dockerfile, s string) string {
	return os.Expand(s, func(k string) string { return df.metaArgs[k] })
}

func builderAndRuntime(t *testing.T, df dockerfile) (stage, stage) {
	t.Helper()
	if len(df.stages) != 2 {
		t.Fatalf("Dockerfile.cuda has %d stages, want 2 (builder, runtime)", len(df.stages))
	}
	b, r := df.stages[0], df.stages[1]
	if b.name != "builder" {
		t.Fatalf("first stage is named %q, want builder", b.name)
	}
	return b, r
}

func TestDockerfileStagesAndPins(t *testing.T) {
	df := parseDockerfile(t)
	b, r := builderAndRuntime(t, df)

	devel := expandMeta(df, b.base)
	runtime := expandMeta(df, r.base)
	dm := cudaImageRE.FindStringSubmatch(devel)
	rm := cudaImageRE.FindStringSubmatch(runtime)
	if dm == nil || rm == nil {
		t.Fatalf("stage images must be pinned nvidia/cuda:X.Y.Z-...-ubuntuNN.NN tags; got %q and %q", devel, runtime)
	}
	if !strings.Contains(dm[4], "devel") {
		t.Errorf("builder image %q is not a CUDA devel image", devel)
	}
	// The runtime stage needs no CUDA libraries of the image (they come from
	// the wheels): the smallest flavour, base, will do; runtime is allowed.
	if rm[4] != "base" && !strings.HasSuffix(rm[4], "runtime") {
		t.Errorf("runtime image %q is not a CUDA base or runtime image", runtime)
	}
	if dm[1] != rm[1] || dm[2] != rm[2] || dm[3] != rm[3] || dm[5] != rm[5] {
		t.Errorf("builder %q and runtime %q differ in CUDA version or OS", devel, runtime)
	}

	a := b.args()
	if v := a["GO_VERSION"]; !regexp.MustCompile(`^1\.\d+\.\d+$`).MatchString(v) {
		t.Errorf("GO_VERSION=%q: want a pinned release such as 1.26.0", v)
	}
	if v := a["GO_SHA256"]; !sha256RE.MatchString(v) {
		t.Errorf("GO_SHA256=%q: want a 64-hex-digit sha256", v)
	}
	// PyTorch: the version the GPU figures were measured with, and a CUDA tag
	// that matches the images.
	if v := a["TORCH_VERSION"]; v != measuredTorch {
		t.Errorf("TORCH_VERSION=%q: want %s, the version of the GPU measurements (bench/RESULTS.md)", v, measuredTorch)
	}
	// The wheels come from PyPI, the index the lock was written from (TestLockFilesAgree checks the CUDA
	// major version of the wheels against the images).
	if _, ok := a["TORCH_INDEX_URL"]; ok {
		t.Errorf("TORCH_INDEX_URL is set; the lock is written from PyPI and installed from it")
	}
	// The default build needs no build argument: nothing like the old
	// LIBTORCH_SHA256, which had no default and stopped every plain build.
	for k, v := range a {
		if strings.HasSuffix(k, "_SHA256") && v == "" {
			t.Errorf("ARG %s has no default: a plain docker build would stop without it", k)
		}
	}

	// The Go download is verified, and the wheels are installed only through
	// the hash-pinned lock file.
	var runs []string
	for _, in := range b.all("run") {
		runs = append(runs, strings.Join(in.args, " "))
	}
	joined := strings.Join(runs, "\n")
	for _, want := range []string{
		`echo "${GO_SHA256}  /tmp/go.tar.gz" | sha256sum -c -`,
		`if grep -q '` + lockPlaceholder + `' /tmp/torch-requirements.txt`,
		`--require-hashes`,
		`-r /tmp/torch-requirements.txt`,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("builder stage has no RUN containing %q", want)
		}
	}
	for _, c := range shellCommandsAll(runs) {
		if w := strings.Fields(c); len(w) > 0 && strings.HasSuffix(w[0], "pip") && slices.Contains(w, "install") && !slices.Contains(w, "--require-hashes") {
			t.Errorf("builder runs %q without --require-hashes", c)
		}
	}
	copiesLock := false
	for _, in := range b.all("copy") {
		if slices.Contains(in.args, "docker/torch-requirements.txt") {
			copiesLock = true
		}
	}
	if !copiesLock {
		t.Error("builder stage does not COPY docker/torch-requirements.txt")
	}
}

func shellCommandsAll(runs []string) []string {
	var out []string
	for _, r := range runs {
		out = append(out, shellCommands(r)...)
	}
	return out
}

func TestDockerfileBuildsThroughMakefile(t *testing.T) {
	df := parseDockerfile(t)
	b, _ := builderAndRuntime(t, df)
	var makeRun string
	for _, in := range b.all("run") {
		cmd := strings.Join(in.args, " ")
		// The Dockerfile installs toolchains only; compiling is the Makefile's job.
		for _, c := range shellCommands(cmd) {
			w := strings.Fields(c)
			switch {
			case slices.Contains([]string{"cmake", "gcc", "g++", "cc", "c++", "nvcc", "ninja"}, w[0]),
				w[0] == "go" && len(w) > 1 && w[1] != "mod" && w[1] != "version" && w[1] != "env":
				t.Errorf("builder RUN at line %d runs %q directly; build through make targets", in.line, c)
			case w[0] == "make":
				makeRun = c
			}
		}
	}
	if makeRun == "" {
		t.Fatal("builder stage has no RUN make ...")
	}
	fields := strings.Fields(makeRun)
	for _, want := range []string{"shim", "satrain", "TORCH_CUDA=1"} {
		if !slices.Contains(fields, want) {
			t.Errorf("%q lacks %q", makeRun, want)
		}
	}
	if want := "PYTHON=" + wheelPython; !slices.Contains(fields, want) {
		t.Errorf("%q does not pass %s (the venv whose wheels carry libtorch and the CUDA headers)", makeRun, want)
	}
}

// shellCommands splits a RUN command line into its simple commands (at &&,
// ||, ;, | and newlines), each trimmed, empty ones and "set ..." dropped.
func shellCommands(cmd string) []string {
	var out []string
	for _, c := range regexp.MustCompile(`&&|\|\||;|\||\n`).Split(cmd, -1) {
		c = strings.TrimSpace(c)
		if c != "" && !strings.HasPrefix(c, "set ") {
			out = append(out, c)
		}
	}
	return out
}

func TestDockerfileCopySourcesExist(t *testing.T) {
	df := parseDockerfile(t)
	stageNames := map[string]bool{}
	n := 0
	for _, st := range df.stages {
		for _, in := range st.instrs {
			if in.cmd != "copy" && in.cmd != "add" {
				continue
			}
			if len(in.args) < 2 {
				t.Errorf("line %d: %s needs a source and a destination", in.line, in.cmd)
				continue
			}
			srcs := in.args[:len(in.args)-1]
			if from, ok := flagValue(in.flags, "from"); ok {
				if !stageNames[from] {
					t.Errorf("line %d: COPY --from=%s names no earlier stage", in.line, from)
				}
				continue
			}
			for _, src := range srcs {
				n++
				if strings.Contains(src, "://") {
					t.Errorf("line %d: %s from a URL (%s); download in a verified RUN instead", in.line, in.cmd, src)
					continue
				}
				clean := filepath.Clean(src)
				if filepath.IsAbs(clean) || strings.HasPrefix(clean, "..") {
					t.Errorf("line %d: source %q is outside the build context", in.line, src)
					continue
				}
				matches, err := filepath.Glob(filepath.Join(repoRoot, clean))
				if err != nil || len(matches) == 0 {
					t.Errorf("line %d: %s source %q does not exist in the build context (repository root)", in.line, in.cmd, src)
				}
			}
		}
		if st.name != "" {
			stageNames[st.name] = true
		}
	}
	if n == 0 {
		t.Fatal("Dockerfile.cuda copies nothing from the build context")
	}
}

// TestDockerfileCopiesEverySatrainPackage walks the module-local imports of
// bin/satrain and checks every package directory lies under a path the
// builder copies, so a new package cannot silently break the image build.
func TestDockerfileCopiesEverySatrainPackage(t *testing.T) {
	if len(goFilesIn(t, "bin/satrain")) == 0 {
		t.Skip("bin/satrain has no Go files yet")
	}
	df := parseDockerfile(t)
	b, _ := builderAndRuntime(t, df)
	var copied []string
	for _, in := range b.all("copy") {
		if _, ok := flagValue(in.flags, "from"); ok {
			continue
		}
		for _, src := range in.args[:len(in.args)-1] {
			copied = append(copied, filepath.Clean(src))
		}
	}
	covered := func(dir string) bool {
		for _, c := range copied {
			if c == "." || dir == c || strings.HasPrefix(dir, c+"/") {
				return true
			}
		}
		return false
	}
	seen := map[string]bool{}
	queue := []string{"bin/satrain"}
	fset := token.NewFileSet()
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		if seen[dir] {
			continue
		}
		seen[dir] = true
		if !covered(dir) {
			t.Errorf("package ./%s (imported by bin/satrain) is not under any path the builder COPYs: %v", dir, copied)
		}
		for _, f := range goFilesIn(t, dir) {
			af, err := parser.ParseFile(fset, filepath.Join(repoRoot, f), nil, parser.ImportsOnly)
			if err != nil {
				t.Fatalf("parse %s: %v", f, err)
			}
			for _, imp := range af.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if rel, ok := strings.CutPrefix(p, modulePath+"/"); ok {
					queue = append(queue, rel)
				}
			}
		}
	}
	t.Logf("module packages in the satrain binary: %d", len(seen))
}

func TestDockerfileRuntimeStage(t *testing.T) {
	df := parseDockerfile(t)
	_, r := builderAndRuntime(t, df)
	port := codeMetricsPort(t)

	eps := r.all("entrypoint")
	if len(eps) != 1 || !eps[0].json || !slices.Equal(eps[0].args, []string{"satrain"}) {
		t.Errorf(`runtime stage needs exactly ENTRYPOINT ["satrain"] (exec form); got %+v`, eps)
	}
	users := r.all("user")
	if len(users) == 0 {
		t.Error("runtime stage has no USER: the image would run as root")
	} else if u := users[len(users)-1].args[0]; u == "root" || u == "0" || strings.HasPrefix(u, "0:") || strings.HasPrefix(u, "root:") {
		t.Errorf("runtime stage runs as %q", u)
	}
	var exposed []string
	for _, in := range r.all("expose") {
		exposed = append(exposed, in.args...)
	}
	if !slices.Contains(exposed, strconv.Itoa(port)) && !slices.Contains(exposed, fmt.Sprintf("%d/tcp", port)) {
		t.Errorf("runtime stage EXPOSEs %v, want the metrics port %d", exposed, port)
	}

	// The ldd gate: copied into the runtime stage and run on the binary and the shim.
	var gateDest string
	for _, in := range r.all("copy") {
		if slices.Contains(in.args[:len(in.args)-1], "docker/check-ldd.sh") {
			gateDest = in.args[len(in.args)-1]
		}
	}
	if gateDest == "" {
		t.Fatal("runtime stage does not COPY docker/check-ldd.sh")
	}
	gated := false
	for _, in := range r.all("run") {
		cmd := strings.Join(in.args, " ")
		if strings.Contains(cmd, gateDest) && strings.Contains(cmd, "/satrain") && strings.Contains(cmd, "libsatorch.so") {
			gated = true
		}
	}
	if !gated {
		t.Errorf("runtime stage has no RUN of %s on the satrain binary and libsatorch.so", gateDest)
	}

	// Runtime contents come from the builder only as the binary, the shim,
	// the wheel's torch/lib and the NVIDIA library wheels, the libraries at
	// the paths they had in the builder (the wheels' RPATHs are relative).
	libs := map[string]bool{}
	for _, in := range r.all("copy") {
		if _, ok := flagValue(in.flags, "from"); !ok {
			continue
		}
		dest := filepath.Clean(in.args[len(in.args)-1])
		for _, src := range in.args[:len(in.args)-1] {
			clean := filepath.Clean(src)
			switch {
			case strings.HasSuffix(src, "/build/satrain"), strings.HasSuffix(src, "/build/libsatorch.so"):
			case clean == wheelTorch+"/lib", clean == filepath.Dir(wheelTorch)+"/nvidia":
				libs[clean] = true
				if dest != clean {
					t.Errorf("runtime stage copies %s to %s; keep the builder's path (the wheels' RPATHs are relative)", clean, dest)
				}
			default:
				t.Errorf("runtime stage copies %q from the builder; only the binary, libsatorch.so, torch/lib and nvidia/ belong there", src)
			}
		}
	}
	if len(libs) != 2 {
		t.Errorf("runtime stage copies %v from the builder; want %s/lib and %s/nvidia", libs, wheelTorch, filepath.Dir(wheelTorch))
	}
	// libsatorch.so finds torch/lib by its RUNPATH (the builder's path, kept above).
	for _, in := range r.all("env") {
		if strings.Contains(strings.Join(in.args, " "), "LD_LIBRARY_PATH") {
			t.Errorf("runtime sets LD_LIBRARY_PATH (%s); the shim's RUNPATH finds libtorch", in.orig)
		}
	}
}

// TestCheckLddScript runs docker/check-ldd.sh on programs built here: one
// whose library is gone must fail, one missing only libcuda.so.1 must pass.
func TestCheckLddScript(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler")
	}
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Skip("no ldd")
	}
	script, _ := filepath.Abs(filepath.Join(repoRoot, "docker/check-ldd.sh"))
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(args ...string) (string, error) {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		return string(out), err
	}
	lib := write("lib.c", "int satrain_probe(void) { return 7; }\n")
	prog := write("main.c", "int satrain_probe(void);\nint main(void) { return satrain_probe() == 7 ? 0 : 1; }\n")
	build := func(soname, exe string) string {
		so := filepath.Join(dir, "lib"+exe+".so")
		if out, err := run(cc, "-shared", "-fPIC", "-o", so, "-Wl,-soname,"+soname, lib); err != nil {
			t.Fatalf("build %s: %v\n%s", so, err, out)
		}
		bin := filepath.Join(dir, exe)
		if out, err := run(cc, "-o", bin, prog, so); err != nil {
			t.Fatalf("build %s: %v\n%s", bin, err, out)
		}
		if err := os.Remove(so); err != nil {
			t.Fatal(err)
		}
		return bin
	}
	missing := build("libsatrain_gone.so", "missing")
	driver := build("libcuda.so.1", "driver")

	if out, err := run("sh", script, missing); err == nil || !strings.Contains(out, "MISSING: "+missing+" needs libsatrain_gone.so") {
		t.Errorf("check-ldd.sh on a binary with a missing library: err=%v\n%s", err, out)
	}
	if out, err := run("sh", script, driver); err != nil || !strings.Contains(out, "needs libcuda.so.1 (NVIDIA driver library") {
		t.Errorf("check-ldd.sh on a binary missing only libcuda.so.1: err=%v\n%s", err, out)
	}
	if out, err := run("sh", script, lib); err == nil {
		t.Errorf("check-ldd.sh on a non-ELF file passed:\n%s", out)
	}
	sh, _ := exec.LookPath("sh")
	if out, err := run("sh", script, sh); err != nil {
		t.Errorf("check-ldd.sh on %s: %v\n%s", sh, err, out)
	}
}

// ---------------------------------------------------------------------------
// Compose, Prometheus, Grafana

type composeFile struct {
	Services map[string]struct {
		Image   string `yaml:"image"`
		Build   any    `yaml:"build"`
		Command any    `yaml:"command"`
		Ports   []any  `yaml:"ports"`
		Volumes []any  `yaml:"volumes"`
		Deploy  struct {
			Resources struct {
				Reservations struct {
					Devices []struct {
						Driver       string   `yaml:"driver"`
						Count        any      `yaml:"count"`
						Capabilities []string `yaml:"capabilities"`
					} `yaml:"devices"`
				} `yaml:"reservations"`
			} `yaml:"resources"`
		} `yaml:"deploy"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

type promConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string `yaml:"alert"`
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// containerPort returns the container side of a compose port entry.
func containerPort(t *testing.T, p any) int {
	t.Helper()
	switch v := p.(type) {
	case string:
		parts := strings.Split(strings.TrimSuffix(v, "/tcp"), ":")
		n, err := strconv.Atoi(parts[len(parts)-1])
		if err != nil {
			t.Fatalf("compose port %q: %v", v, err)
		}
		return n
	case int:
		return v
	case map[string]any:
		n, _ := v["target"].(int)
		return n
	}
	t.Fatalf("compose port entry %#v", p)
	return 0
}

// volumeTargets maps container paths to their sources for compose volumes in short syntax.
func volumeTargets(t *testing.T, vols []any) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, v := range vols {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("compose volume %#v: use the short syntax", v)
		}
		// ${VAR:-default} holds colons of its own: split around it.
		vars := composeVarRE.FindAllString(s, -1)
		parts := strings.Split(composeVarRE.ReplaceAllString(s, "\x00"), ":")
		for i := range parts {
			for strings.Contains(parts[i], "\x00") && len(vars) > 0 {
				parts[i] = strings.Replace(parts[i], "\x00", vars[0], 1)
				vars = vars[1:]
			}
		}
		if len(parts) < 2 {
			t.Fatalf("compose volume %q has no container path", s)
		}
		m[parts[1]] = parts[0]
	}
	return m
}

func stringList(t *testing.T, v any) []string {
	t.Helper()
	l, ok := v.([]any)
	if !ok {
		t.Fatalf("want a YAML list of strings, got %#v", v)
	}
	var out []string
	for _, x := range l {
		s, ok := x.(string)
		if !ok {
			t.Fatalf("want a string, got %#v", x)
		}
		out = append(out, s)
	}
	return out
}

func flagArg(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func TestComposePrometheusAndCodeAgree(t *testing.T) {
	port := codeMetricsPort(t)
	var cf composeFile
	loadYAML(t, "docker/compose.yaml", &cf)
	var pc promConfig
	loadYAML(t, "docker/prometheus/prometheus.yml", &pc)

	job, ok := cf.Services["satrain"]
	if !ok {
		t.Fatal("compose has no service satrain")
	}
	if job.Build == nil {
		t.Error("compose service satrain has no build section")
	} else if bm, ok := job.Build.(map[string]any); !ok || bm["dockerfile"] != "Dockerfile.cuda" || bm["context"] != ".." {
		t.Errorf("compose satrain.build = %#v; want context .. and dockerfile Dockerfile.cuda", job.Build)
	}

	// Command: the training job with metrics on all interfaces at the code's port.
	args := stringList(t, job.Command)
	if len(args) == 0 || args[0] != "selection-aware" {
		t.Errorf("compose satrain.command %v should start with selection-aware", args)
	}
	addr, ok := flagArg(args, "--metrics-addr")
	if !ok {
		t.Fatal("compose satrain.command has no --metrics-addr")
	}
	if host, p := portOf(t, addr); host != "0.0.0.0" || p != port {
		t.Errorf("--metrics-addr %s: want 0.0.0.0:%d", addr, port)
	}
	if dev, _ := flagArg(args, "--device"); dev != "cuda" {
		t.Errorf("--device %q, want cuda", dev)
	}

	// Data and checkpoints are mounted where the command reads and writes them.
	vols := volumeTargets(t, job.Volumes)
	data, _ := flagArg(args, "--data")
	if !strings.HasPrefix(data, "/data/") {
		t.Errorf("--data %q is not under /data", data)
	}
	if _, ok := vols["/data"]; !ok {
		t.Error("compose satrain mounts nothing at /data")
	}
	saveDir, _ := flagArg(args, "--save-dir")
	if src, ok := vols[saveDir]; !ok {
		t.Errorf("--save-dir %q is not a mounted volume", saveDir)
	} else if _, named := cf.Volumes[src]; !named {
		t.Errorf("checkpoints mount %q -> %s is not a named volume", src, saveDir)
	}

	// GPUs: the compose form of --gpus all.
	devs := job.Deploy.Resources.Reservations.Devices
	if len(devs) != 1 || devs[0].Driver != "nvidia" || !slices.Contains(devs[0].Capabilities, "gpu") || devs[0].Count != "all" {
		t.Errorf("compose satrain deploy.resources.reservations.devices = %+v; want driver nvidia, count all, capabilities [gpu]", devs)
	}

	// Published port = code port = Prometheus target port.
	var cports []int
	for _, p := range job.Ports {
		cports = append(cports, containerPort(t, p))
	}
	if !slices.Contains(cports, port) {
		t.Errorf("compose satrain publishes container ports %v, want %d", cports, port)
	}
	var targets []string
	for _, sc := range pc.ScrapeConfigs {
		if sc.JobName != "satrain" {
			continue
		}
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("scrape job satrain metrics_path %q, want /metrics", sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	if len(targets) == 0 {
		t.Fatal("prometheus.yml has no scrape job satrain with static targets")
	}
	for _, tg := range targets {
		host, p := portOf(t, tg)
		if p != port {
			t.Errorf("Prometheus target %s: port %d, want %d", tg, p, port)
		}
		if _, ok := cf.Services[host]; !ok {
			t.Errorf("Prometheus target %s: host %q is no compose service", tg, host)
		}
	}

	// Prometheus in compose mounts this config and every rule file beside it.
	prom, ok := cf.Services["prometheus"]
	if !ok {
		t.Fatal("compose has no service prometheus")
	}
	pv := volumeTargets(t, prom.Volumes)
	if pv["/etc/prometheus/prometheus.yml"] != "./prometheus/prometheus.yml" {
		t.Errorf("compose prometheus does not mount ./prometheus/prometheus.yml at /etc/prometheus/prometheus.yml: %v", pv)
	}
	for _, rf := range pc.RuleFiles {
		if pv[filepath.Join("/etc/prometheus", rf)] != "./prometheus/"+rf {
			t.Errorf("rule file %s is not mounted beside the config: %v", rf, pv)
		}
	}
}

func TestGrafanaProvisioning(t *testing.T) {
	var cf composeFile
	loadYAML(t, "docker/compose.yaml", &cf)
	g, ok := cf.Services["grafana"]
	if !ok {
		t.Fatal("compose has no service grafana")
	}
	gv := volumeTargets(t, g.Volumes)
	if gv["/etc/grafana/provisioning"] != "./grafana/provisioning" {
		t.Errorf("grafana does not mount ./grafana/provisioning at /etc/grafana/provisioning: %v", gv)
	}

	var ds struct {
		Datasources []struct {
			UID, Type, URL string
		} `yaml:"datasources"`
	}
	loadYAML(t, "docker/grafana/provisioning/datasources/prometheus.yaml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("want one prometheus datasource, got %+v", ds.Datasources)
	}
	host, port := portOf(t, strings.TrimPrefix(ds.Datasources[0].URL, "http://"))
	if _, ok := cf.Services[host]; !ok {
		t.Errorf("datasource URL %s: %q is no compose service", ds.Datasources[0].URL, host)
	}
	var pports []int
	for _, p := range cf.Services["prometheus"].Ports {
		pports = append(pports, containerPort(t, p))
	}
	if !slices.Contains(pports, port) {
		t.Errorf("datasource port %d is not the prometheus service's container port %v", port, pports)
	}

	var prov struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	loadYAML(t, "docker/grafana/provisioning/dashboards/satrain.yaml", &prov)
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" {
		t.Fatalf("want one file dashboard provider, got %+v", prov.Providers)
	}
	if gv[prov.Providers[0].Options.Path] != "./grafana/dashboards" {
		t.Errorf("dashboard provider path %s is not where compose mounts ./grafana/dashboards: %v", prov.Providers[0].Options.Path, gv)
	}

	// Every datasource reference in the dashboard is the provisioned one.
	var dash any
	if err := json.Unmarshal(readFile(t, "docker/grafana/dashboards/satrain.json"), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	walkJSON(dash, func(key string, v any) {
		if key != "datasource" {
			return
		}
		m, ok := v.(map[string]any)
		if !ok || m["uid"] != ds.Datasources[0].UID {
			t.Errorf("dashboard datasource %#v is not uid %q", v, ds.Datasources[0].UID)
		}
	})
}

func walkJSON(v any, fn func(key string, v any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			fn(k, c)
			walkJSON(c, fn)
		}
	case []any:
		for _, c := range x {
			walkJSON(c, fn)
		}
	}
}

type dashQuery struct{ where, expr string }

// dashboardQueries returns the PromQL of every panel target and every query
// variable of the dashboard.
func dashboardQueries(t *testing.T) []dashQuery {
	t.Helper()
	var dash struct {
		Panels     []map[string]any `json:"panels"`
		Templating struct {
			List []map[string]any `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(readFile(t, "docker/grafana/dashboards/satrain.json"), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var qs []dashQuery
	var panels func(ps []map[string]any)
	panels = func(ps []map[string]any) {
		for _, p := range ps {
			title, _ := p["title"].(string)
			if ts, ok := p["targets"].([]any); ok {
				for _, tg := range ts {
					if m, ok := tg.(map[string]any); ok {
						if e, ok := m["expr"].(string); ok {
							qs = append(qs, dashQuery{"panel " + strconv.Quote(title), e})
						}
					}
				}
			}
			if sub, ok := p["panels"].([]any); ok {
				var subs []map[string]any
				for _, s := range sub {
					if m, ok := s.(map[string]any); ok {
						subs = append(subs, m)
					}
				}
				panels(subs)
			}
		}
	}
	panels(dash.Panels)
	for _, v := range dash.Templating.List {
		if q, ok := v["query"].(map[string]any); ok {
			if e, ok := q["query"].(string); ok {
				qs = append(qs, dashQuery{fmt.Sprintf("variable %v", v["name"]), e})
			}
		} else if e, ok := v["query"].(string); ok {
			qs = append(qs, dashQuery{fmt.Sprintf("variable %v", v["name"]), e})
		}
	}
	if len(qs) == 0 {
		t.Fatal("dashboard has no queries")
	}
	return qs
}

func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	used := map[string]bool{}
	for _, q := range dashboardQueries(t) {
		for _, m := range metricsIn(q.expr, exported) {
			used[m] = true
			if !exported[m] {
				t.Errorf("dashboard %s uses %s, which the trainer does not export: %s", q.where, m, q.expr)
			}
		}
	}
	// The dashboard shows what the issue asks for: losses, top-k expected
	// return, phase times, throughput, GPU memory.
	for _, want := range []string{
		"satrain_train_loss", "satrain_validation_loss",
		"satrain_topk_expected_return_mean", "satrain_topk_expected_return_min",
		"satrain_phase_duration_seconds", "satrain_iteration_duration_seconds",
		"satrain_sequences_scored_total", "satrain_sequences_trained_total",
		"satrain_device_memory_allocated_bytes", "satrain_device_memory_peak_bytes",
	} {
		if !used[want] {
			t.Errorf("dashboard shows no %s", want)
		}
	}

	var pc promConfig
	loadYAML(t, "docker/prometheus/prometheus.yml", &pc)
	for _, rf := range pc.RuleFiles {
		var rules ruleFile
		loadYAML(t, filepath.Join("docker/prometheus", rf), &rules)
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				for _, m := range metricsIn(r.Expr, exported) {
					if !exported[m] {
						t.Errorf("%s rule %s uses %s, which the trainer does not export", rf, r.Alert+r.Record, m)
					}
				}
			}
		}
	}
}

// TestPromtool runs Debian's promtool on the Prometheus config (which loads
// the alert rules) and on a rule file made of every dashboard query, so the
// dashboard's PromQL is syntax-checked too.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	cfg, _ := filepath.Abs(filepath.Join(repoRoot, "docker/prometheus/prometheus.yml"))
	if out, err := exec.Command(promtool, "check", "config", cfg).CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}

	// Grafana variables replaced by values of the same syntactic kind.
	vars := map[string]string{"__rate_interval": "1m", "__interval": "1m", "__range": "1h", "instance": ".*"}
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, q := range dashboardQueries(t) {
		expr := grafanaVarRE.ReplaceAllStringFunc(q.expr, func(m string) string {
			name := grafanaVarRE.FindStringSubmatch(m)[1]
			v, ok := vars[name]
			if !ok {
				t.Errorf("dashboard %s uses unknown variable $%s", q.where, name)
			}
			return v
		})
		if strings.HasPrefix(q.where, "variable") {
			// label_values(...) is Grafana syntax; check its selector.
			inner := strings.TrimSuffix(strings.TrimPrefix(expr, "label_values("), ")")
			if i := strings.LastIndex(inner, ","); i >= 0 {
				inner = inner[:i]
			}
			expr = inner
		}
		rules = append(rules, rule{fmt.Sprintf("dashboard:query_%d", i), expr})
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the dashboard queries: %v\n%s\n%s", err, out, b)
	}
}
