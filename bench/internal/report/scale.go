package report

import (
	"fmt"
	"html"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/authgate/authgate/bench/internal/loadgen"
)

// ScaleReport is what the streams-at-scale and idle-clients scenarios
// measured, with the settings and the machine's state of their own run
// (loadbench -streams-only adds it to a report of an earlier run). Start
// it with StartScale, fill it with AddScale and AddIdle, end it with
// Finish.
type ScaleReport struct {
	Generated string        `json:"generated"`
	Commit    string        `json:"commit"`
	LoadStart [3]float64    `json:"loadavg_start"`
	LoadEnd   [3]float64    `json:"loadavg_end"`
	Settings  ScaleSettings `json:"settings"`
	Runs      []ScaleRun    `json:"runs"`
	Idle      []IdleRun     `json:"idle,omitempty"`
}

// ScaleSettings are the scenarios' settings.
type ScaleSettings struct {
	Events     int    `json:"events"`      // per stream, [DONE] not counted
	Interval   string `json:"interval"`    // between two events of a stream
	EventBytes int    `json:"event_bytes"` // of a content event, as measured on the wire
	Ramp       string `json:"ramp"`
	Plateau    string `json:"plateau"`
	FDLimit    uint64 `json:"fd_limit"` // open files per process
	ServerCPU  string `json:"server_cpu"`
	LoadCPU    string `json:"load_cpu"`
}

// ScaleRun is one server under one count of streams.
type ScaleRun struct {
	Target  string                `json:"target"` // direct (the upstream), authgate, nginx, haproxy
	Asked   int                   `json:"asked"`  // streams asked for; Streams.Conns were run
	Streams loadgen.StreamsResult `json:"streams"`
	IdleRSS int64                 `json:"idle_rss_bytes"` // the server's before the load
	PeakRSS int64                 `json:"peak_rss_bytes"` // its largest sample in the window
	// The server's CPU time (utime and stime, every process of it) in
	// the window: cores, and µs per event delivered.
	ServerCPU   float64 `json:"server_cpu"`
	CPUPerEvent float64 `json:"server_cpu_us_per_event"`
	UpstreamCPU float64 `json:"upstream_cpu"` // cores of the upstream behind a proxy, 0 direct
}

// RSSPerStream is the server's memory per stream at the plateau, in bytes:
// its largest sample above its idle size, over the streams.
func (r ScaleRun) RSSPerStream() float64 {
	return float64(r.PeakRSS-r.IdleRSS) / float64(max(r.Streams.Conns, 1))
}

// IdleHold is how long the idle clients wait before the server's memory
// is taken as held: more than a connection takes to park (1 s) and
// fasthttp's idle workers to end after it (1 s more, twice).
const IdleHold = 5 * time.Second

// IdleRun is one server holding idle keep-alive connections.
type IdleRun struct {
	Target  string `json:"target"`
	Path    string `json:"path"`  // what each connection asked, once
	Conns   int    `json:"conns"` // connections held
	Open    int    `json:"open"`  // of them, still open at the end
	IdleRSS int64  `json:"idle_rss_bytes"`
	PeakRSS int64  `json:"peak_rss_bytes"` // the largest sample while they were held
	// HeldRSS is the server's memory once the connections have waited
	// IdleHold and its garbage has been collected: what holding them
	// costs, without the requests that opened them. 0 in a report made
	// before it was measured.
	HeldRSS int64 `json:"held_rss_bytes,omitempty"`
}

// RSSPerConn is the server's memory per idle connection once they have
// waited (HeldRSS), in bytes; in an older report, at the peak.
func (r IdleRun) RSSPerConn() float64 {
	if r.HeldRSS == 0 {
		return r.PeakPerConn()
	}
	return float64(r.HeldRSS-r.IdleRSS) / float64(max(r.Conns, 1))
}

// PeakPerConn is the server's memory per idle connection at its peak,
// while the connections were making their requests, in bytes.
func (r IdleRun) PeakPerConn() float64 {
	return float64(r.PeakRSS-r.IdleRSS) / float64(max(r.Conns, 1))
}

// StartScale begins the report's streams-at-scale part, replacing any
// earlier one.
func (r *Report) StartScale(s ScaleSettings) {
	r.Scale = &ScaleReport{Commit: gitCommit(), LoadStart: loadAvg(), Settings: s}
}

// AddScale adds one server's run under one count of streams.
func (r *Report) AddScale(run ScaleRun) { r.Scale.Runs = append(r.Scale.Runs, run) }

// AddIdle adds one server's idle-clients run.
func (r *Report) AddIdle(run IdleRun) { r.Scale.Idle = append(r.Scale.Idle, run) }

// direct returns the direct run of as many streams as run, or nil.
func (s *ScaleReport) direct(run *ScaleRun) *ScaleRun {
	return find(s.Runs, func(d *ScaleRun) bool { return d.Target == "direct" && d.Streams.Conns == run.Streams.Conns })
}

// finish records the load at the end of the scenarios.
func (s *ScaleReport) finish() {
	s.LoadEnd = loadAvg()
	s.Generated = time.Now().UTC().Format(time.RFC3339)
}

// kib formats bytes as KiB with one decimal below 100.
func kib(b float64) string {
	v := b / 1024
	if v < 100 && v > -100 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// signed formats v with its sign.
func signed(v float64) string { return fmt.Sprintf("%+.0f", v) }

// scaleMarkdown writes the streams-at-scale and idle-clients sections.
func (s *ScaleReport) scaleMarkdown(b *strings.Builder) {
	st := s.Settings
	fmt.Fprintf(b, "\n## Streams at scale\n\n")
	fmt.Fprintf(b, "%s, commit %s; load average at the start %.2f %.2f %.2f, at the end %.2f %.2f %.2f. ",
		s.Generated, s.Commit, s.LoadStart[0], s.LoadStart[1], s.LoadStart[2], s.LoadEnd[0], s.LoadEnd[1], s.LoadEnd[2])
	perSec := "as fast as it can"
	if d, err := time.ParseDuration(st.Interval); err == nil && d > 0 {
		perSec = fmt.Sprintf("%.0f events per second per stream", float64(time.Second)/float64(d))
	}
	fmt.Fprintf(b, "Each stream carries %d events %s apart (%s; a content event is %d bytes on the wire) and `data: [DONE]`; each connection streams one after another. The connections open over %s, then all stream for the measured %s. Each server and its upstream are started afresh for each run, the server on CPU %s, the upstream and the load generator on CPU %s; %d open files per process. CPU in cores (1.00 = one core busy); the generator's is the whole benchmark process's.\n\n",
		st.Events, st.Interval, perSec, st.EventBytes, st.Ramp, st.Plateau, st.ServerCPU, st.LoadCPU, st.FDLimit)
	b.WriteString("| streams | server | completed | failed (truncated) | events/s | RSS per stream, KiB | server CPU | server CPU µs/event | upstream CPU | generator CPU | generator µs/event |\n")
	b.WriteString("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, run := range s.Runs {
		sr := run.Streams
		up := "–"
		if run.UpstreamCPU > 0 {
			up = num(run.UpstreamCPU)
		}
		fmt.Fprintf(b, "| %s | %s | %d | %d (%d) | %.0f | %s | %s | %s | %s | %s | %s |\n",
			streamsLabel(run), scaleName(run.Target), sr.Completed, sr.Failed(), sr.Truncated, sr.EventsPerSec,
			kib(run.RSSPerStream()), num(run.ServerCPU), num(run.CPUPerEvent), up, num(sr.GenCPU), num(sr.GenCPUEvent))
	}
	for _, run := range s.Runs {
		if run.Streams.Conns < run.Asked {
			fmt.Fprintf(b, "\n¹ Fewer than asked: a proxy holds two open files per stream (the client's connection and the upstream's) and a process may open %d here, so every server, the upstream directly too, ran the most the proxies can hold.\n", st.FDLimit)
			break
		}
	}
	b.WriteString("\nTimes in µs, of the streams started in the measured window: to the first event (from writing the request), and between events; added: through the server, less directly to the upstream at the same count.\n\n")
	b.WriteString("| streams | server | first event p50 | p99 | max | added p50 | p99 | max | between events p50 | p99 | max | added p50 | p99 | max |\n")
	b.WriteString("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for i := range s.Runs {
		run := &s.Runs[i]
		sr := run.Streams
		added := s.added(run, func(r loadgen.StreamsResult) []float64 {
			return []float64{r.TTFE50, r.TTFE99, r.TTFEMax, r.Gap50, r.Gap99, r.GapMax}
		})
		fmt.Fprintf(b, "| %s | %s | %.0f | %.0f | %.0f | %s | %s | %s | %.0f | %.0f | %.0f | %s | %s | %s |\n",
			streamsLabel(*run), scaleName(run.Target), sr.TTFE50, sr.TTFE99, sr.TTFEMax, added[0], added[1], added[2],
			sr.Gap50, sr.Gap99, sr.GapMax, added[3], added[4], added[5])
	}
	if s.stamped() {
		b.WriteString("\nEach event on its way, in µs: from the upstream's write (it stamps each event with the time) to the generator's socket (the kernel's time of arrival), of the same streams. The times between events above include the upstream's own delays, which this leaves out; added: through the server, less directly to the upstream.\n\n")
		b.WriteString("| streams | server | events timed | on its way p50 | p99 | max | added p50 | p99 | max |\n")
		b.WriteString("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for i := range s.Runs {
			run := &s.Runs[i]
			sr := run.Streams
			if sr.Stamped == 0 {
				continue
			}
			added := s.added(run, func(r loadgen.StreamsResult) []float64 {
				if r.Stamped == 0 {
					return nil // the direct run timed none: nothing to subtract
				}
				return []float64{r.Transit50, r.Transit99, r.TransitMax}
			})
			fmt.Fprintf(b, "| %s | %s | %d | %.0f | %.0f | %.0f | %s | %s | %s |\n",
				streamsLabel(*run), scaleName(run.Target), sr.Stamped, sr.Transit50, sr.Transit99, sr.TransitMax, added[0], added[1], added[2])
		}
	}
	var errs, unstamped []string
	for _, run := range s.Runs {
		if run.Streams.Errors > 0 {
			var kinds []string
			for _, k := range slices.Sorted(maps.Keys(run.Streams.ErrorKinds)) {
				kinds = append(kinds, fmt.Sprintf("%s %d", k, run.Streams.ErrorKinds[k]))
			}
			errs = append(errs, fmt.Sprintf("%s at %d: %s (the first: %s)", scaleName(run.Target), run.Streams.Conns, strings.Join(kinds, ", "), run.Streams.FirstErr))
		}
		if run.Streams.Unstamped > 0 {
			unstamped = append(unstamped, fmt.Sprintf("%s at %d: %d", run.Target, run.Streams.Conns, run.Streams.Unstamped))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(b, "\nErrors by kind: %s.\n", strings.Join(errs, "; "))
	}
	if len(unstamped) > 0 {
		fmt.Fprintf(b, "\nReads the kernel did not stamp, timed by the generator's clock instead: %s.\n", strings.Join(unstamped, "; "))
	}

	if len(s.Idle) > 0 {
		b.WriteString("\n## Idle clients\n\nKeep-alive connections that each made one request, then wait; each server started afresh. " +
			"Peak: the most while the requests were made. Held: after the connections waited " + IdleHold.String() +
			" and authgate's garbage was collected.\n\n")
		b.WriteString("| server | request | connections | still open | idle RSS, MiB | peak, MiB | held, MiB | per connection at the peak, KiB | per connection held, KiB |\n")
		b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, run := range s.Idle {
			fmt.Fprintf(b, "| %s | `GET %s` | %d | %d | %.1f | %.1f | %.1f | %s | %s |\n", scaleName(run.Target), run.Path, run.Conns, run.Open,
				float64(run.IdleRSS)/(1<<20), float64(run.PeakRSS)/(1<<20), float64(run.HeldRSS)/(1<<20), kib(run.PeakPerConn()), kib(run.RSSPerConn()))
		}
	}
}

// streamsLabel is a run's count of streams, and the count asked for when
// the open-files limit made it fewer.
func streamsLabel(run ScaleRun) string {
	if run.Streams.Conns < run.Asked {
		return fmt.Sprintf("%d (%d asked¹)", run.Streams.Conns, run.Asked)
	}
	return fmt.Sprint(run.Streams.Conns)
}

// scaleName is how the streams-at-scale tables name a target.
func scaleName(target string) string {
	if target == "direct" {
		return "direct to the upstream"
	}
	return serverName[target]
}

// chart draws, per count of streams, each server's memory per stream,
// CPU time per event and p99 time of an event on its way (of the delay
// between events, for a report without it), then its memory per idle
// connection.
func (s *ScaleReport) chart() chart {
	type row struct {
		header string
		target string
		values [3]float64 // KiB per stream or connection, µs per event, ms at p99 (on its way, or between events)
		idle   bool
	}
	var rows []row
	lastCount := -1
	for _, run := range s.Runs {
		if run.Streams.Conns != lastCount {
			lastCount = run.Streams.Conns
			rows = append(rows, row{header: fmt.Sprintf("%s streams at once", streamsLabel(run))})
		}
		delay := run.Streams.Gap99 / 1000
		if s.stamped() {
			delay = run.Streams.Transit99 / 1000
		}
		rows = append(rows, row{target: run.Target, values: [3]float64{run.RSSPerStream() / 1024, run.CPUPerEvent, delay}})
	}
	if len(s.Idle) > 0 {
		rows = append(rows, row{header: fmt.Sprintf("%d idle keep-alive connections", s.Idle[0].Conns)})
		for _, run := range s.Idle {
			rows = append(rows, row{target: run.Target, values: [3]float64{run.RSSPerConn() / 1024}, idle: true})
		}
	}
	var maxV [3]float64
	for _, rw := range rows {
		for k, v := range rw.values {
			maxV[k] = max(maxV[k], v)
		}
	}
	for k := range maxV {
		maxV[k] = niceMax(maxV[k])
	}

	const (
		labelW = 170.0
		panelW = 250.0
		gap    = 60.0
		rowH   = 22.0
		top    = 106.0
		barH   = 15.0
	)
	x0 := labelW + 10
	width := x0 + 3*panelW + 2*gap + 70
	height := top + float64(len(rows))*rowH + 50
	var b strings.Builder
	text := func(x, y float64, anchor, style, str string) { svgText(&b, x, y, anchor, style, str) }
	st := s.Settings
	text(10, 22, "start", `font-size="16" font-weight="bold"`, fmt.Sprintf("Streams at scale: %d events %s apart per stream; idle clients", st.Events, st.Interval))
	text(10, 40, "start", `fill="#555555"`, fmt.Sprintf("%s, commit %s; server on CPU %s, upstream and load generator on CPU %s", s.Generated, s.Commit, st.ServerCPU, st.LoadCPU))
	text(10, 56, "start", `fill="#555555"`, fmt.Sprintf("each server started afresh per run; load average %.2f at the start", s.LoadStart[0]))
	titles := [3]string{"RSS per stream or connection (KiB)", "server CPU per event (µs)", "p99 between events (ms)"}
	if s.stamped() {
		titles[2] = "p99 of each event on its way (ms)"
	}
	units := [3]string{"KiB, lower is better", "µs, lower is better", "ms, lower is better"}
	for k := range 3 {
		px := x0 + float64(k)*(panelW+gap)
		text(px, 82, "start", `font-weight="bold"`, titles[k])
		axisTop, axisBottom := top-8, top+float64(len(rows))*rowH
		for i := 0; i <= 4; i++ {
			x := px + panelW*float64(i)/4
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e0e0e0"/>`+"\n", x, axisTop, x, axisBottom)
			text(x, axisBottom+16, "middle", `fill="#555555" font-size="11"`, short(maxV[k]*float64(i)/4))
		}
		text(px+panelW/2, axisBottom+32, "middle", `fill="#555555" font-size="11"`, units[k])
		for i, rw := range rows {
			if rw.header != "" || rw.idle && k > 0 {
				continue
			}
			y := top + float64(i)*rowH
			v := rw.values[k]
			w := panelW * v / maxV[k]
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`+"\n",
				px, y, w, barH, serverColor[rw.target], html.EscapeString(scaleName(rw.target)), shortFrac(v))
			text(px+w+4, y+barH-3, "start", `font-size="11"`, shortFrac(v))
		}
	}
	for i, rw := range rows {
		y := top + float64(i)*rowH
		if rw.header != "" {
			text(10, y+barH-3, "start", `font-weight="bold" fill="#333333"`, rw.header)
			continue
		}
		text(labelW, y+barH-3, "end", "", scaleName(rw.target))
	}
	return chart{body: b.String(), w: width, h: height}
}

// shortFrac is short, with one decimal below 10.
func shortFrac(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return short(v)
}

// added returns what run's figures (of) add to those of the direct run
// at its count, each signed; blanks for the direct run itself, and where
// there is no direct run or of gives it no figures.
func (s *ScaleReport) added(run *ScaleRun, of func(loadgen.StreamsResult) []float64) []string {
	mine := of(run.Streams)
	out := make([]string, len(mine))
	d := s.direct(run)
	if d == nil || run.Target == "direct" {
		return out
	}
	base := of(d.Streams)
	if len(base) != len(mine) {
		return out
	}
	for i := range mine {
		out[i] = signed(mine[i] - base[i])
	}
	return out
}

// stamped reports whether any run timed its events on their way (an
// upstream that stamps them).
func (s *ScaleReport) stamped() bool {
	for _, run := range s.Runs {
		if run.Streams.Stamped > 0 {
			return true
		}
	}
	return false
}
