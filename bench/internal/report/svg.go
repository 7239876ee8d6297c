package report

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

// Chart colours by server: authgate blue, peers green and orange,
// baselines grey.
var serverColor = map[string]string{
	"authgate":        "#1f77b4",
	"authgate-nolog":  "#9ecae1",
	"authgate-routed": "#6baed6",
	"nginx":           "#2ca02c",
	"haproxy":         "#ff7f0e",
	"ceiling":         "#8c8c8c",
	"ceiling-gw":      "#bdbdbd",
	"mock":            "#8c8c8c",
	"direct":          "#8c8c8c",
}

var kindOrder = []string{"ceiling", "reject", "limit", "direct", "proxy"}
var kindTitle = map[string]string{
	"ceiling": "(a) ceiling: fixed 401",
	"reject":  "(b) reject unknown key: 401",
	"limit":   "(e) key over its limit: 429",
	"direct":  "(c) upstream directly: 200",
	"proxy":   "(d) proxied chat completion: 200",
}
var serverOrder = []string{"ceiling", "ceiling-gw", "mock", "authgate", "authgate-nolog", "authgate-routed", "nginx", "haproxy"}

// niceMax returns a round axis maximum at or above v, four times a step of
// 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	step := v / 4
	p := math.Pow(10, math.Floor(math.Log10(step)))
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if m*p >= step {
			return 4 * m * p
		}
	}
	return 40 * p
}

// chart is one chart of the SVG: its elements and its size.
type chart struct {
	body string
	w, h float64
}

// svg draws the report's charts one below the other: the closed-loop
// scenarios' (closedChart) and the streams-at-scale ones' (scaleChart).
func (r *Report) svg() string {
	var charts []chart
	if len(r.Closed) > 0 {
		charts = append(charts, r.closedChart())
	}
	if r.Scale != nil && len(r.Scale.Runs)+len(r.Scale.Idle) > 0 {
		charts = append(charts, r.Scale.chart())
	}
	var width, height float64
	for _, c := range charts {
		width, height = max(width, c.w), height+c.h
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	y := 0.0
	for i, c := range charts {
		if i == 0 {
			b.WriteString(c.body)
		} else {
			fmt.Fprintf(&b, `<g transform="translate(0,%.0f)">`+"\n%s</g>\n", y, c.body)
		}
		y += c.h
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// svgText writes a text element.
func svgText(b *strings.Builder, x, y float64, anchor, style, s string) {
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="%s" %s>%s</text>`+"\n", x, y, anchor, style, html.EscapeString(s))
}

// closedChart draws the closed-loop scenarios' median throughput and p99
// latency side by side, one bar per server, grouped by scenario.
func (r *Report) closedChart() chart {
	type row struct {
		header string
		c      *ClosedResult
	}
	var rows []row
	for _, kind := range kindOrder {
		var group []*ClosedResult
		for i := range r.Closed {
			if r.Closed[i].Kind == kind {
				group = append(group, &r.Closed[i])
			}
		}
		if len(group) == 0 {
			continue
		}
		slices.SortStableFunc(group, func(a, b *ClosedResult) int {
			return slices.Index(serverOrder, a.Server) - slices.Index(serverOrder, b.Server)
		})
		rows = append(rows, row{header: kindTitle[kind]})
		for _, c := range group {
			rows = append(rows, row{c: c})
		}
	}
	var maxRPS, maxP99 float64
	for _, c := range r.Closed {
		maxRPS, maxP99 = max(maxRPS, c.Median.RPS), max(maxP99, c.Median.P99)
	}
	maxRPS, maxP99 = niceMax(maxRPS), niceMax(maxP99)

	const (
		labelW = 170.0
		panelW = 330.0
		gap    = 60.0
		rowH   = 22.0
		top    = 106.0
		barH   = 15.0
	)
	x1 := labelW + 10
	x2 := x1 + panelW + gap
	width := x2 + panelW + 70
	height := top + float64(len(rows))*rowH + 50

	var b strings.Builder
	text := func(x, y float64, anchor, style, s string) { svgText(&b, x, y, anchor, style, s) }
	m := r.Machine
	text(10, 22, "start", `font-size="16" font-weight="bold"`, "authgate load benchmark: median of "+fmt.Sprint(r.Settings.Repeats)+" runs, "+fmt.Sprint(r.Settings.Conns)+" connections, closed loop (wrk)")
	text(10, 40, "start", `fill="#555555"`, fmt.Sprintf("%s, commit %s; %s, %d cores", r.Generated, m.Commit, m.CPU, m.Cores))
	text(10, 56, "start", `fill="#555555"`, fmt.Sprintf("server under test on CPU %s, load (and the proxies' upstream) on CPU %s; load average %.2f at the start", r.Settings.ServerCPU, r.Settings.LoadCPU, m.LoadStart[0]))

	panel := func(x0 float64, title string, maxV float64, unit string, value func(*ClosedResult) float64) {
		text(x0, 82, "start", `font-weight="bold"`, title)
		axisTop, axisBottom := top-8, top+float64(len(rows))*rowH
		for i := 0; i <= 4; i++ {
			x := x0 + panelW*float64(i)/4
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e0e0e0"/>`+"\n", x, axisTop, x, axisBottom)
			text(x, axisBottom+16, "middle", `fill="#555555" font-size="11"`, short(maxV*float64(i)/4))
		}
		text(x0+panelW/2, axisBottom+32, "middle", `fill="#555555" font-size="11"`, unit)
		for i, rw := range rows {
			if rw.c == nil {
				continue
			}
			y := top + float64(i)*rowH
			v := value(rw.c)
			w := panelW * v / maxV
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`+"\n",
				x0, y, w, barH, serverColor[rw.c.Server], html.EscapeString(rw.c.Label+", "+serverName[rw.c.Server]), short(v))
			text(x0+w+4, y+barH-3, "start", `font-size="11"`, short(v))
		}
	}
	for i, rw := range rows {
		y := top + float64(i)*rowH
		if rw.c == nil {
			text(10, y+barH-3, "start", `font-weight="bold" fill="#333333"`, rw.header)
			continue
		}
		text(labelW, y+barH-3, "end", "", serverName[rw.c.Server])
	}
	panel(x1, "Throughput (requests/s, higher is better)", maxRPS, "requests per second", func(c *ClosedResult) float64 { return c.Median.RPS })
	panel(x2, "p99 latency (µs, lower is better)", maxP99, "microseconds", func(c *ClosedResult) float64 { return c.Median.P99 })
	return chart{body: b.String(), w: width, h: height}
}

// short formats v with a k or M suffix.
func short(v float64) string {
	switch {
	case v >= 1e6:
		return trimZero(fmt.Sprintf("%.1f", v/1e6)) + "M"
	case v >= 1e5:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e4:
		return trimZero(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case v >= 1e3:
		return trimZero(fmt.Sprintf("%.1f", v/1e3)) + "k"
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func trimZero(s string) string { return strings.TrimSuffix(s, ".0") }
