//go:build !berth_lean

package image

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/docker/cli/cli/config"
	clitypes "github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// RegistryOptions says how to reach registries.
type RegistryOptions struct {
	// TLSVerify=false allows plain HTTP and unverified TLS for every registry, like podman's
	// --tls-verify=false.
	TLSVerify *bool
	// InsecureRegistries are registry hosts ("host:port") reached like TLSVerify=false. The
	// store's registries.json ("insecure-registries") adds to them; localhost and loopback
	// addresses are always allowed plain HTTP, as Docker does.
	InsecureRegistries []string
	// Keychain supplies credentials; nil means ~/.docker/config.json ($DOCKER_CONFIG) with
	// its credential helpers, which is where `berth login` writes.
	Keychain authn.Keychain
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
}

// registryConfig is <root>/registries.json.
type registryConfig struct {
	InsecureRegistries []string `json:"insecure-registries"`
}

func (s *Store) insecure(host string, o RegistryOptions) bool {
	if o.TLSVerify != nil && !*o.TLSVerify {
		return true
	}
	list := o.InsecureRegistries
	if b, err := os.ReadFile(filepath.Join(s.root, "registries.json")); err == nil {
		var rc registryConfig
		if json.Unmarshal(b, &rc) == nil {
			list = append(list, rc.InsecureRegistries...)
		}
	}
	for _, r := range list {
		if strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(r, "http://"), "https://"), "/") == host {
			return true
		}
	}
	return false
}

// reference parses ref and applies the insecure-registry policy to it.
func (s *Store) reference(ref string, o RegistryOptions) (name.Reference, error) {
	r, err := ParseReference(ref, false)
	if err != nil {
		return nil, err
	}
	if s.insecure(r.Context().RegistryStr(), o) {
		return ParseReference(ref, true)
	}
	return r, nil
}

func (s *Store) remoteOptions(ctx context.Context, reg name.Registry, o RegistryOptions) []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(s.transport(reg, o)),
		remote.WithUserAgent("berth"),
	}
}

func (s *Store) transport(reg name.Registry, o RegistryOptions) http.RoundTripper {
	if o.Transport != nil {
		return o.Transport
	}
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{KeepAlive: 30e9}).DialContext
	t.MaxIdleConnsPerHost = 8
	if s.insecure(reg.RegistryStr(), o) {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for by --tls-verify=false / insecure-registries
	}
	return t
}

// HostPlatform is the platform images are picked for by default.
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// ParsePlatform parses "os/arch[/variant]".
func ParsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
	}
	return *p, nil
}

func platformMatches(have *v1.Platform, want v1.Platform) bool {
	if have == nil {
		return false
	}
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	if want.Variant == "" || have.Variant == want.Variant {
		return true
	}
	// An unstated variant is the architecture's baseline.
	return have.Variant == "" && ((want.Architecture == "arm64" && want.Variant == "v8") || (want.Architecture == "arm" && want.Variant == "v7"))
}

// credentialKey is where config.json files credentials for a registry; Docker Hub's entry
// keeps its historical URL.
func credentialKey(reg string) string {
	if reg == dockerHub || reg == "docker.io" || reg == "registry-1.docker.io" {
		return "https://index.docker.io/v1/"
	}
	return reg
}

// Login checks username and password against the registry server (a host, "docker.io" if
// empty) and saves them in ~/.docker/config.json, or the credential helper it names.
func (s *Store) Login(ctx context.Context, server, username, password string, o RegistryOptions) error {
	if server == "" {
		server = "docker.io"
	}
	server = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://"), "/")
	if server == "docker.io" || server == "index.docker.io/v1" {
		server = dockerHub
	}
	nopts := []name.Option{}
	if s.insecure(server, o) {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(server, nopts...)
	if err != nil {
		return fmt.Errorf("login: invalid registry %q: %w", server, err)
	}
	if username == "" || password == "" {
		return errors.New("login: username and password are required")
	}
	auth := &authn.Basic{Username: username, Password: password}
	tr, err := transport.NewWithContext(ctx, reg, auth, s.transport(reg, o), []string{reg.Scope(transport.PullScope)})
	if err != nil {
		return fmt.Errorf("login to %s: %w", server, err)
	}
	// Basic-auth registries hand out no token, so the credentials are only tried by a
	// request.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("login to %s: %w", server, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("login to %s: unauthorized: incorrect username or password", server)
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("login to %s: registry answered %s", server, resp.Status)
	}
	cf, err := config.Load(config.Dir())
	if err != nil {
		return fmt.Errorf("login: read %s: %w", config.Dir(), err)
	}
	key := credentialKey(server)
	if err := cf.GetCredentialsStore(key).Store(clitypes.AuthConfig{ServerAddress: key, Username: username, Password: password}); err != nil {
		return fmt.Errorf("login: store credentials for %s: %w", server, err)
	}
	if err := cf.Save(); err != nil {
		return fmt.Errorf("login: save %s: %w", cf.Filename, err)
	}
	return nil
}

// Logout forgets the credentials saved for server.
func Logout(server string) error {
	if server == "" || server == "docker.io" {
		server = dockerHub
	}
	cf, err := config.Load(config.Dir())
	if err != nil {
		return fmt.Errorf("logout: read %s: %w", config.Dir(), err)
	}
	key := credentialKey(server)
	if _, ok := cf.AuthConfigs[key]; !ok && cf.CredentialsStore == "" && cf.CredentialHelpers[key] == "" {
		return fmt.Errorf("logout: not logged in to %s", server)
	}
	if err := cf.GetCredentialsStore(key).Erase(key); err != nil {
		return fmt.Errorf("logout: erase credentials for %s: %w", server, err)
	}
	return cf.Save()
}
