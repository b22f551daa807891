// Command nsview-bench times `berth ns` against util-linux `lsns` on a host with extra
// processes: it starts N busybox sleep children (2,000 by default), runs the two commands
// alternately, prints the median of each and their ratio, and kills every child it started.
//
//	go build -o /tmp/berth ./cmd/berth && go run ./bench/nsview -berth /tmp/berth
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	berth := flag.String("berth", "bin/berth", "berth binary")
	procs := flag.Int("procs", 2000, "extra processes to start")
	runs := flag.Int("runs", 21, "runs of each command")
	args := flag.String("args", "", "extra arguments for both commands (e.g. \"-J\" or \"--output-all\")")
	flag.Parse()
	if err := run(*berth, *procs, *runs, strings.Fields(*args)); err != nil {
		fmt.Fprintf(os.Stderr, "nsview-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(berth string, procs, runs int, extra []string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox is needed: %w", err)
	}
	var children []*exec.Cmd
	defer func() {
		for _, c := range children {
			c.Process.Kill()
		}
		for _, c := range children {
			c.Wait()
		}
	}()
	for i := 0; i < procs; i++ {
		c := exec.Command(bb, "sleep", "3600")
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			return fmt.Errorf("start child %d: %w", i, err)
		}
		children = append(children, c)
	}
	// Let the children finish exec so both tools see the same, settled /proc.
	time.Sleep(500 * time.Millisecond)

	cmds := [][]string{
		append([]string{berth, "ns"}, extra...),
		append([]string{"lsns"}, extra...),
	}
	times := make([][]time.Duration, len(cmds))
	for r := 0; r < runs+1; r++ {
		for i, argv := range cmds {
			// Alternate which command goes first so neither always gets the warmer cache.
			if r%2 == 1 {
				argv = cmds[len(cmds)-1-i]
			}
			start := time.Now()
			c := exec.Command(argv[0], argv[1:]...)
			c.Stdout, c.Stderr = nil, os.Stderr
			if err := c.Run(); err != nil {
				return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
			}
			d := time.Since(start)
			if r == 0 {
				continue // warm-up
			}
			idx := i
			if r%2 == 1 {
				idx = len(cmds) - 1 - i
			}
			times[idx] = append(times[idx], d)
		}
	}
	med := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	b, l := med(times[0]), med(times[1])
	fmt.Printf("processes: %d extra, %d runs each, args %q\n", procs, runs, extra)
	fmt.Printf("berth ns: median %v\n", b.Round(10*time.Microsecond))
	fmt.Printf("lsns:     median %v\n", l.Round(10*time.Microsecond))
	fmt.Printf("ratio berth/lsns: %.3f\n", float64(b)/float64(l))
	return nil
}
