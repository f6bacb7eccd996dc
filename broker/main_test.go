package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test re-run this test binary as the broker itself (main()).
func TestMain(m *testing.M) {
	if os.Getenv("LOCAL_BROKER_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func brokerCommand(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append([]string{"LOCAL_BROKER_TEST_RUN_MAIN=1", "PATH=" + os.Getenv("PATH")}, env...)
	return cmd
}

// startCLI starts cmd, killed when the test ends, with its stdout to read and its stderr
// collected.
func startCLI(t *testing.T, cmd *exec.Cmd) (io.Reader, *bytes.Buffer) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return stdout, stderr
}

// The test harness contract: one stdout line with the real port, clean exit on SIGTERM,
// and the secrets never printed.
func TestCLIListeningLineAndSIGTERM(t *testing.T) {
	const password, key = "cli-gw-password-123", "cli-device-key-456"
	cmd := brokerCommand(t, []string{"BROKER_GATEWAY_PASSWORD=" + password, "BROKER_DEVICE_SIGNING_KEY=" + key},
		"--addr", "127.0.0.1:0")
	stdout, stderr := startCLI(t, cmd)

	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var first string
	select {
	case first = <-lines:
	case <-time.After(10 * time.Second):
		t.Fatalf("no listening line; stderr:\n%s", stderr.String())
	}
	var ev struct{ Event, Addr string }
	if err := json.Unmarshal([]byte(first), &ev); err != nil || ev.Event != "listening" ||
		!strings.HasPrefix(ev.Addr, "127.0.0.1:") || strings.HasSuffix(ev.Addr, ":0") {
		t.Fatalf("stdout line %q", first)
	}

	// The printed address is live and the password from the environment is in force.
	tb := &testBroker{addr: ev.Addr}
	if _, _, err := dialV5(t, tb.addr, "gw-cli", v5Options{username: gatewayUsername, password: password}); err != nil {
		t.Fatalf("gateway connect to %s: %v", ev.Addr, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if rest, ok := <-lines; ok {
		t.Errorf("more than one stdout line: %q", rest)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v; stderr:\n%s", err, stderr.String())
	}
	logs := stderr.String()
	if strings.Contains(logs, password) || strings.Contains(logs, key) {
		t.Fatal("a secret was logged")
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("stderr line is not JSON: %q", line)
		}
	}
	if !strings.Contains(logs, `"counters"`) {
		t.Error("counters not logged at shutdown")
	}
}

func TestCLIRequiresGatewayPassword(t *testing.T) {
	cmd := brokerCommand(t, nil, "--addr", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "--gateway-password") || !strings.Contains(string(out), "BROKER_GATEWAY_PASSWORD") {
		t.Fatalf("message does not name the flag and the variable: %s", out)
	}
}

func TestCLIWarnsWhenDeviceAuthDisabled(t *testing.T) {
	cmd := brokerCommand(t, []string{"BROKER_ADDR=127.0.0.1:0"}, "--gateway-password", "pw")
	stdout, stderr := startCLI(t, cmd)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no listening line: %v; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(line, `"listening"`) {
		t.Fatalf("stdout %q", line)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGINT: %v", err)
	}
	if n := strings.Count(stderr.String(), "device authentication disabled: local development only"); n != 1 {
		t.Fatalf("warning logged %d times; stderr:\n%s", n, stderr.String())
	}
}

// A TLS listener without its certificate and key is a setup error, not a plain listener.
func TestCLITLSNeedsCertificateAndKey(t *testing.T) {
	cmd := brokerCommand(t, []string{"BROKER_ADDR=127.0.0.1:0"}, "--gateway-password", "pw", "--tls-addr", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "certificate and key") {
		t.Fatalf("message does not say what is missing: %s", out)
	}
}
