// Go peer: goroutines on GOMAXPROCS = T.
//
//	fib, skynet  go statement per child; a sync.WaitGroup joins, results go into
//	             the parent's variables.
//	spawn_many   one goroutine starts N goroutines, each storing its index in its
//	             own slot of a slice; one WaitGroup joins them all (goroutines have
//	             no handles), then the slots are summed in order.
//	yield        GOMAXPROCS=1; two goroutines call runtime.Gosched Y times each.
//	sleepers     time.Sleep in each of S goroutines, WaitGroup join.
//	timeouts     T goroutines each do K/T of: time.AfterFunc(10 s, f) then Stop();
//	             a Stop that returns true is a cancelled timer.
//	chan_pingpong  two goroutines pass a counter over two unbuffered channels
//	             (make(chan uint64)), R round trips.
//	chan_mpmc    P goroutines send into make(chan uint64, 1024), C goroutines range
//	             over it and sum; close(ch) once a WaitGroup says the producers are done.
//	mutex_contended, mutex_yield  8 goroutines increment a counter under a sync.Mutex;
//	             mutex_yield calls runtime.Gosched holding it every 100 increments.
//	group_fanout an errgroup.Group with SetLimit(L) (golang.org/x/sync/errgroup, from
//	             Debian's golang-golang-x-sync-dev): a spawner goroutine calls g.Go for
//	             each of the N members (g.Go waits while L run), then g.Wait() and
//	             close(results); each member sends its index into results, a channel
//	             of capacity L, as it finishes; the root goroutine ranges over it
//	             (completion order) and sums. errgroup's own pipeline example has this
//	             shape: a goroutine has no result, so completion order is a channel.
//
// The command line, the result check and the output line follow
// bench/peers/common/peer_common.h.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

const rt = "go"

var names = []string{"fib", "skynet", "spawn_many", "yield", "sleepers", "timeouts", "switch",
	"chan_pingpong", "chan_mpmc", "mutex_contended", "mutex_yield", "group_fanout"}

var defaultSize = map[string]uint64{
	"fib": 30, "skynet": 1000000, "spawn_many": 1000000, "yield": 5000000,
	"sleepers": 100000, "timeouts": 1000000, "switch": 10000000,
	"chan_pingpong": 1000000, "chan_mpmc": 4000000, "mutex_contended": 4000000,
	"mutex_yield": 4000000, "group_fanout": 1000000,
}

// chan_mpmc's producers, consumers and capacity; the mutex workloads' goroutines and
// how often mutex_yield yields; group_fanout's limit L (WORKLOADS.md).
const (
	mpmcProducers = 4
	mpmcConsumers = 4
	mpmcCapacity  = 1024
	mutexTasks    = 8
	yieldEvery    = 100
	groupLimit    = 1000
)

var skipReason = map[string]string{
	"switch": "raw_switch_floor_is_measured_by_peer-boost-context",
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: peer-%s --workload NAME --threads T [--size N]\n"+
		"       peer-%s --workload list\n", rt, rt)
	os.Exit(2)
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "peer-"+rt+": "+format+"\n", a...)
	os.Exit(2)
}

func fib(n uint64) uint64 {
	if n < 2 {
		return n
	}
	var x uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		x = fib(n - 1)
		wg.Done()
	}()
	y := fib(n - 2)
	wg.Wait()
	return x + y
}

func skynet(num, size uint64) uint64 {
	if size == 1 {
		return num
	}
	var r [10]uint64
	var wg sync.WaitGroup
	sub := size / 10
	wg.Add(10)
	for i := uint64(0); i < 10; i++ {
		go func(i uint64) {
			r[i] = skynet(num+i*sub, sub)
			wg.Done()
		}(i)
	}
	wg.Wait()
	var sum uint64
	for _, v := range r {
		sum += v
	}
	return sum
}

func spawnMany(n uint64) uint64 {
	r := make([]uint64, n)
	var wg sync.WaitGroup
	wg.Add(int(n))
	for i := uint64(0); i < n; i++ {
		go func(i uint64) {
			r[i] = i
			wg.Done()
		}(i)
	}
	wg.Wait()
	var sum uint64
	for _, v := range r {
		sum += v
	}
	return sum
}

func yieldBench(y uint64) uint64 {
	var c [2]uint64
	var wg sync.WaitGroup
	wg.Add(2)
	for k := 0; k < 2; k++ {
		go func(k int) {
			for i := uint64(0); i < y; i++ {
				runtime.Gosched()
				c[k]++
			}
			wg.Done()
		}(k)
	}
	wg.Wait()
	return c[0] + c[1]
}

func sleepers(s uint64) uint64 {
	r := make([]uint64, s)
	var wg sync.WaitGroup
	wg.Add(int(s))
	for i := uint64(0); i < s; i++ {
		go func(i uint64) {
			time.Sleep(time.Duration((i*7919)%1000) * time.Millisecond)
			r[i] = i
			wg.Done()
		}(i)
	}
	wg.Wait()
	var sum uint64
	for _, v := range r {
		sum += v
	}
	return sum
}

func timeouts(k uint64, threads int) uint64 {
	cancelled := make([]uint64, threads)
	var wg sync.WaitGroup
	wg.Add(threads)
	fire := func() {}
	for t := 0; t < threads; t++ {
		share := k / uint64(threads)
		if uint64(t) < k%uint64(threads) {
			share++
		}
		go func(t int, share uint64) {
			var n uint64
			for i := uint64(0); i < share; i++ {
				tm := time.AfterFunc(10*time.Second, fire)
				if tm.Stop() {
					n++
				}
			}
			cancelled[t] = n
			wg.Done()
		}(t, share)
	}
	wg.Wait()
	var sum uint64
	for _, v := range cancelled {
		sum += v
	}
	return sum
}

func chanPingpong(r uint64) uint64 {
	there, back := make(chan uint64), make(chan uint64)
	go func() {
		for i := uint64(0); i < r; i++ {
			back <- <-there + 1
		}
	}()
	var counter uint64
	for i := uint64(0); i < r; i++ {
		there <- counter
		counter = <-back
	}
	return counter
}

func chanMpmc(n uint64) uint64 {
	ch := make(chan uint64, mpmcCapacity)
	sums := make([]uint64, mpmcConsumers)
	var producers, consumers sync.WaitGroup
	consumers.Add(mpmcConsumers)
	for c := 0; c < mpmcConsumers; c++ {
		go func(c int) {
			var sum uint64
			for v := range ch {
				sum += v
			}
			sums[c] = sum
			consumers.Done()
		}(c)
	}
	producers.Add(mpmcProducers)
	for p := 0; p < mpmcProducers; p++ {
		go func() {
			for i := uint64(0); i < n/mpmcProducers; i++ {
				ch <- i
			}
			producers.Done()
		}()
	}
	producers.Wait()
	close(ch)
	consumers.Wait()
	var sum uint64
	for _, v := range sums {
		sum += v
	}
	return sum
}

func mutexCounter(m uint64, yieldInside bool) uint64 {
	var mu sync.Mutex
	var counter uint64
	var wg sync.WaitGroup
	wg.Add(mutexTasks)
	for t := 0; t < mutexTasks; t++ {
		share := m / mutexTasks
		if uint64(t) < m%mutexTasks {
			share++
		}
		go func(share uint64) {
			for i := uint64(1); i <= share; i++ {
				mu.Lock()
				counter++
				if yieldInside && i%yieldEvery == 0 {
					runtime.Gosched()
				}
				mu.Unlock()
			}
			wg.Done()
		}(share)
	}
	wg.Wait()
	return counter
}

func groupFanout(n uint64) uint64 {
	var g errgroup.Group
	g.SetLimit(groupLimit)
	results := make(chan uint64, groupLimit)
	go func() {
		for i := uint64(0); i < n; i++ {
			i := i
			g.Go(func() error {
				results <- i
				return nil
			})
		}
		g.Wait() // no member returns an error
		close(results)
	}()
	var sum uint64
	for v := range results {
		sum += v
	}
	return sum
}

func expected(w string, n uint64) uint64 {
	switch w {
	case "fib":
		a, b := uint64(0), uint64(1)
		for i := uint64(0); i < n; i++ {
			a, b = b, a+b
		}
		return a
	case "skynet", "spawn_many", "sleepers", "group_fanout":
		return n * (n - 1) / 2
	case "yield":
		return 2 * n
	case "chan_mpmc":
		k := n / mpmcProducers
		return mpmcProducers * (k * (k - 1) / 2)
	}
	return n
}

// procStatus returns a "Vm..." field of /proc/self/status in bytes (0 if unreadable).
func procStatus(key string) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, key+":") {
			fields := strings.Fields(line[len(key)+1:])
			if len(fields) > 0 {
				kb, _ := strconv.ParseUint(fields[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

func main() {
	var wl, th, sz string
	var haveTh, haveSz bool
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		key, val, hasEq := strings.Cut(args[i], "=")
		if !hasEq {
			if i+1 >= len(args) {
				usage()
			}
			i++
			val = args[i]
		}
		switch key {
		case "--workload":
			wl = val
		case "--threads":
			th, haveTh = val, true
		case "--size":
			sz, haveSz = val, true
		default:
			usage()
		}
	}
	if wl == "" {
		usage()
	}
	if wl == "list" {
		for _, n := range names {
			if _, skip := skipReason[n]; !skip {
				fmt.Println(n)
			}
		}
		return
	}
	size, known := defaultSize[wl]
	if !known {
		fail("unknown workload '%s'", wl)
	}
	threads := runtime.NumCPU()
	if haveTh {
		v, err := strconv.ParseUint(th, 10, 32)
		if err != nil || v < 1 || v > 4096 {
			fail("bad --threads '%s'", th)
		}
		threads = int(v)
	}
	if haveSz {
		v, err := strconv.ParseUint(sz, 10, 64)
		if err != nil || v < 1 {
			fail("bad --size '%s'", sz)
		}
		size = v
	}
	if wl == "fib" && size > 92 {
		fail("fib n must be at most 92")
	}
	if wl == "chan_mpmc" && size < 2*mpmcProducers {
		fail("chan_mpmc N must be at least %d", 2*mpmcProducers)
	}
	if wl == "skynet" {
		p := size
		for p%10 == 0 {
			p /= 10
		}
		if p != 1 {
			fail("skynet size must be a power of 10")
		}
	}
	if wl == "yield" || wl == "switch" {
		threads = 1
	}
	if reason, skip := skipReason[wl]; skip {
		fmt.Printf("workload=%s runtime=%s skipped=%s\n", wl, rt, reason)
		os.Exit(3)
	}
	runtime.GOMAXPROCS(threads)

	var result uint64
	var extra string
	rss0 := procStatus("VmRSS")
	t0 := time.Now() // monotonic clock reading
	switch wl {
	case "fib":
		result = fib(size)
	case "skynet":
		result = skynet(0, size)
	case "spawn_many":
		result = spawnMany(size)
	case "yield":
		result = yieldBench(size)
	case "sleepers":
		result = sleepers(size)
	case "timeouts":
		result = timeouts(size, threads)
	case "chan_pingpong":
		result = chanPingpong(size)
	case "chan_mpmc":
		result = chanMpmc(size)
	case "mutex_contended":
		result = mutexCounter(size, false)
	case "mutex_yield":
		result = mutexCounter(size, true)
	case "group_fanout":
		result = groupFanout(size)
	}
	elapsed := time.Since(t0)
	switch wl {
	case "yield":
		extra = fmt.Sprintf(" extra=ns_per_switch=%.2f", float64(elapsed.Nanoseconds())/float64(result))
	case "chan_pingpong":
		extra = fmt.Sprintf(" extra=ns_per_round_trip=%.1f", float64(elapsed.Nanoseconds())/float64(size))
	case "sleepers":
		peak := procStatus("VmHWM")
		var grown uint64
		if peak > rss0 {
			grown = peak - rss0
		}
		extra = fmt.Sprintf(" extra=rss_bytes_per_task=%d", grown/size)
	}
	ok := result == expected(wl, size)
	mark := ""
	if !ok {
		mark = "WRONG:"
	}
	fmt.Printf("workload=%s runtime=%s threads=%d wall_ms=%.3f result=%s%d%s\n",
		wl, rt, threads, float64(elapsed.Nanoseconds())/1e6, mark, result, extra)
	if !ok {
		os.Exit(1)
	}
}
