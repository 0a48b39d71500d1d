package main

// The handoff scenarios: client-go's own LeaderElector (not a copy of its
// steps), with its default timings, as the reference for guards that wait.

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
)

// client-go's defaults (as kube-controller-manager uses them).
const (
	defaultLeaseDuration = 15 * time.Second
	defaultRenewDeadline = 10 * time.Second
	defaultRetryPeriod   = 2 * time.Second
	// holdFor is how long each leader keeps the lock before it hands it on.
	holdFor = 100 * time.Millisecond
)

func (b *bench) electorConfig(c kubernetes.Interface, name string, i int, leaseDuration time.Duration, callbacks leaderelection.LeaderCallbacks) leaderelection.LeaderElectionConfig {
	renewDeadline, retryPeriod := defaultRenewDeadline, defaultRetryPeriod
	if leaseDuration != defaultLeaseDuration {
		// Shorter leases keep client-go's proportions; RetryPeriod stays.
		renewDeadline = leaseDuration * 2 / 3
	}
	return leaderelection.LeaderElectionConfig{
		Lock: &rl.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: b.o.namespace},
			Client:     c.CoordinationV1(),
			LockConfig: rl.ResourceLockConfig{Identity: b.clientIdentity(i)},
		},
		LeaseDuration:   leaseDuration,
		RenewDeadline:   renewDeadline,
		RetryPeriod:     retryPeriod,
		ReleaseOnCancel: true,
		Callbacks:       callbacks,
		Name:            name,
	}
}

// runHandoff: --clients electors (one holder and clients-1 waiters) take one
// lease in turn until --iterations handoffs happened: each leader holds it
// for holdFor, then cancels, which releases it (ReleaseOnCancel), and runs
// for it again. A handoff's latency: the leader's cancel -> the next
// OnStartedLeading.
func (b *bench) runHandoff(ctx context.Context) (*result, error) {
	name := b.leaseName("handoff", 0)
	clients := make([]kubernetes.Interface, b.o.clients)
	for i := range clients {
		c, err := b.newClientset(b.cfg, fmt.Sprintf("client-%d", i))
		if err != nil {
			return nil, err
		}
		clients[i] = c
	}
	var mu sync.Mutex
	handedOn := sync.NewCond(&mu)
	var st stats
	var released time.Time
	terms := 0 // OnStartedLeading calls so far
	runCtx, stop := context.WithTimeout(ctx, time.Duration(b.o.iterations)*5*time.Second)
	defer stop()
	go func() {
		<-runCtx.Done()
		mu.Lock()
		handedOn.Broadcast()
		mu.Unlock()
	}()
	return b.measured(ctx, b.o.clients, func() (*stats, error) {
		return b.handOn(runCtx, stop, clients, name, &mu, handedOn, &st, &released, &terms)
	})
}

// handOn runs the electors of runHandoff until it has its handoffs.
func (b *bench) handOn(runCtx context.Context, stop context.CancelFunc, clients []kubernetes.Interface, name string,
	mu *sync.Mutex, handedOn *sync.Cond, st *stats, released *time.Time, terms *int) (*stats, error) {
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			led := -1 // the term this elector led last
			for runCtx.Err() == nil {
				termCtx, endTerm := context.WithCancel(runCtx)
				callbacks := leaderelection.LeaderCallbacks{
					OnStartedLeading: func(context.Context) {
						now := time.Now()
						mu.Lock()
						*terms++
						handedOn.Broadcast()
						if !released.IsZero() {
							st.add(now.Sub(*released), opOutcome{held: true})
							*released = time.Time{}
						}
						done := st.ops >= b.o.iterations
						mu.Unlock()
						if done {
							stop()
							return
						}
						time.Sleep(holdFor)
						mu.Lock()
						*released = time.Now()
						led = *terms
						mu.Unlock()
						endTerm()
					},
					OnStoppedLeading: func() {},
				}
				le, err := leaderelection.NewLeaderElector(b.electorConfig(clients[i], name, i, defaultLeaseDuration, callbacks))
				if err != nil {
					log.Printf("elector %d: %v", i, err)
					endTerm()
					return
				}
				le.Run(termCtx)
				endTerm()
				// Rejoin only once another elector took the lease, so that
				// every handoff goes to a waiter.
				mu.Lock()
				for *terms == led && runCtx.Err() == nil {
					handedOn.Wait()
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if st.ops < b.o.iterations {
		return nil, fmt.Errorf("only %d of %d handoffs in %v", st.ops, b.o.iterations, time.Since(start))
	}
	return st, nil
}

// runDeadHolder: --iterations trials of a holder that dies (its lease is
// written once with --ttl-secs and never renewed) and one elector waiting
// for the lease; latency: the elector's OnStartedLeading - (the holder's
// write + TTL).
func (b *bench) runDeadHolder(ctx context.Context) (*result, error) {
	c, err := b.newClientset(b.cfg, "waiter")
	if err != nil {
		return nil, err
	}
	return b.measured(ctx, 1, func() (*stats, error) { return b.deadHolders(ctx, c) })
}

// deadHolders runs the trials of runDeadHolder.
func (b *bench) deadHolders(ctx context.Context, c kubernetes.Interface) (*stats, error) {
	var st stats
	for trial := 0; trial < b.o.iterations && ctx.Err() == nil; trial++ {
		name := b.leaseName("dead-holder", trial)
		now := metav1.NewMicroTime(time.Now())
		written := time.Now()
		if err := b.createLease(ctx, name, rl.LeaderElectionRecord{
			HolderIdentity:       b.prefix + "dead",
			LeaseDurationSeconds: b.o.ttlSecs,
			AcquireTime:          metav1.Time(now),
			RenewTime:            metav1.Time(now),
		}); err != nil {
			return nil, err
		}
		termCtx, endTerm := context.WithTimeout(ctx, b.ttl+30*time.Second)
		var took time.Time
		callbacks := leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {
				took = time.Now()
				endTerm()
			},
			OnStoppedLeading: func() {},
		}
		le, err := leaderelection.NewLeaderElector(b.electorConfig(c, name, 0, b.ttl, callbacks))
		if err != nil {
			endTerm()
			return nil, err
		}
		le.Run(termCtx)
		endTerm()
		if took.IsZero() {
			return nil, fmt.Errorf("trial %d: the dead holder's lease was never taken over", trial)
		}
		st.add(took.Sub(written)-b.ttl, opOutcome{held: true})
	}
	return &st, nil
}
