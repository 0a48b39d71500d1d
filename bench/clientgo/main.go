// Command clientgo-bench measures client-go's Lease-based resource lock
// (k8s.io/client-go/tools/leaderelection/resourcelock.LeaseLock) against a
// Kubernetes API server, as the reference side of the celers-kube-lease
// benchmark. It prints exactly one JSON object on stdout; logs go to stderr.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
)

// callTimeout bounds every single API call.
const callTimeout = 5 * time.Second

var scenarios = []string{"acquire_free", "acquire_expired", "reacquire", "renew", "release", "get", "throughput", "dispatch", "cycle", "handoff", "dead_holder"}

// loopScenarios run several clients in a loop for a duration.
var loopScenarios = map[string]bool{"throughput": true, "dispatch": true, "cycle": true}

type options struct {
	kubeconfig   string
	namespace    string
	scenario     string
	iterations   int
	clients      int
	durationSecs float64
	ttlSecs      int
	hotKey       bool
	keepLeases   bool
	contentType  string
	etcd         string
	serverPids   serverPids
}

// contentTypes are the --content-type values: ContentType and
// AcceptContentTypes of every clientset's rest.Config. JSON must be set:
// with none, client-go's generated clients send and ask for protobuf for
// built-in types. protobuf is how kube-controller-manager and kube-scheduler
// talk to the API server.
var contentTypes = map[string]struct{ contentType, accept string }{
	"json":     {"application/json", "application/json"},
	"protobuf": {"application/vnd.kubernetes.protobuf", "application/vnd.kubernetes.protobuf,application/json"},
}

// serverPid is a --server-pid NAME=PID: a process whose CPU time is read
// around the measured window.
type serverPid struct{ name, pid string }

type serverPids []serverPid

func (s *serverPids) String() string { return fmt.Sprint(*s) }

func (s *serverPids) Set(v string) error {
	name, pid, ok := strings.Cut(v, "=")
	if _, err := strconv.ParseUint(pid, 10, 32); !ok || name == "" || err != nil {
		return fmt.Errorf("%q is not NAME=PID", v)
	}
	*s = append(*s, serverPid{name, pid})
	return nil
}

// result is the single JSON line printed on stdout. Field order is fixed.
type result struct {
	Impl          string  `json:"impl"`
	Scenario      string  `json:"scenario"`
	Clients       int     `json:"clients"`
	Ops           int     `json:"ops"`
	Errors        int     `json:"errors"`
	Successes     int     `json:"successes"`
	Requests      int64   `json:"requests"`
	RequestsPerOp float64 `json:"requests_per_op"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	OpsPerSec     float64 `json:"ops_per_sec"`
	ElapsedSecs   float64 `json:"elapsed_secs"`
	// KeptPrefix: with --keep-leases, the prefix of every lease name of this
	// run, for the caller to delete them.
	KeptPrefix  string `json:"kept_prefix,omitempty"`
	ContentType string `json:"content_type"`
	// Over the measured window: the API server's time on Lease requests and
	// the part it waited on etcd (sums of apiserver_request_duration_seconds
	// and etcd_request_duration_seconds), etcd's WAL fsyncs and their time
	// (with --etcd), and CPU seconds of each --server-pid and of this process.
	RequestSecs   float64            `json:"apiserver_request_secs"`
	EtcdSecs      float64            `json:"etcd_request_secs"`
	WALFsyncs     *float64           `json:"wal_fsyncs,omitempty"`
	WALFsyncSecs  *float64           `json:"wal_fsync_secs,omitempty"`
	ServerCPUSecs map[string]float64 `json:"server_cpu_secs"`
	ClientCPUSecs float64            `json:"client_cpu_secs"`
}

func main() {
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetOutput(os.Stderr)
	log.SetPrefix("clientgo-bench: ")

	var o options
	flag.StringVar(&o.kubeconfig, "kubeconfig", "", "path to the kubeconfig of the API server (required)")
	flag.StringVar(&o.namespace, "namespace", "default", "namespace for the leases (must exist)")
	flag.StringVar(&o.scenario, "scenario", "", "one of: "+strings.Join(scenarios, ", "))
	flag.IntVar(&o.iterations, "iterations", 200, "operations per sequential scenario; handoffs (handoff); trials (dead_holder)")
	flag.IntVar(&o.clients, "clients", 8, "concurrent clients (throughput, dispatch, cycle; handoff: the holder and its waiters)")
	flag.Float64Var(&o.durationSecs, "duration-secs", 5, "measured duration in seconds (throughput, dispatch, cycle)")
	flag.IntVar(&o.ttlSecs, "ttl-secs", 15, "lease duration in seconds")
	flag.BoolVar(&o.hotKey, "hot-key", false, "throughput: all clients contend for one key")
	flag.BoolVar(&o.keepLeases, "keep-leases", false, "leave this run's leases for the caller to delete (their prefix is in the JSON line)")
	flag.StringVar(&o.contentType, "content-type", "json", "what every clientset sends and asks for: json (application/json) or protobuf (application/vnd.kubernetes.protobuf, JSON accepted too)")
	flag.StringVar(&o.etcd, "etcd", "", "etcd's client address HOST:PORT (plain HTTP), to read its WAL fsyncs over the measured window")
	flag.Var(&o.serverPids, "server-pid", "NAME=PID of a server process whose CPU time is read over the measured window (repeatable)")
	flag.Parse()

	if o.kubeconfig == "" {
		fatalf("--kubeconfig is required")
	}
	known := false
	for _, s := range scenarios {
		known = known || s == o.scenario
	}
	if !known {
		fatalf("--scenario must be one of: %s", strings.Join(scenarios, ", "))
	}
	if o.iterations < 1 || o.clients < 1 || o.durationSecs <= 0 || o.ttlSecs < 1 {
		fatalf("--iterations, --clients, --duration-secs and --ttl-secs must be positive")
	}
	if _, ok := contentTypes[o.contentType]; !ok {
		fatalf("--content-type must be json or protobuf")
	}
	if o.hotKey && o.scenario != "throughput" {
		log.Printf("--hot-key only applies to the throughput scenario; ignored")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	b, err := newBench(o)
	if err != nil {
		fatalf("%v", err)
	}
	res, runErr := b.run(ctx)
	if o.keepLeases && runErr == nil {
		res.KeptPrefix = b.prefix
	} else {
		b.cleanup() // every lease this run may have created; never counted
	}
	if runErr != nil {
		fatalf("%v", runErr)
	}
	line, err := json.Marshal(res)
	if err != nil {
		fatalf("encoding result: %v", err)
	}
	fmt.Println(string(line))
}

func fatalf(format string, args ...any) {
	log.Printf(format, args...)
	os.Exit(1)
}

// ---------------------------------------------------------------------------
// The lock logic: a line-by-line copy of what client-go's
// leaderelection.LeaderElector does in tryAcquireOrRenew and tryRelease
// (client-go v0.37.2, tools/leaderelection/leaderelection.go). Those methods
// are unexported and only reachable through LeaderElector.Run's timed retry
// loop, so the same steps are reproduced here on the real rl.LeaseLock,
// including the elector's local observation state (observedRecord,
// observedRawRecord, observedTime) that decides expiry and leadership.
// ---------------------------------------------------------------------------

type elector struct {
	lock          *rl.LeaseLock
	leaseDuration time.Duration

	observedRecord    rl.LeaderElectionRecord
	observedRawRecord []byte
	observedTime      time.Time
}

func newElector(client kubernetes.Interface, namespace, name, identity string, ttl time.Duration) *elector {
	return &elector{
		lock: &rl.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: namespace},
			Client:     client.CoordinationV1(),
			LockConfig: rl.ResourceLockConfig{Identity: identity},
		},
		leaseDuration: ttl,
	}
}

func (e *elector) isLeader() bool { return e.observedRecord.HolderIdentity == e.lock.Identity() }

func (e *elector) isLeaseValid(now time.Time) bool {
	return e.observedTime.Add(time.Second * time.Duration(e.observedRecord.LeaseDurationSeconds)).After(now)
}

func (e *elector) setObservedRecord(r *rl.LeaderElectionRecord) {
	e.observedRecord = *r
	e.observedTime = time.Now()
}

func (e *elector) get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	c, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return e.lock.Get(c)
}

func (e *elector) create(ctx context.Context, r rl.LeaderElectionRecord) error {
	c, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return e.lock.Create(c, r)
}

func (e *elector) update(ctx context.Context, r rl.LeaderElectionRecord) error {
	c, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return e.lock.Update(c, r)
}

// tryAcquireOrRenew mirrors LeaderElector.tryAcquireOrRenew. It returns
// whether this elector holds the lock afterwards, and the API error that made
// it fail, if any (client-go only logs it).
func (e *elector) tryAcquireOrRenew(ctx context.Context) (bool, error) {
	now := metav1.NewTime(time.Now())
	record := rl.LeaderElectionRecord{
		HolderIdentity:       e.lock.Identity(),
		LeaseDurationSeconds: int(e.leaseDuration / time.Second),
		RenewTime:            now,
		AcquireTime:          now,
	}

	// 1. fast path for the leader to update optimistically assuming that the
	// record observed last time is the current version.
	if e.isLeader() && e.isLeaseValid(now.Time) {
		old := e.observedRecord
		record.AcquireTime = old.AcquireTime
		record.LeaderTransitions = old.LeaderTransitions
		if err := e.update(ctx, record); err == nil {
			e.setObservedRecord(&record)
			return true, nil
		}
		// client-go logs and falls back to the slow path
	}

	// 2. obtain or create the ElectionRecord
	oldRecord, oldRaw, err := e.get(ctx)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			return false, err
		}
		if err := e.create(ctx, record); err != nil {
			return false, err
		}
		e.setObservedRecord(&record)
		return true, nil
	}

	// 3. Record obtained, check the Identity & Time
	if !bytes.Equal(e.observedRawRecord, oldRaw) {
		e.setObservedRecord(oldRecord)
		e.observedRawRecord = oldRaw
	}
	if len(oldRecord.HolderIdentity) > 0 && e.isLeaseValid(now.Time) && !e.isLeader() {
		return false, nil // held by someone else and not yet expired
	}

	// 4. We're going to try to update.
	if e.isLeader() {
		record.AcquireTime = oldRecord.AcquireTime
		record.LeaderTransitions = oldRecord.LeaderTransitions
	} else {
		record.LeaderTransitions = oldRecord.LeaderTransitions + 1
	}
	if err := e.update(ctx, record); err != nil {
		return false, err
	}
	e.setObservedRecord(&record)
	return true, nil
}

// tryRelease mirrors LeaderElector.tryRelease (ReleaseOnCancel): Get, then
// Update the record with an empty holder and LeaseDurationSeconds 1, retrying
// on conflict. The lease is not deleted.
func (e *elector) tryRelease(ctx context.Context) (bool, error) {
	oldRecord, _, err := e.get(ctx)
	if err != nil {
		return false, err // NotFound included: client-go reports "lease lock not found", false
	}
	if !e.isLeader() {
		return true, nil
	}
	now := metav1.NewTime(time.Now())
	record := rl.LeaderElectionRecord{
		LeaderTransitions:    oldRecord.LeaderTransitions,
		LeaseDurationSeconds: 1,
		RenewTime:            now,
		AcquireTime:          now,
	}
	if err := e.update(ctx, record); err != nil {
		if apierrors.IsConflict(err) && ctx.Err() == nil {
			return e.tryRelease(ctx)
		}
		return false, err
	}
	e.setObservedRecord(&record)
	return true, nil
}

// ---------------------------------------------------------------------------
// Benchmark harness
// ---------------------------------------------------------------------------

type bench struct {
	o        options
	cfg      *rest.Config
	client   kubernetes.Interface // setup, metrics, cleanup and sequential ops
	prefix   string               // lease-name prefix unique to this run
	identity string
	ttl      time.Duration

	// leaseRequests counts, client side, every request whose path names
	// leases (setup and cleanup included); logged only, as a cross-check.
	leaseRequests atomic.Int64

	mu      sync.Mutex
	created map[string]struct{} // every lease name this run may have created
}

func newBench(o options) (*bench, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	// No client-side rate limiting: a negative QPS makes client-go build no
	// token bucket at all.
	cfg.QPS = -1
	cfg.Burst = 0
	cfg.UserAgent = "clientgo-bench"
	cfg.Timeout = 0 // per-call timeouts come from contexts
	// Every clientset is made from a copy of cfg.
	ct := contentTypes[o.contentType]
	cfg.ContentType, cfg.AcceptContentTypes = ct.contentType, ct.accept

	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(rnd[:])
	b := &bench{
		o:        o,
		cfg:      cfg,
		prefix:   "cgbench-" + id + "-",
		identity: "cgbench-" + id + "-holder",
		ttl:      time.Duration(o.ttlSecs) * time.Second,
		created:  map[string]struct{}{},
	}
	b.client, err = b.newClientset(b.cfg, "main")
	if err != nil {
		return nil, err
	}
	log.Printf("run prefix %q, namespace %q, scenario %s, content type %s", b.prefix, o.namespace, o.scenario, o.contentType)
	return b, nil
}

func (b *bench) newClientset(cfg *rest.Config, name string) (kubernetes.Interface, error) {
	c := rest.CopyConfig(cfg)
	c.UserAgent = "clientgo-bench/" + name
	counter := &b.leaseRequests
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			if strings.Contains(req.URL.Path, "/leases") {
				counter.Add(1)
			}
			return rt.RoundTrip(req)
		})
	})
	return kubernetes.NewForConfig(c)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (b *bench) leaseName(kind string, i int) string {
	name := fmt.Sprintf("%s%s-%d", b.prefix, strings.ReplaceAll(kind, "_", "-"), i)
	b.mu.Lock()
	b.created[name] = struct{}{}
	b.mu.Unlock()
	return name
}

// createLease creates a lease directly (setup only, never measured).
func (b *bench) createLease(ctx context.Context, name string, r rl.LeaderElectionRecord) error {
	c, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: b.o.namespace},
		Spec:       rl.LeaderElectionRecordToLeaseSpec(&r),
	}
	_, err := b.client.CoordinationV1().Leases(b.o.namespace).Create(c, lease, metav1.CreateOptions{})
	return err
}

// cleanup deletes every lease this run may have created: best effort,
// 8 deletes in flight, at most 60 s in all.
func (b *bench) cleanup() {
	b.mu.Lock()
	names := make([]string, 0, len(b.created))
	for n := range b.created {
		names = append(names, n)
	}
	b.created = map[string]struct{}{}
	b.mu.Unlock()
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	work := make(chan string)
	var deleted, failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				c, cc := context.WithTimeout(ctx, callTimeout)
				err := b.client.CoordinationV1().Leases(b.o.namespace).Delete(c, n, metav1.DeleteOptions{})
				cc()
				switch {
				case err == nil:
					deleted.Add(1)
				case apierrors.IsNotFound(err):
				default:
					failed.Add(1)
				}
			}
		}()
	}
	for _, n := range names {
		if ctx.Err() != nil {
			break
		}
		work <- n
	}
	close(work)
	wg.Wait()
	log.Printf("cleanup: deleted %d leases, %d failures", deleted.Load(), failed.Load())
}

// reading is one end of a measured window: the servers' counters, the
// Lease requests this client sent, and CPU ticks (USER_HZ, 100 a second) of
// the --server-pid processes and of this one.
type reading struct {
	requests, requestSecs, etcdSecs float64
	fsyncs, fsyncSecs               float64
	sent                            int64
	serverTicks                     map[string]int64
	selfTicks                       int64
}

// openWindow reads the start of a measured window: the servers' metrics
// first, then the CPU times, so that serving the metrics stays outside.
func (b *bench) openWindow(ctx context.Context) (*reading, error) {
	var r reading
	if err := b.readMetrics(ctx, &r); err != nil {
		return nil, err
	}
	r.sent = b.leaseRequests.Load()
	return &r, b.readTicks(&r)
}

// closeWindow reads the end of the window that before opened (in the
// opposite order) and returns the differences.
func (b *bench) closeWindow(ctx context.Context, before *reading) (*reading, error) {
	var r reading
	if err := b.readTicks(&r); err != nil {
		return nil, err
	}
	r.sent = b.leaseRequests.Load()
	if err := b.readMetrics(ctx, &r); err != nil {
		return nil, err
	}
	r.requests -= before.requests
	r.requestSecs -= before.requestSecs
	r.etcdSecs -= before.etcdSecs
	r.fsyncs -= before.fsyncs
	r.fsyncSecs -= before.fsyncSecs
	r.sent -= before.sent
	for name := range r.serverTicks {
		r.serverTicks[name] -= before.serverTicks[name]
	}
	r.selfTicks -= before.selfTicks
	return &r, nil
}

// readTicks reads the CPU ticks of the --server-pid processes and of this
// one into r.
func (b *bench) readTicks(r *reading) error {
	r.serverTicks = map[string]int64{}
	for _, s := range b.o.serverPids {
		ticks, err := cpuTicks(s.pid)
		if err != nil {
			return err
		}
		r.serverTicks[s.name] = ticks
	}
	var err error
	r.selfTicks, err = cpuTicks("self")
	return err
}

// cpuTicks is the user + system CPU time in /proc/PID/stat.
func cpuTicks(pid string) (int64, error) {
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	stat := string(raw)
	// Fields after the command name, from the state (field 3) on.
	i := strings.LastIndex(stat, ") ")
	if i < 0 {
		return 0, fmt.Errorf("unreadable /proc/%s/stat", pid)
	}
	fields := strings.Fields(stat[i+2:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("unreadable /proc/%s/stat", pid)
	}
	user, errUser := strconv.ParseInt(fields[11], 10, 64)
	system, errSystem := strconv.ParseInt(fields[12], 10, 64)
	if errUser != nil || errSystem != nil {
		return 0, fmt.Errorf("unreadable /proc/%s/stat", pid)
	}
	return user + system, nil
}

// readMetrics reads the API server's /metrics (Lease requests and their
// time) and, with --etcd, etcd's (WAL fsyncs).
func (b *bench) readMetrics(ctx context.Context, r *reading) error {
	// The counters are bumped as a handler finishes; give the server a
	// moment so that requests just answered are in the snapshot.
	time.Sleep(300 * time.Millisecond)
	c, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	raw, err := b.client.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(c)
	if err != nil {
		return fmt.Errorf("reading /metrics: %w", err)
	}
	text := string(raw)
	leases := func(labels string) bool { return strings.Contains(labels, `resource="leases"`) }
	// A watch's time is how long it stayed open.
	noWatch := func(labels string) bool { return leases(labels) && !strings.Contains(labels, `verb="WATCH"`) }
	var found bool
	r.requests, found = sumSamples(text, "apiserver_request_total", leases)
	if !found {
		log.Printf("warning: no apiserver_request_total sample with resource=\"leases\" yet")
	}
	r.requestSecs, _ = sumSamples(text, "apiserver_request_duration_seconds_sum", noWatch)
	r.etcdSecs, _ = sumSamples(text, "etcd_request_duration_seconds_sum", leases)
	if b.o.etcd == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(c, http.MethodGet, "http://"+b.o.etcd+"/metrics", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reading etcd's /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reading etcd's /metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading etcd's /metrics: %w", err)
	}
	const fsync = "etcd_disk_wal_fsync_duration_seconds"
	all := func(string) bool { return true }
	r.fsyncs, _ = sumSamples(string(body), fsync+"_count", all)
	r.fsyncSecs, _ = sumSamples(string(body), fsync+"_sum", all)
	return nil
}

// sumSamples sums the samples of metric name whose labels pass the filter,
// and says whether there was one.
func sumSamples(text, name string, filter func(labels string) bool) (float64, bool) {
	var sum float64
	found := false
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		if labels, ok := strings.CutPrefix(rest, "{"); ok {
			end := strings.LastIndexByte(labels, '}')
			if end < 0 || !filter(labels[:end]) {
				continue
			}
			rest = labels[end+1:]
		} else if !strings.HasPrefix(rest, " ") || !filter("") {
			continue
		}
		fields := strings.Fields(rest) // value [timestamp]
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

type opOutcome struct {
	held bool
	err  error
}

type stats struct {
	latencies []time.Duration
	ops       int
	successes int
	errors    int
	conflicts int
	firstErr  error
}

func (s *stats) add(d time.Duration, out opOutcome) {
	s.ops++
	s.latencies = append(s.latencies, d)
	switch {
	case out.err == nil && out.held:
		s.successes++
	case out.err == nil:
	case apierrors.IsConflict(out.err) || apierrors.IsAlreadyExists(out.err):
		// a lost optimistic-concurrency race: not held, but not an error
		s.conflicts++
	default:
		s.errors++
		if s.firstErr == nil {
			s.firstErr = out.err
		}
	}
}

func (s *stats) merge(o *stats) {
	s.latencies = append(s.latencies, o.latencies...)
	s.ops += o.ops
	s.successes += o.successes
	s.errors += o.errors
	s.conflicts += o.conflicts
	if s.firstErr == nil {
		s.firstErr = o.firstErr
	}
}

func percentileMs(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	if rank < 0 {
		rank = 0
	}
	return round3(float64(sorted[rank]) / float64(time.Millisecond))
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func (b *bench) run(ctx context.Context) (*result, error) {
	if loopScenarios[b.o.scenario] {
		return b.runLoop(ctx)
	}
	switch b.o.scenario {
	case "handoff":
		return b.runHandoff(ctx)
	case "dead_holder":
		return b.runDeadHolder(ctx)
	}
	op, err := b.setupSequential(ctx)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	return b.measured(ctx, 1, func() (*stats, error) {
		var st stats
		for i := 0; i < b.o.iterations && ctx.Err() == nil; i++ {
			t := time.Now()
			out := op(ctx, i)
			st.add(time.Since(t), out)
		}
		return &st, nil
	})
}

// measured runs work in a measured window and reports what it did and what
// it cost.
func (b *bench) measured(ctx context.Context, clients int, work func() (*stats, error)) (*result, error) {
	before, err := b.openWindow(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	st, err := work()
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	spent, err := b.closeWindow(ctx, before)
	if err != nil {
		return nil, err
	}
	return b.report(st, clients, elapsed, spent), nil
}

// setupSequential prepares the leases of a sequential scenario (not measured)
// and returns the measured operation for iteration i.
func (b *bench) setupSequential(ctx context.Context) (func(context.Context, int) opOutcome, error) {
	n := b.o.iterations
	sc := b.o.scenario
	names := make([]string, n)
	for i := range names {
		names[i] = b.leaseName(sc, i)
	}
	electors := make([]*elector, n)
	for i := range electors {
		electors[i] = newElector(b.client, b.o.namespace, names[i], b.identity, b.ttl)
	}
	acquire := func(ctx context.Context, i int) opOutcome {
		held, err := electors[i].tryAcquireOrRenew(ctx)
		return opOutcome{held, err}
	}
	now := metav1.NewTime(time.Now())
	heldByMe := rl.LeaderElectionRecord{
		HolderIdentity: b.identity, LeaseDurationSeconds: b.o.ttlSecs, AcquireTime: now, RenewTime: now,
	}

	switch sc {
	case "acquire_free":
		// fresh elector, no lease: Get (NotFound) -> Create
		return acquire, nil

	case "acquire_expired":
		hourAgo := metav1.NewTime(time.Now().Add(-time.Hour))
		stale := rl.LeaderElectionRecord{
			HolderIdentity: b.prefix + "other", LeaseDurationSeconds: 1, AcquireTime: hourAgo, RenewTime: hourAgo,
		}
		for i := range names {
			if err := b.createLease(ctx, names[i], stale); err != nil {
				return nil, err
			}
		}
		// client-go judges expiry by its own clock: a record is expired once
		// it has been seen unchanged for LeaseDurationSeconds (observedTime),
		// not by the record's RenewTime. So each elector observes its lease
		// first, as LeaderElector's first retry would, and the measured op
		// comes more than 1 s (the lease duration) later.
		for i, e := range electors {
			held, err := e.tryAcquireOrRenew(ctx)
			if err != nil {
				return nil, err
			}
			if held {
				return nil, fmt.Errorf("lease %s acquired while observing it", names[i])
			}
		}
		wait := time.Until(electors[n-1].observedTime.Add(1100 * time.Millisecond))
		time.Sleep(wait)
		// measured: Get -> expired -> Update (new holder, LeaderTransitions+1)
		return acquire, nil

	case "reacquire":
		// The lease is still held by our identity (written by a previous
		// process); a fresh elector with that identity: Get -> held by me ->
		// Update (RenewTime now, AcquireTime kept).
		for i := range names {
			if err := b.createLease(ctx, names[i], heldByMe); err != nil {
				return nil, err
			}
		}
		return acquire, nil

	case "renew", "release":
		// The elector itself acquires the lease (Get NotFound -> Create), so
		// it is the leader with a valid observed lease, as after acquisition.
		for i, e := range electors {
			held, err := e.tryAcquireOrRenew(ctx)
			if err != nil {
				return nil, err
			}
			if !held {
				return nil, fmt.Errorf("setup could not acquire %s", names[i])
			}
		}
		if sc == "renew" {
			// tryAcquireOrRenew of a current leader: client-go's fast path
			// (an optimistic Update with no Get) while the observed lease is
			// valid, else Get -> Update.
			return acquire, nil
		}
		// release: Get -> Update with HolderIdentity "" and
		// LeaseDurationSeconds 1 (ReleaseOnCancel); no delete.
		return func(ctx context.Context, i int) opOutcome {
			held, err := electors[i].tryRelease(ctx)
			return opOutcome{held, err}
		}, nil

	case "get":
		// The closest client-go has to is_locked/owner: LeaseLock.Get of a
		// held lease. Success: the read worked and the lease is held.
		for i := range names {
			if err := b.createLease(ctx, names[i], heldByMe); err != nil {
				return nil, err
			}
		}
		return func(ctx context.Context, i int) opOutcome {
			r, _, err := electors[i].get(ctx)
			return opOutcome{err == nil && r.HolderIdentity != "", err}
		}, nil
	}
	return nil, fmt.Errorf("unknown scenario %q", sc)
}

// runLoop runs the loop scenarios: clients, each with its own connections,
// repeat one operation until the duration is over.
//   - throughput: tryAcquireOrRenew of the client's own lease (after the
//     first call, the leader's renewal), or with --hot-key of one shared lease.
//   - dispatch: tryAcquireOrRenew of a lease never used before, by a fresh
//     elector, as for a beat scheduler's per-run lock: Get (NotFound) ->
//     Create. Never released; the leases are deleted after the measurement.
//   - cycle: tryAcquireOrRenew of the client's own lease, then tryRelease
//     (one operation; it succeeds if both do). After the first cycle the
//     lease exists with no holder: Get -> Update, then Get -> Update.
func (b *bench) runLoop(ctx context.Context) (*result, error) {
	n := b.o.clients
	sc := b.o.scenario
	clients := make([]kubernetes.Interface, n)
	dials := make([]*atomic.Int64, n)
	electors := make([]*elector, n)
	hotKey := b.o.hotKey && sc == "throughput"
	hot := ""
	if hotKey {
		hot = b.leaseName("throughput-hot", 0)
	}
	for i := 0; i < n; i++ {
		// Own clientset per client, and its own transport: client-go caches
		// transports by TLS settings plus the Dial function, so a distinct
		// Dial per client gives each one a separate connection pool; the
		// dial counter shows how many TCP connections each really opened.
		cfg := rest.CopyConfig(b.cfg)
		cnt := &atomic.Int64{}
		dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			cnt.Add(1)
			return dialer.DialContext(ctx, network, addr)
		}
		c, err := b.newClientset(cfg, fmt.Sprintf("client-%d", i))
		if err != nil {
			return nil, err
		}
		clients[i], dials[i] = c, cnt
		name := hot
		if !hotKey {
			name = b.leaseName(sc, i)
		}
		electors[i] = newElector(c, b.o.namespace, name, b.clientIdentity(i), b.ttl)
	}
	runs := make([]int, n) // dispatch: leases created by each client

	before, err := b.openWindow(ctx)
	if err != nil {
		return nil, err
	}
	all := make([]stats, n)
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	ready.Add(n)
	startGate := make(chan struct{})
	duration := time.Duration(b.o.durationSecs * float64(time.Second))
	var start time.Time
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ready.Done()
			<-startGate
			deadline := start.Add(duration)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				e := electors[i]
				if sc == "dispatch" {
					e = newElector(clients[i], b.o.namespace, b.dispatchName(i, runs[i]), b.clientIdentity(i), b.ttl)
					runs[i]++
				}
				t := time.Now()
				held, err := e.tryAcquireOrRenew(ctx)
				if sc == "cycle" && err == nil && held {
					held, err = e.tryRelease(ctx)
				}
				all[i].add(time.Since(t), opOutcome{held, err})
			}
		}(i)
	}
	ready.Wait()
	start = time.Now()
	close(startGate)
	wg.Wait()
	elapsed := time.Since(start)
	spent, err := b.closeWindow(ctx, before)
	// Every dispatch lease is recorded for cleanup, after the measurement.
	b.mu.Lock()
	for i, r := range runs {
		for k := 0; k < r; k++ {
			b.created[b.dispatchName(i, k)] = struct{}{}
		}
	}
	b.mu.Unlock()
	if err != nil {
		return nil, err
	}

	var st stats
	conns := make([]string, n)
	for i := range all {
		st.merge(&all[i])
		conns[i] = strconv.FormatInt(dials[i].Load(), 10)
	}
	log.Printf("TCP connections dialed per client: [%s]", strings.Join(conns, " "))
	return b.report(&st, n, elapsed, spent), nil
}

func (b *bench) clientIdentity(i int) string { return fmt.Sprintf("%sclient-%d", b.prefix, i) }

// dispatchName is the lease of client i's k-th dispatch.
func (b *bench) dispatchName(i, k int) string { return fmt.Sprintf("%sdispatch-%d-%d", b.prefix, i, k) }

func (b *bench) report(st *stats, clients int, elapsed time.Duration, spent *reading) *result {
	sort.Slice(st.latencies, func(i, j int) bool { return st.latencies[i] < st.latencies[j] })
	req := int64(math.Round(spent.requests))
	log.Printf("%d ops, %d held, %d errors, %d lost races (409); lease requests: %d by server metric, %d sent by this client",
		st.ops, st.successes, st.errors, st.conflicts, req, spent.sent)
	if st.firstErr != nil {
		log.Printf("first error: %v", st.firstErr)
	}
	secs := elapsed.Seconds()
	res := &result{
		Impl:        "client-go",
		Scenario:    b.o.scenario,
		Clients:     clients,
		Ops:         st.ops,
		Errors:      st.errors,
		Successes:   st.successes,
		Requests:    req,
		P50Ms:       percentileMs(st.latencies, 50),
		P99Ms:       percentileMs(st.latencies, 99),
		ElapsedSecs: round3(secs),

		ContentType:   b.o.contentType,
		RequestSecs:   spent.requestSecs,
		EtcdSecs:      spent.etcdSecs,
		ServerCPUSecs: map[string]float64{},
		ClientCPUSecs: float64(spent.selfTicks) / 100,
	}
	for name, ticks := range spent.serverTicks {
		res.ServerCPUSecs[name] = float64(ticks) / 100
	}
	if b.o.etcd != "" {
		res.WALFsyncs, res.WALFsyncSecs = &spent.fsyncs, &spent.fsyncSecs
	}
	if st.ops > 0 {
		res.RequestsPerOp = round3(float64(req) / float64(st.ops))
	}
	if secs > 0 {
		res.OpsPerSec = round3(float64(st.ops) / secs)
	}
	return res
}
