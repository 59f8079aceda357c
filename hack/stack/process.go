package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one process the stack started, as recorded in .stack/pids.
type proc struct {
	name string
	pid  int
	exe  string // absolute path of the binary, to recognise the process later
}

// pidFile records every process stack-up started, one per line, so
// stack-down stops exactly those and nothing else.
type pidFile string

func (f pidFile) read() ([]proc, error) {
	file, err := os.Open(string(f))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var procs []proc
	s := bufio.NewScanner(file)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) != 3 {
			continue
		}
		pid, err := strconv.Atoi(fields[1])
		if err != nil {
			continue
		}
		procs = append(procs, proc{name: fields[0], pid: pid, exe: fields[2]})
	}
	return procs, s.Err()
}

func (f pidFile) add(p proc) error {
	file, err := os.OpenFile(string(f), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer file.Close()
	_, err = fmt.Fprintf(file, "%s %d %s\n", p.name, p.pid, p.exe)
	return err
}

// alive reports whether p is still the process stack-up started: the PID
// exists and runs the same binary (a recycled PID belongs to someone else).
func (p proc) alive() bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.pid))
	if err != nil {
		return false
	}
	// A binary replaced on disk while running reads as "path (deleted)".
	return strings.TrimSuffix(exe, " (deleted)") == p.exe
}

// stop sends SIGTERM, waits for the process to exit, then SIGKILLs it.
func (p proc) stop(grace time.Duration) {
	if !p.alive() {
		return
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !p.alive() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	for i := 0; i < 50 && p.alive(); i++ {
		time.Sleep(100 * time.Millisecond)
	}
}

// start runs bin with args in its own session, detached from stack-up, with
// output in logDir/name.log, and records it in pids.
func start(pids pidFile, logDir, name, bin string, args ...string) (proc, error) {
	return startWithEnv(pids, logDir, name, bin, nil, args...)
}

// startWithEnv is start with variables added to stack-up's environment.
func startWithEnv(pids pidFile, logDir, name, bin string, env []string, args ...string) (proc, error) {
	exe, err := filepath.Abs(bin)
	if err != nil {
		return proc{}, err
	}
	if _, err := os.Stat(exe); err != nil {
		return proc{}, fmt.Errorf("%s is not built (%w): run `make tools`", bin, err)
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		return proc{}, err
	}
	logPath := filepath.Join(logDir, name+".log")
	log, err := os.Create(logPath)
	if err != nil {
		return proc{}, err
	}
	defer log.Close()
	cmd := exec.Command(exe, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return proc{}, fmt.Errorf("starting %s: %w", name, err)
	}
	p := proc{name: name, pid: cmd.Process.Pid, exe: exe}
	// Release: the process outlives stack-up; stack-down stops it by PID.
	_ = cmd.Process.Release()
	return p, pids.add(p)
}

// tailLines is how much of a component's log an error message quotes.
const tailLines = 15

// tail returns the last lines of a log, for error messages.
func tail(path string) string {
	n := tailLines
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
