// Package conformance runs containerd's own snapshotter conformance suite
// (github.com/containerd/containerd/snapshots/testsuite, containerd 1.6 as
// Debian ships it) against a proxy snapshotter, in one of two modes:
//
//	-mode exec -command 'polis-snapshotter --root {root} --address {address}'
//	    every test case of the suite starts a fresh snapshotter process from the
//	    command template ({root}: the test's snapshotter root, {address}: a unix
//	    socket path), talks to it with containerd's snapshots proxy client, and
//	    stops it (SIGTERM; SIGKILL after -stop-timeout) when the case is done.
//
//	-mode containerd -containerd /path/containerd.sock -snapshotter polis
//	    every test case goes through a running containerd to its snapshotter
//	    NAME (a [proxy_plugins.NAME] there), in a namespace of its own and under
//	    a lease; when the case is done whatever it left is removed, the lease is
//	    deleted synchronously (containerd's GC removes the snapshots from the
//	    snapshotter) and the namespace is deleted, which fails if anything is left.
//
// It is built offline in GOPATH mode against Debian's
// golang-github-containerd-containerd-dev (see image-snapshotter/tests/common):
//
//	GO111MODULE=off GOPATH=$dir:/usr/share/gocode go test -c -o $dir/polis-snapsuite.test
//
// and run as root with -test.v; its cases are TestSnapshotterSuite/<name>.
package conformance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/leases"
	leasesproxy "github.com/containerd/containerd/leases/proxy"
	"github.com/containerd/containerd/log"
	"github.com/containerd/containerd/mount"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/pkg/dialer"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
	"github.com/containerd/containerd/snapshots/testsuite"
	"google.golang.org/grpc"
)

var (
	mode = flag.String("mode", "", "exec: a snapshotter process per test case, from -command; "+
		"containerd: the snapshotter -snapshotter of the containerd at -containerd")
	command = flag.String("command", "", "exec mode: the snapshotter's command line, split on "+
		"whitespace (no quoting); {root} and {address} are replaced in every word")
	containerdSock = flag.String("containerd", "", "containerd mode: containerd's gRPC socket")
	snapshotter    = flag.String("snapshotter", "polis", "the snapshotter name sent in the requests "+
		"(containerd mode: the proxy plugin's name in containerd's config)")
	namespacePrefix = flag.String("namespace", "polis-snapsuite", "containerd mode: prefix of the "+
		"namespace each test case uses (a number is appended)")
	startTimeout = flag.Duration("start-timeout", 10*time.Second, "exec mode: how long to wait for "+
		"the snapshotter's socket")
	stopTimeout = flag.Duration("stop-timeout", 10*time.Second, "exec mode: how long to wait for "+
		"the snapshotter to exit after SIGTERM before it is killed")
)

// The longest path a unix socket address may have (sun_path less its NUL).
const maxSocketPath = 107

func TestSnapshotterSuite(t *testing.T) {
	var fn testsuite.SnapshotterFunc
	switch *mode {
	case "exec":
		if len(strings.Fields(*command)) == 0 {
			t.Fatal("-mode exec needs -command")
		}
		fn = execSnapshotter
	case "containerd":
		if *containerdSock == "" || *snapshotter == "" {
			t.Fatal("-mode containerd needs -containerd and -snapshotter")
		}
		fn = containerdSnapshotter
	case "":
		t.Skip("no -mode given (exec or containerd)")
	default:
		t.Fatalf("unknown -mode %q (exec or containerd)", *mode)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the suite mounts the snapshots it makes: run it as root")
	}
	testsuite.SnapshotterSuite(t, "Polis", fn)
}

func dial(ctx context.Context, address string) (*grpc.ClientConn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, dialer.DialAddress(address),
		grpc.WithInsecure(),
		grpc.WithBlock(),
		grpc.FailOnNonTempDialError(true),
		grpc.WithReturnConnectionError(),
		grpc.WithContextDialer(dialer.ContextDialer),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(16<<20),
			grpc.MaxCallSendMsgSize(16<<20)),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", address, err)
	}
	return conn, nil
}

// ---- exec mode ----

// process is a snapshotter started for one test case.
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has been reaped; err is set then
	err     error
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) output() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no output: %v)", err)
	}
	return string(b)
}

// stop sends SIGTERM and waits for the process, killing it after -stop-timeout. Anything but
// a clean exit on SIGTERM is an error.
func (p *process) stop() error {
	if p.exited() {
		return fmt.Errorf("the snapshotter exited before it was stopped: %v", p.err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.exited() {
		return fmt.Errorf("SIGTERM the snapshotter: %w", err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("the snapshotter did not exit cleanly on SIGTERM: %v", p.err)
		}
		return nil
	case <-time.After(*stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("the snapshotter was still running %s after SIGTERM; killed", *stopTimeout)
	}
}

func expand(template, root, address string) []string {
	words := strings.Fields(template)
	r := strings.NewReplacer("{root}", root, "{address}", address)
	for i, w := range words {
		words[i] = r.Replace(w)
	}
	return words
}

func execSnapshotter(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
	// root is <test dir>/root; the suite removes the test dir after cleanup.
	dir := filepath.Dir(root)
	address := filepath.Join(dir, "sock")
	if len(address) > maxSocketPath {
		return nil, nil, fmt.Errorf("socket path %s is longer than %d bytes: use a shorter TMPDIR",
			address, maxSocketPath)
	}
	args := expand(*command, root, address)
	logPath := filepath.Join(dir, "snapshotter.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Should this harness die without its cleanups, the snapshotter goes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %q: %w", args, err)
	}
	p := &process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	fail := func(err error) (snapshots.Snapshotter, func() error, error) {
		if serr := p.stop(); serr != nil {
			err = fmt.Errorf("%w (%v)", err, serr)
		}
		return nil, nil, fmt.Errorf("%w\nsnapshotter output:\n%s", err, p.output())
	}

	deadline := time.Now().Add(*startTimeout)
	for {
		// The socket file appears at bind(2), before listen(2): wait until it accepts a
		// connection, since the gRPC dial below treats a refusal as final.
		if c, err := net.Dial("unix", address); err == nil {
			c.Close()
			break
		}
		if p.exited() {
			return nil, nil, fmt.Errorf("%q exited before it served %s: %v\nsnapshotter output:\n%s",
				args, address, p.err, p.output())
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("%q did not serve %s within %s", args, address, *startTimeout))
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := dial(ctx, address)
	if err != nil {
		return fail(err)
	}
	sn := proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), *snapshotter)
	cleanup := func() error {
		cerr := conn.Close()
		serr := p.stop()
		if out := p.output(); strings.TrimSpace(out) != "" {
			log.G(ctx).Infof("snapshotter output:\n%s", out)
		}
		if serr != nil {
			return serr
		}
		return cerr
	}
	return sn, cleanup, nil
}

// ---- containerd mode ----

var namespaceSeq int64

// scoped is a snapshotter whose every call runs in one namespace and under one lease,
// whatever namespace the suite's context carries.
type scoped struct {
	sn        snapshots.Snapshotter
	namespace string
	lease     string
}

func (s *scoped) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(leases.WithLease(ctx, s.lease), s.namespace)
}

func (s *scoped) Stat(ctx context.Context, key string) (snapshots.Info, error) {
	return s.sn.Stat(s.ctx(ctx), key)
}

func (s *scoped) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	return s.sn.Update(s.ctx(ctx), info, fieldpaths...)
}

func (s *scoped) Usage(ctx context.Context, key string) (snapshots.Usage, error) {
	return s.sn.Usage(s.ctx(ctx), key)
}

func (s *scoped) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	return s.sn.Mounts(s.ctx(ctx), key)
}

func (s *scoped) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.sn.Prepare(s.ctx(ctx), key, parent, opts...)
}

func (s *scoped) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.sn.View(s.ctx(ctx), key, parent, opts...)
}

func (s *scoped) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	return s.sn.Commit(s.ctx(ctx), name, key, opts...)
}

func (s *scoped) Remove(ctx context.Context, key string) error {
	return s.sn.Remove(s.ctx(ctx), key)
}

func (s *scoped) Walk(ctx context.Context, fn snapshots.WalkFunc, filters ...string) error {
	return s.sn.Walk(s.ctx(ctx), fn, filters...)
}

func (s *scoped) Close() error {
	return s.sn.Close()
}

// removeAll removes every snapshot left in the namespace, children before their parents
// (snapshots the suite labelled as GC roots are not collected with the lease).
func (s *scoped) removeAll(ctx context.Context) error {
	for {
		var infos []snapshots.Info
		if err := s.Walk(ctx, func(_ context.Context, i snapshots.Info) error {
			infos = append(infos, i)
			return nil
		}); err != nil {
			return fmt.Errorf("walk the snapshots left: %w", err)
		}
		if len(infos) == 0 {
			return nil
		}
		parents := map[string]bool{}
		for _, i := range infos {
			parents[i.Parent] = true
		}
		removed := 0
		for _, i := range infos {
			if parents[i.Name] {
				continue
			}
			if err := s.Remove(ctx, i.Name); err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("remove the snapshot %q left: %w", i.Name, err)
			}
			removed++
		}
		if removed == 0 {
			return fmt.Errorf("cannot remove the snapshots left (a parent cycle?): %v", infos)
		}
	}
}

func containerdSnapshotter(ctx context.Context, _ string) (snapshots.Snapshotter, func() error, error) {
	conn, err := dial(ctx, *containerdSock)
	if err != nil {
		return nil, nil, err
	}
	ns := fmt.Sprintf("%s-%d", *namespacePrefix, atomic.AddInt64(&namespaceSeq, 1))
	nsCtx := namespaces.WithNamespace(ctx, ns)
	lm := leasesproxy.NewLeaseManager(leasesapi.NewLeasesClient(conn))
	// Expiring, so that containerd's GC takes it should this harness die before its cleanup.
	lease, err := lm.Create(nsCtx, leases.WithRandomID(), leases.WithExpiration(time.Hour))
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("create a lease in namespace %s: %w", ns, err)
	}
	sn := &scoped{
		sn:        proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), *snapshotter),
		namespace: ns,
		lease:     lease.ID,
	}
	cleanup := func() error {
		defer conn.Close()
		if err := sn.removeAll(nsCtx); err != nil {
			return err
		}
		if err := lm.Delete(nsCtx, lease, leases.SynchronousDelete); err != nil {
			return fmt.Errorf("delete the lease %s: %w", lease.ID, err)
		}
		nsc := namespacesapi.NewNamespacesClient(conn)
		_, err := nsc.Delete(ctx, &namespacesapi.DeleteNamespaceRequest{Name: ns})
		if err = errdefs.FromGRPC(err); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("delete the namespace %s: %w", ns, err)
		}
		return nil
	}
	return sn, cleanup, nil
}
