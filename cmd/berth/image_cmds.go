//go:build !berth_lean

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/image"
)

// Docker's commands and their `docker image` twins: each constructor is called twice
// because a cobra command has one parent.
func registerImageCommands() {
	imageCmd := &cobra.Command{Use: "image", Short: "Manage images", Args: cobra.NoArgs}
	imageCmd.AddCommand(newImagesCmd("ls"), newPullCmd(), newPushCmd(), newTagCmd(), newRmiCmd("rm"),
		newPruneCmd(), newInspectCmd(), newHistoryCmd(), newSaveCmd(), newLoadCmd(), newImportCmd())
	rootCmd.AddCommand(imageCmd, newImagesCmd("images"), newPullCmd(), newPushCmd(), newTagCmd(), newRmiCmd("rmi"),
		newSaveCmd(), newLoadCmd(), newImportCmd(), newLoginCmd(), newLogoutCmd())
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

type registryFlags struct {
	tlsVerify bool
	insecure  []string
}

func (r *registryFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&r.tlsVerify, "tls-verify", true, "require HTTPS and verify certificates (false allows plain HTTP)")
	cmd.Flags().StringSliceVar(&r.insecure, "insecure-registry", nil, "registry host:port reachable over plain HTTP (repeatable)")
}

func (r *registryFlags) options() image.RegistryOptions {
	o := image.RegistryOptions{InsecureRegistries: r.insecure}
	if !r.tlsVerify {
		f := false
		o.TLSVerify = &f
	}
	return o
}

func newPullCmd() *cobra.Command {
	var rf registryFlags
	var platform string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			o := image.PullOptions{RegistryOptions: rf.options()}
			if platform != "" {
				p, err := image.ParsePlatform(platform)
				if err != nil {
					return err
				}
				o.Platform = &p
			}
			if !quiet {
				o.Progress = image.NewProgress(os.Stderr)
			}
			ref := args[0]
			canon, err := image.CanonicalName(ref)
			if err != nil {
				return err
			}
			if last := ref[strings.LastIndex(ref, "/")+1:]; !strings.ContainsAny(last, ":@") && !quiet {
				fmt.Fprintln(os.Stderr, "Using default tag: latest")
			}
			before, _ := s.Get(canon)
			ctx, cancel := signalContext()
			defer cancel()
			img, err := s.Pull(ctx, ref, o)
			if err != nil {
				return err
			}
			if !quiet {
				status := "Downloaded newer image for "
				if before != nil && before.Digest == img.Digest {
					status = "Image is up to date for "
				}
				fmt.Fprintf(os.Stderr, "Status: %s%s\n", status, image.FamiliarName(canon))
			}
			fmt.Println(canon)
			return nil
		},
	}
	rf.add(cmd)
	cmd.Flags().StringVar(&platform, "platform", "", "pull the image for this platform (os/arch[/variant]) from a multi-platform index")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "suppress progress output")
	return cmd
}

func newPushCmd() *cobra.Command {
	var rf registryFlags
	var quiet bool
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG] [DESTINATION]",
		Short: "Upload an image to a registry",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			dst := ""
			if len(args) == 2 {
				dst = args[1]
			}
			o := image.PushOptions{RegistryOptions: rf.options()}
			if !quiet {
				o.Progress = image.NewProgress(os.Stderr)
			}
			ctx, cancel := signalContext()
			defer cancel()
			res, err := s.Push(ctx, args[0], dst, o)
			if err != nil {
				return err
			}
			fmt.Printf("%s: digest: %s size: %d\n", res.Tag, res.Digest, res.Size)
			return nil
		},
	}
	rf.add(cmd)
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "suppress progress output")
	return cmd
}

func created(t time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "N/A"
	}
	return humanDuration(time.Since(t)) + " ago"
}

func newImagesCmd(use string) *cobra.Command {
	var quiet, noTrunc, digests, all bool
	var format string
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS] [REPOSITORY[:TAG]]",
		Short: "List images",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			imgs, err := s.List()
			if err != nil {
				return err
			}
			var filterRepo, filterTag string
			if len(args) == 1 {
				filterRepo, filterTag = image.SplitName(image.FamiliarName(strings.TrimPrefix(args[0], "docker.io/")))
			}
			type row struct {
				Repository, Tag, ID, Digest, CreatedSince, Size string
			}
			var rows []row
			seen := map[string]bool{}
			for _, img := range imgs {
				id := img.ID.String()
				if !noTrunc {
					id = img.ID.Hex[:12]
				}
				digest := "<none>"
				if len(img.RepoDigests) > 0 {
					_, digest = image.SplitName(img.RepoDigests[0])
				}
				base := row{ID: id, Digest: digest, CreatedSince: created(img.Created), Size: image.HumanSize(img.Size)}
				names := img.Names
				if len(names) == 0 {
					r := base
					r.Repository, r.Tag = "<none>", "<none>"
					if len(img.RepoDigests) > 0 {
						r.Repository, _ = image.SplitName(image.FamiliarName(img.RepoDigests[0]))
					}
					if filterRepo == "" {
						rows = append(rows, r)
					}
					continue
				}
				for _, n := range names {
					r := base
					r.Repository, r.Tag = image.SplitName(image.FamiliarName(n))
					if filterRepo != "" && (r.Repository != filterRepo || (filterTag != "" && r.Tag != filterTag)) {
						continue
					}
					rows = append(rows, r)
				}
			}
			_ = all
			if quiet {
				for _, r := range rows {
					if !seen[r.ID] {
						seen[r.ID] = true
						fmt.Println(r.ID)
					}
				}
				return nil
			}
			if format != "" && format != "table" {
				t, err := template.New("format").Funcs(templateFuncs).Parse(strings.TrimPrefix(format, "table "))
				if err != nil {
					return fmt.Errorf("invalid --format: %w", err)
				}
				for _, r := range rows {
					if err := t.Execute(os.Stdout, r); err != nil {
						return err
					}
					fmt.Println()
				}
				return nil
			}
			w := newTable()
			if digests {
				fmt.Fprintln(w, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE")
			} else {
				fmt.Fprintln(w, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
			}
			for _, r := range rows {
				if digests {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.Digest, r.ID, r.CreatedSince, r.Size)
				} else {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.ID, r.CreatedSince, r.Size)
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "don't truncate output")
	cmd.Flags().BoolVar(&digests, "digests", false, "show digests")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show all images (berth keeps no intermediate images)")
	cmd.Flags().StringVar(&format, "format", "", "format output using a Go template ({{.Repository}}, {{.Tag}}, {{.ID}}, {{.Digest}}, {{.CreatedSince}}, {{.Size}})")
	return cmd
}

func newTagCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			return s.Tag(args[0], args[1])
		},
	}
}

func newRmiCmd(use string) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS] IMAGE [IMAGE...]",
		Short: "Remove one or more images",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			rep, err := s.Remove(args, force)
			if rep != nil {
				for _, u := range rep.Untagged {
					fmt.Println("Untagged: " + u)
				}
				for _, d := range rep.Deleted {
					fmt.Println("Deleted: " + d.String())
				}
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove the image even if it has several repositories or a container uses it")
	return cmd
}

func newPruneCmd() *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			what := "all dangling images"
			if all {
				what = "all images without at least one container associated to them"
			}
			if !confirm(force, "WARNING! This will remove "+what+".") {
				return nil
			}
			s, err := openStore()
			if err != nil {
				return err
			}
			rep, err := s.Prune(all)
			if err != nil {
				return err
			}
			if len(rep.Untagged)+len(rep.Deleted) > 0 {
				fmt.Println("Deleted Images:")
				for _, u := range rep.Untagged {
					fmt.Println("untagged: " + u)
				}
				for _, d := range rep.Deleted {
					fmt.Println("deleted: " + d.String())
				}
				fmt.Println()
			}
			fmt.Printf("Total reclaimed space: %s\n", image.HumanSize(rep.Reclaimed))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove all unused images, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt for confirmation")
	return cmd
}

func newInspectCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			var infos []*image.InspectInfo
			var errs []error
			for _, a := range args {
				img, err := s.Get(a)
				if err != nil {
					errs = append(errs, fmt.Errorf("%w", err))
					continue
				}
				in, err := s.Inspect(img)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				infos = append(infos, in)
			}
			if format != "" {
				t, err := template.New("format").Funcs(templateFuncs).Parse(format)
				if err != nil {
					return fmt.Errorf("invalid --format: %w", err)
				}
				for _, in := range infos {
					// Templates see the JSON form, as Docker's do.
					var m map[string]any
					b, _ := json.Marshal(in)
					json.Unmarshal(b, &m)
					if err := t.Execute(os.Stdout, m); err != nil {
						return err
					}
					fmt.Println()
				}
			} else {
				if infos == nil {
					infos = []*image.InspectInfo{}
				}
				b, err := json.MarshalIndent(infos, "", "    ")
				if err != nil {
					return err
				}
				fmt.Println(string(b))
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "format the output using a Go template")
	return cmd
}

func newHistoryCmd() *cobra.Command {
	var noTrunc, quiet, human bool
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] IMAGE",
		Short: "Show the history of an image",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			img, err := s.Get(args[0])
			if err != nil {
				return err
			}
			hist, err := s.History(img)
			if err != nil {
				return err
			}
			if quiet {
				for _, h := range hist {
					fmt.Println(shortOrFull(h.ID, noTrunc))
				}
				return nil
			}
			w := newTable()
			fmt.Fprintln(w, "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT")
			for _, h := range hist {
				by := strings.ReplaceAll(h.CreatedBy, "\t", " ")
				if !noTrunc && len([]rune(by)) > 45 {
					by = string([]rune(by)[:44]) + "…"
				}
				c, size := created(h.Created), image.HumanSize(h.Size)
				if !human {
					c, size = h.Created.Format(time.RFC3339), fmt.Sprint(h.Size)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", shortOrFull(h.ID, noTrunc), c, by, size, h.Comment)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "don't truncate output")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	cmd.Flags().BoolVarP(&human, "human", "H", true, "print sizes and dates in human readable format")
	return cmd
}

func shortOrFull(id string, full bool) string {
	if full || !strings.HasPrefix(id, "sha256:") {
		return id
	}
	return strings.TrimPrefix(id, "sha256:")[:12]
}

func newSaveCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			if output == "" || output == "-" {
				if image.IsTerminal(os.Stdout) {
					return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
				}
				return s.Save(os.Stdout, args)
			}
			// Written beside the target and renamed, so a failed save leaves no partial file.
			f, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".")
			if err != nil {
				return fmt.Errorf("save: %w", err)
			}
			bw := bufio.NewWriterSize(f, 1<<20)
			err = s.Save(bw, args)
			if err == nil {
				err = bw.Flush()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Chmod(f.Name(), 0o644)
			}
			if err == nil {
				err = os.Rename(f.Name(), output)
			}
			if err != nil {
				os.Remove(f.Name())
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to a file instead of STDOUT")
	return cmd
}

func newLoadCmd() *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load images from a tar archive or STDIN",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			var r io.Reader = os.Stdin
			if input != "" && input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return fmt.Errorf("load: %w", err)
				}
				defer f.Close()
				r = f
			} else if image.IsTerminal(os.Stdin) {
				return errors.New("requested load from stdin, but stdin is empty")
			}
			lines, err := s.Load(r)
			if err != nil {
				return err
			}
			if !quiet {
				for _, l := range lines {
					fmt.Println(l)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "read from a tar archive file instead of STDIN")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "suppress the load output")
	return cmd
}

func newImportCmd() *cobra.Command {
	var changes []string
	var message, platform string
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|directory|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball or a directory to create a filesystem image",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			o := image.ImportOptions{Changes: changes, Message: message}
			if len(args) == 2 {
				o.Ref = args[1]
			}
			if platform != "" {
				p, err := image.ParsePlatform(platform)
				if err != nil {
					return err
				}
				o.Platform = &p
			}
			var img *image.Image
			switch src := args[0]; {
			case src == "-":
				img, err = s.Import(os.Stdin, o)
			default:
				fi, serr := os.Stat(src)
				if serr != nil {
					return fmt.Errorf("import: %w", serr)
				}
				if fi.IsDir() {
					img, err = s.ImportDir(src, o)
				} else {
					f, oerr := os.Open(src)
					if oerr != nil {
						return fmt.Errorf("import: %w", oerr)
					}
					defer f.Close()
					img, err = s.Import(f, o)
				}
			}
			if err != nil {
				return err
			}
			fmt.Println(img.ID.String())
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL, HEALTHCHECK)")
	cmd.Flags().StringVarP(&message, "message", "m", "", "set the commit message for the imported image")
	cmd.Flags().StringVar(&platform, "platform", "", "set the platform (os/arch[/variant]) of the imported image")
	return cmd
}

func newLoginCmd() *cobra.Command {
	var rf registryFlags
	var user, pass string
	var passStdin bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Log in to a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore()
			if err != nil {
				return err
			}
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			in := bufio.NewReader(os.Stdin)
			if passStdin {
				if pass != "" {
					return errors.New("--password and --password-stdin are mutually exclusive")
				}
				if user == "" {
					return errors.New("must provide --username with --password-stdin")
				}
				b, err := io.ReadAll(in)
				if err != nil {
					return err
				}
				pass = strings.TrimRight(string(b), "\r\n")
			}
			if user == "" && image.IsTerminal(os.Stdin) {
				fmt.Print("Username: ")
				line, _ := in.ReadString('\n')
				user = strings.TrimSpace(line)
			}
			if pass == "" && image.IsTerminal(os.Stdin) {
				fmt.Print("Password: ")
				pass, err = readPassword(in)
				fmt.Println()
				if err != nil {
					return err
				}
			}
			ctx, cancel := signalContext()
			defer cancel()
			if err := s.Login(ctx, server, user, pass, rf.options()); err != nil {
				return err
			}
			fmt.Println("Login Succeeded")
			return nil
		},
	}
	rf.add(cmd)
	cmd.Flags().StringVarP(&user, "username", "u", "", "username")
	cmd.Flags().StringVarP(&pass, "password", "p", "", "password")
	cmd.Flags().BoolVar(&passStdin, "password-stdin", false, "take the password from stdin")
	return cmd
}

// readPassword reads a line from the terminal on stdin with echo off.
func readPassword(in *bufio.Reader) (string, error) {
	fd := int(os.Stdin.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", err
	}
	quiet := *t
	quiet.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, t)
	line, err := in.ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func newLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			if err := image.Logout(server); err != nil {
				return err
			}
			if server == "" {
				server = "https://index.docker.io/v1/"
			}
			fmt.Println("Removing login credentials for " + server)
			return nil
		},
	}
}
