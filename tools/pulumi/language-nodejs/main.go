// Command pulumi-language-nodejs is a minimal Pulumi language host for Node.js programs,
// written for infra/test/runbook-recovery.test.ts. Pulumi's own host is a separate Go
// module that the configured Go module proxy does not serve (it answers 403 for
// github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3), so the test would
// otherwise have no way to run a Node.js program under the real CLI.
//
// The host's part in a deployment is plumbing: the engine starts it with its own gRPC
// address, asks it which plugins the program needs and to run the program; the program
// (the real @pulumi/pulumi SDK from node_modules) then talks to the engine's resource
// monitor directly. So this host does only that: it starts
// `node [nodeargs] <@pulumi/pulumi>/cmd/run --monitor ... <program>` and reports the exit.
// It reports no required plugins, so the engine never tries to install one; providers
// must be on PATH (ambient plugins). Not implemented (the engine falls back or does not
// need them for preview/up/destroy/refresh): Handshake, InstallDependencies, About,
// GetProgramDependencies, code generation, Pack, Link.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// version is what GetPluginInfo reports; the build sets it (-X main.version=...).
var version = "0.0.0-dev"

// bailExitCode is the exit code @pulumi/pulumi's cmd/run uses when the program failed
// and the error was already reported to the engine: the engine should not print it again.
const bailExitCode = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *host) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) GetRequiredPackages(
	context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	programDir := info.GetProgramDirectory()
	if programDir == "" {
		programDir = req.GetPwd()
	}
	runScript, err := findRunScript(programDir)
	if err != nil {
		return nil, err
	}

	var args []string
	// Runtime option `nodeargs` (Pulumi.yaml: runtime.options.nodeargs), as Pulumi's host
	// reads it: extra arguments for node itself, e.g. "--import tsx".
	if opts := info.GetOptions(); opts != nil {
		if v, ok := opts.GetFields()["nodeargs"]; ok {
			args = append(args, strings.Fields(v.GetStringValue())...)
		}
	}
	args = append(args, runScript, "--monitor", req.GetMonitorAddress(), "--engine", h.engineAddress)
	for _, kv := range [][2]string{
		{"project", req.GetProject()},
		{"stack", req.GetStack()},
		{"organization", req.GetOrganization()},
		{"pwd", req.GetPwd()},
		{"root-directory", info.GetRootDirectory()},
	} {
		if kv[1] != "" {
			args = append(args, "--"+kv[0], kv[1])
		}
	}
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	if req.GetParallel() > 0 {
		args = append(args, "--parallel", fmt.Sprint(req.GetParallel()))
	}
	entry := info.GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	args = append(args, entry)
	args = append(args, req.GetArgs()...)

	config, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(req.GetConfigSecretKeys())
	if err != nil {
		return nil, err
	}

	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = req.GetPwd()
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(),
		"PULUMI_CONFIG="+string(config),
		"PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys),
		// Programs here are plain JavaScript or run through a loader given in nodeargs;
		// the SDK's own TypeScript path needs ts-node, which this project does not use.
		"PULUMI_NODEJS_TYPESCRIPT=false",
	)
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			if exit.ExitCode() == bailExitCode {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited with code %d", exit.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: "could not start node: " + err.Error()}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// findRunScript finds @pulumi/pulumi's cmd/run the way node would resolve the program's
// own require("@pulumi/pulumi"): in node_modules of the program's folder or any above it,
// so the program and the runner share one copy of the SDK.
func findRunScript(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		candidate := filepath.Join(dir, "node_modules", "@pulumi", "pulumi", "cmd", "run")
		if _, err := os.Stat(filepath.Join(candidate, "index.js")); err == nil {
			return candidate, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("@pulumi/pulumi is not installed in node_modules of the program's folder or above (npm ci)")
		}
		dir = parent
	}
}

func main() {
	// The engine passes its own gRPC address as the last argument.
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pulumi-language-nodejs <engine address>")
		os.Exit(2)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := grpc.NewServer()
	pulumirpc.RegisterLanguageRuntimeServer(srv, &host{engineAddress: os.Args[len(os.Args)-1]})
	// The engine reads the port from the first line of stdout.
	fmt.Println(lis.Addr().(*net.TCPAddr).Port)
	if err := srv.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
