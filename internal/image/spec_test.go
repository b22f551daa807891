package image_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/image/imagetest"
)

func TestApplyConfig(t *testing.T) {
	cf := &v1.ConfigFile{OS: "linux", Architecture: "amd64", Author: "me", Config: v1.Config{
		Entrypoint:   []string{"/entry"},
		Cmd:          []string{"--flag", "x"},
		Env:          []string{"PATH=/custom/bin", "FOO=bar"},
		WorkingDir:   "/work",
		User:         "app:wheel",
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}},
		Volumes:      map[string]struct{}{"/data": {}},
		StopSignal:   "SIGQUIT",
		Labels:       map[string]string{"a": "b", "keep": "label"},
	}}
	spec := &specs.Spec{Process: &specs.Process{Env: []string{"PATH=/default", "TERM=xterm"}, Cwd: "/"},
		Annotations: map[string]string{"keep": "engine"}}
	user, err := image.ApplyConfig(spec, cf)
	if err != nil {
		t.Fatal(err)
	}
	if user != "app:wheel" {
		t.Errorf("user = %q", user)
	}
	if !reflect.DeepEqual(spec.Process.Args, []string{"/entry", "--flag", "x"}) {
		t.Errorf("args = %v", spec.Process.Args)
	}
	if !reflect.DeepEqual(spec.Process.Env, []string{"PATH=/custom/bin", "TERM=xterm", "FOO=bar"}) {
		t.Errorf("env = %v", spec.Process.Env)
	}
	if spec.Process.Cwd != "/work" {
		t.Errorf("cwd = %q", spec.Process.Cwd)
	}
	want := map[string]string{
		"a": "b", "keep": "engine",
		image.AnnotationStopSignal: "SIGQUIT", image.AnnotationExposedPorts: "53/udp,80/tcp",
		image.AnnotationImageVolumes: "/data", image.AnnotationOS: "linux", image.AnnotationArchitecture: "amd64",
		image.AnnotationAuthor: "me", image.AnnotationImageUser: "app:wheel",
	}
	if !reflect.DeepEqual(spec.Annotations, want) {
		t.Errorf("annotations = %v", spec.Annotations)
	}

	// An image without env or workdir still gets a PATH and "/".
	spec2 := &specs.Spec{}
	if _, err := image.ApplyConfig(spec2, &v1.ConfigFile{}); err != nil {
		t.Fatal(err)
	}
	if spec2.Process.Cwd != "/" || !reflect.DeepEqual(spec2.Process.Env, []string{"PATH=" + image.DefaultPath}) {
		t.Errorf("defaults: %+v", spec2.Process)
	}
	if _, err := image.ApplyConfig(&specs.Spec{}, &v1.ConfigFile{Config: v1.Config{Env: []string{"NOEQUALS"}}}); err == nil {
		t.Errorf("a malformed Env entry was accepted")
	}
}

func TestResolveUser(t *testing.T) {
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc/group"), []byte("root:x:0:\napp:x:1000:\nwheel:x:10:app\naudio:x:29:other,app\n"), 0o644)
	cases := map[string]specs.User{
		"":          {UID: 0, GID: 0},
		"app":       {UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 29}},
		"app:wheel": {UID: 1000, GID: 10},
		"1000":      {UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 29}},
		"4242:77":   {UID: 4242, GID: 77},
	}
	for in, want := range cases {
		got, err := image.ResolveUser(rootfs, in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ResolveUser(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := image.ResolveUser(rootfs, "nobody"); err == nil || !strings.Contains(err.Error(), "unable to find user nobody") {
		t.Errorf("unknown user: %v", err)
	}
	// A passwd symlinked to the host's file is read inside the rootfs, not followed out.
	evil := t.TempDir()
	os.MkdirAll(filepath.Join(evil, "etc"), 0o755)
	os.Symlink("/etc/passwd", filepath.Join(evil, "etc/passwd"))
	if _, err := image.ResolveUser(evil, "root"); err == nil {
		t.Errorf("ResolveUser followed /etc/passwd out of the rootfs")
	}
}

const testHtpasswd = "berth:$2b$05$J93wbFx9NR3XAqeJeEmQNO/eUBg3dMUsPUX20wLgP3V94yVMvFdE.\n" // s3cret-pw

func TestLoginPullPushWithAuth(t *testing.T) {
	reg := imagetest.StartRegistry(t, testHtpasswd)
	home := t.TempDir()
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, ".docker"))
	root := t.TempDir()

	_, errOut, err := berthRun(root, strings.NewReader("wrong\n"), "login", "-u", "berth", "--password-stdin", reg.Addr)
	if err == nil || !strings.Contains(errOut, "incorrect username or password") {
		t.Errorf("login with a wrong password: %v %q", err, errOut)
	}
	if out, errOut, err := berthRun(root, strings.NewReader("s3cret-pw\n"), "login", "-u", "berth", "--password-stdin", reg.Addr); err != nil || out != "Login Succeeded\n" {
		t.Fatalf("login: %v %q %q", err, out, errOut)
	}
	cfg, err := os.ReadFile(filepath.Join(home, ".docker", "config.json"))
	if err != nil || !strings.Contains(string(cfg), reg.Addr) {
		t.Fatalf("config.json after login: %s %v", cfg, err)
	}

	// With the saved credentials, berth pushes and pulls.
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "etc/hostname"), []byte("auth\n"), 0o644)
	berth(t, root, "import", rootfs, reg.Ref("auth/img:1"))
	if out := berth(t, root, "push", "-q", reg.Ref("auth/img:1")); !strings.HasPrefix(out, "1: digest: sha256:") {
		t.Errorf("push with credentials: %q", out)
	}
	s := openStore(t)
	if _, err := s.Pull(context.Background(), reg.Ref("auth/img:1"), image.PullOptions{}); err != nil {
		t.Errorf("pull with credentials from config.json: %v", err)
	}

	if out := berth(t, root, "logout", reg.Addr); out != "Removing login credentials for "+reg.Addr+"\n" {
		t.Errorf("logout: %q", out)
	}
	s2 := openStore(t)
	_, err = s2.Pull(context.Background(), reg.Ref("auth/img:1"), image.PullOptions{})
	if err == nil || !strings.Contains(strings.ToUpper(err.Error()), "UNAUTHORIZED") {
		t.Errorf("pull after logout: %v", err)
	}
	checkStoreClean(t, s2)
}

func TestPullProgressOnTerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skipf("script(1) from bsdutils is needed to give berth a terminal: %v", err)
	}
	reg := imagetest.StartRegistry(t, "")
	img := imagetest.Image(t, imagetest.BusyboxLayers(t), imagetest.HostPlatform())
	imagetest.Push(t, reg.Ref("tty/bb:1"), img)
	root := t.TempDir()
	m, _ := img.Manifest()
	// On a terminal: one line per layer, finishing as "Pull complete".
	out, err := exec.Command(script, "-qec", berthBin+" --root "+root+" pull "+reg.Ref("tty/bb:1"), "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("pull under script: %v\n%s", err, out)
	}
	for _, l := range m.Layers {
		if !strings.Contains(string(out), l.Digest.Hex[:12]+": Pull complete") {
			t.Errorf("terminal output lacks %s: Pull complete:\n%s", l.Digest.Hex[:12], out)
		}
	}
	if !strings.Contains(string(out), "Status: Downloaded newer image for "+reg.Ref("tty/bb:1")) {
		t.Errorf("terminal output lacks the status line:\n%s", out)
	}
	// Not a terminal: no progress lines at all.
	root2 := t.TempDir()
	_, errOut, err := berthRun(root2, nil, "pull", reg.Ref("tty/bb:1"))
	if err != nil || strings.Contains(errOut, "Pull complete") || strings.Contains(errOut, "\x1b[") {
		t.Errorf("pull without a terminal printed progress: %v %q", err, errOut)
	}
}
