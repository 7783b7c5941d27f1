// Command pulumi-language-python is a minimal Pulumi language host for Python programs.
//
// Why it exists: the official host lives in its own Go module, which the Go module proxy reachable
// from these machines does not serve (every version and commit answers 403). The CLI and the SDK
// module are served, so Modelplane builds this small host against the SDK's gRPC definitions
// instead. It does what a Python project and a Python policy pack need:
//
//   - Run: starts the SDK's own `pulumi-language-python-exec` script (shipped in the sdk/v3 module
//     and copied beside this binary by the bootstrap) with the virtualenv's interpreter;
//   - RunPlugin: starts a Python policy pack (`python -m pulumi.policy`) or a Python plugin;
//   - GetRequiredPackages: lists the provider plugins that installed Pulumi packages ask for
//     (their `pulumi-plugin.json`), so the engine can resolve them up front;
//   - Handshake, GetPluginInfo, About, InstallDependencies (dependencies are the bootstrap's job).
//
// Everything else answers Unimplemented, which the engine tolerates.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"google.golang.org/grpc"
	pbempty "google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "3.0.0"

// bailExitCode is what the Python SDK exits with after it has already reported the error itself.
const bailExitCode = 32

func main() {
	engineAddress := ""
	for _, arg := range os.Args[1:] {
		// Flags (-tracing=..., -root=...) are accepted and ignored: options arrive in ProgramInfo.
		if !strings.HasPrefix(arg, "-") {
			engineAddress = arg
		}
	}
	self, err := os.Executable()
	if err != nil {
		cmdutil.Exit(fmt.Errorf("locating the language host: %w", err))
	}
	execScript := filepath.Join(filepath.Dir(self), "pulumi-language-python-exec")
	if _, err := os.Stat(execScript); err != nil {
		cmdutil.Exit(fmt.Errorf("%s is missing beside the language host; rerun scripts/bootstrap", execScript))
	}
	host := &languageHost{engineAddress: engineAddress, execScript: execScript}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("starting the language host: %w", err))
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host stopped: %w", err))
	}
}

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu            sync.Mutex
	engineAddress string
	execScript    string
}

func (h *languageHost) Handshake(_ context.Context,
	req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *languageHost) GetPluginInfo(context.Context, *pbempty.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// python returns the interpreter for a program: the virtualenv named by the project's runtime
// options (relative to the project root), else PULUMI_PYTHON_CMD, else python3 on PATH.
func python(info *pulumirpc.ProgramInfo) (string, []string) {
	env := os.Environ()
	venv := ""
	if info != nil && info.GetOptions() != nil {
		if v, ok := info.GetOptions().AsMap()["virtualenv"].(string); ok && v != "" {
			venv = v
			if !filepath.IsAbs(venv) {
				venv = filepath.Join(info.GetRootDirectory(), venv)
			}
		}
	}
	if venv == "" {
		venv = os.Getenv("PULUMI_RUNTIME_VIRTUALENV")
	}
	if venv != "" {
		bin := filepath.Join(venv, "bin")
		env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
			"VIRTUAL_ENV="+venv, "PULUMI_RUNTIME_VIRTUALENV="+venv)
		return filepath.Join(bin, "python"), env
	}
	if cmd := os.Getenv("PULUMI_PYTHON_CMD"); cmd != "" {
		return cmd, env
	}
	return "python3", env
}

func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	h.mu.Lock()
	engine := h.engineAddress
	h.mu.Unlock()

	info := req.GetInfo()
	interpreter, env := python(info)
	args := []string{"-u", h.execScript}
	add := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", engine)
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", fmt.Sprintf("%v", req.GetDryRun()))
	add("parallel", fmt.Sprint(req.GetParallel()))
	add("organization", req.GetOrganization())
	if info != nil {
		add("root_directory", info.GetRootDirectory())
	}
	program := req.GetProgram()
	if info != nil && info.GetProgramDirectory() != "" {
		program = filepath.Join(info.GetProgramDirectory(), info.GetEntryPoint())
	}
	if program == "" {
		program = "."
	}
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	// Empty, never null: the exec script iterates over both.
	configMap := req.GetConfig()
	if configMap == nil {
		configMap = map[string]string{}
	}
	secretKeyList := req.GetConfigSecretKeys()
	if secretKeyList == nil {
		secretKeyList = []string{}
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, fmt.Errorf("serialising configuration: %w", err)
	}
	secretKeys, err := json.Marshal(secretKeyList)
	if err != nil {
		return nil, fmt.Errorf("serialising secret configuration keys: %w", err)
	}
	env = append(env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))

	cmd := exec.CommandContext(ctx, interpreter, args...)
	cmd.Env = env
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if req.GetPwd() != "" {
		cmd.Dir = req.GetPwd()
	}
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == bailExitCode {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("could not start %s: %v", interpreter, err),
		}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// pluginManifest is the part of a Python package's pulumi-plugin.json that names its provider.
type pluginManifest struct {
	Resource bool   `json:"resource"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Server   string `json:"server"`
}

// listPluginsScript prints the pulumi-plugin.json of every installed distribution as JSON lines.
const listPluginsScript = `
import importlib.metadata as md, json, sys
for dist in md.distributions():
    for f in dist.files or []:
        if f.name == "pulumi-plugin.json":
            try:
                sys.stdout.write(json.dumps(json.loads(f.read_text())) + "\n")
            except Exception:
                pass
`

func (h *languageHost) GetRequiredPackages(ctx context.Context,
	req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	interpreter, env := python(req.GetInfo())
	cmd := exec.CommandContext(ctx, interpreter, "-c", listPluginsScript)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing Pulumi packages with %s: %w: %s", interpreter, err, stderr.String())
	}
	seen := map[string]bool{}
	var packages []*pulumirpc.PackageDependency
	for _, line := range strings.Split(string(out), "\n") {
		var manifest pluginManifest
		if strings.TrimSpace(line) == "" || json.Unmarshal([]byte(line), &manifest) != nil {
			continue
		}
		if !manifest.Resource || manifest.Name == "" || seen[manifest.Name] {
			continue
		}
		seen[manifest.Name] = true
		packages = append(packages, &pulumirpc.PackageDependency{
			Name: manifest.Name, Kind: "resource", Version: manifest.Version, Server: manifest.Server,
		})
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: packages}, nil
}

func (h *languageHost) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	// The virtualenv is created and filled by Modelplane's bootstrap (scripts/bootstrap).
	return server.Send(&pulumirpc.InstallDependenciesResponse{
		Stdout: []byte("dependencies are installed by scripts/bootstrap\n"),
	})
}

func (h *languageHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	interpreter, env := python(req.GetInfo())
	cmd := exec.CommandContext(ctx, interpreter, "-c", "import sys; print(sys.version.split()[0])")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("asking %s for its version: %w", interpreter, err)
	}
	return &pulumirpc.AboutResponse{Executable: interpreter, Version: strings.TrimSpace(string(out))}, nil
}

func (h *languageHost) GetProgramDependencies(context.Context,
	*pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
}

// RunPlugin starts a plugin written in Python: a policy pack (`python -m pulumi.policy`) or a
// provider (`python <program directory>`), streaming its output back to the engine.
func (h *languageHost) RunPlugin(req *pulumirpc.RunPluginRequest,
	server pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	info := req.GetInfo()
	interpreter, env := python(info)
	env = append(env, req.GetEnv()...)
	programDir := req.GetProgram()
	if info != nil && info.GetProgramDirectory() != "" {
		programDir = info.GetProgramDirectory()
	}
	var args []string
	if req.GetKind() == "analyzer" {
		// pulumi.policy takes the engine address (the engine's only argument), then the pack's directory.
		args = append(append([]string{"-u", "-m", "pulumi.policy"}, req.GetArgs()...), programDir)
	} else {
		args = append([]string{"-u", programDir}, req.GetArgs()...)
	}
	cmd := exec.CommandContext(server.Context(), interpreter, args...)
	cmd.Env = env
	cmd.Dir = programDir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", interpreter, err)
	}
	var sendMu sync.Mutex
	send := func(resp *pulumirpc.RunPluginResponse) {
		sendMu.Lock()
		defer sendMu.Unlock()
		_ = server.Send(resp)
	}
	var wg sync.WaitGroup
	pump := func(r io.Reader, wrap func([]byte) *pulumirpc.RunPluginResponse) {
		defer wg.Done()
		buf := make([]byte, 32*1024)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				send(wrap(append([]byte(nil), buf[:n]...)))
			}
			if err != nil {
				return
			}
		}
	}
	wg.Add(2)
	go pump(stdout, func(b []byte) *pulumirpc.RunPluginResponse {
		return &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: b}}
	})
	go pump(stderr, func(b []byte) *pulumirpc.RunPluginResponse {
		return &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: b}}
	})
	wg.Wait()
	code := int32(0)
	if err := cmd.Wait(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return err
		}
		code = int32(exitErr.ExitCode())
	}
	send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: code}})
	return nil
}
