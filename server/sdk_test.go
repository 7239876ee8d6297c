package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

// sdkDir holds the Node project of TestOpenAISDK: package.json pins the
// official openai package, package-lock.json locks it, sdk.test.mjs is the
// test itself.
var sdkDir = filepath.Join("testdata", "openai-sdk")

const (
	keySDK        = "sk-sdk-0123456789abcdefghij"
	keySDKLimited = "sk-sdk-limited-0123456789abcdef"
)

// TestOpenAISDK puts the official OpenAI Node SDK in front of the gateway and
// the mock upstream: chat completions (plain and streamed), the model list,
// embeddings (base64, as the SDK asks by default), and the 401 and 429
// answers, which the SDK must turn into AuthenticationError and
// RateLimitError with the retry headers it reads. The assertions are in
// testdata/openai-sdk/sdk.test.mjs; this test starts the servers, runs it,
// and checks the access log it leaves.
//
// It is skipped without Node.js. With Node.js but no installed SDK it runs
// "npm ci" first, and fails if that fails.
func TestOpenAISDK(t *testing.T) {
	node, dir := sdkSetup(t)

	mockLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The pause between events spreads the streamed chunks out in time, as
	// a model would; the script logs when each one arrived.
	mock := mockupstream.New(mockupstream.Config{ChunkDelay: 20 * time.Millisecond})
	go mock.Serve(mockLn)
	t.Cleanup(func() { mock.Shutdown() })

	g := startGateway(t, server.Config{
		KeysFile: keysFile(t, "sdk:"+keySDK+"\n"+
			"sdk-limited:"+keySDKLimited+"  rpm=1\n"),
		Upstreams: []string{"http://" + mockLn.Addr().String()},
	})

	runSDK(t, node, dir, "sdk.test.mjs",
		"OPENAI_BASE_URL="+g.url+"/v1",
		"AUTHGATE_KEY="+keySDK,
		"AUTHGATE_LIMITED_KEY="+keySDKLimited,
		"AUTHGATE_LIMITED_ID=sdk-limited",
		"AUTHGATE_MODEL="+mockupstream.DefaultModel,
	)

	// Every request sdk.test.mjs makes, each as often as it makes it:
	// KEY_ID | METHOD PATH | STATUS, after the timestamp.
	want := map[string]int{
		"sdk | POST /v1/chat/completions | 200":         2, // plain and streamed
		"sdk | GET /v1/models | 200":                    1,
		"sdk | GET /v1/models/mock-model | 200":         1,
		"sdk | POST /v1/embeddings | 200":               2, // base64 and float
		"- | POST /v1/chat/completions | 401":           1, // the wrong key
		"sdk-limited | POST /v1/chat/completions | 200": 1,
		"sdk-limited | POST /v1/chat/completions | 429": 1,
	}
	got := map[string]int{}
	lines := g.logLines(t)
	for _, line := range lines {
		_, rest, ok := strings.Cut(line, " | ")
		if !ok {
			t.Fatalf("access log line %q is not TIMESTAMP | KEY_ID | METHOD PATH | STATUS", line)
		}
		got[rest]++
	}
	if !maps.Equal(got, want) {
		t.Errorf("access log:\n%s\nwant these lines (after the timestamp), each as many times as shown:\n%s",
			strings.Join(lines, "\n"), formatCounts(want))
	}
}

// sdkSetup finds node and installs the SDK: it returns node's path and the
// Node project's directory. Without node it skips the test, outside CI.
func sdkSetup(t *testing.T) (node, dir string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node not found, but CI must run the OpenAI SDK end-to-end test: .ci/run installs Node.js")
		}
		t.Skip("node not found: the OpenAI SDK end-to-end test needs Node.js (CI installs it)")
	}
	dir, err = filepath.Abs(sdkDir)
	if err != nil {
		t.Fatal(err)
	}
	installSDK(t, dir)
	return node, dir
}

// runSDK runs "node --test script" in dir with env added, within a minute,
// and fails t if it fails.
func runSDK(t *testing.T, node, dir, script string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", script)
	cmd.Dir = dir
	cmd.Env = append(sdkEnv(), env...)
	// node --test runs the file in a child process, which may hold the
	// output pipe after its parent was killed on timeout.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("node --test %s did not finish within a minute:\n%s", script, out)
	}
	if err != nil {
		t.Fatalf("node --test %s: %v\n%s", script, err, out)
	}
	t.Logf("node --test %s:\n%s", script, out)
}

// installSDK runs "npm ci" in dir unless node_modules already holds the
// openai version that package.json pins.
func installSDK(t *testing.T, dir string) {
	t.Helper()
	pinned := readOpenAIVersion(t, filepath.Join(dir, "package.json"), true)
	installed := readOpenAIVersion(t, filepath.Join(dir, "node_modules", "openai", "package.json"), false)
	if installed == pinned {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("node is installed but npm is not: cannot install the OpenAI SDK in %s", dir)
	}
	t.Logf("installing openai %s in %s (installed: %q)", pinned, dir, installed)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.Env = sdkEnv()
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("npm ci in %s did not finish within 3 minutes:\n%s", dir, out)
	}
	if err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	if v := readOpenAIVersion(t, filepath.Join(dir, "node_modules", "openai", "package.json"), true); v != pinned {
		t.Fatalf("npm ci installed openai %s, package.json pins %s", v, pinned)
	}
}

// readOpenAIVersion returns the openai version in a package.json: the
// dependency of the test project, or the package's own version. A missing
// file is fatal if required, else "".
func readOpenAIVersion(t *testing.T, path string, required bool) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !required {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Name         string            `json:"name"`
		Version      string            `json:"version"`
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("cannot parse %s: %v", path, err)
	}
	if p.Name == "openai" {
		return p.Version
	}
	v := p.Dependencies["openai"]
	if v == "" {
		t.Fatalf("%s has no openai dependency", path)
	}
	return v
}

// sdkEnv is the environment for node and npm: this process's, without the
// OPENAI_ variables a developer may have set (an organization or project
// header, another base URL), which would reach the SDK.
func sdkEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "OPENAI_")
	})
}

// formatCounts lists counts as "  line ×N" lines in sorted order.
func formatCounts(m map[string]int) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "  %s ×%d\n", k, m[k])
	}
	return b.String()
}
